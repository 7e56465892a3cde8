package rtc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/pionlog"
	"whipgate/whip/rtc/udp"
)

// sockets are UDP sockets of ours that pion's ICE gathers on through a UDP
// mux: the shared port's (one per local address it is bound on), or a
// PeerConnection's own (NewClientSender). Sends from them can be batched
// (peerBatch) and sealed beneath pion (directSRTP).
type sockets []*udp.Conn

// listen binds a socket on each of ips, all on one port (0: the first
// address picks an ephemeral one, the others take the same), with buffers
// of size bytes, each read through filter; and the ICE UDP mux over them.
// Closing the mux closes the sockets.
func listen(ips []net.IP, port, size int, log *slog.Logger, filter udp.ReadFilter) (sockets, ice.UDPMux, error) {
	pionLog := pionlog.Factory{Log: log}.NewLogger("ice")
	var socks sockets
	var muxes []ice.UDPMux
	for _, ip := range ips {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			for _, m := range muxes {
				_ = m.Close()
			}
			return nil, nil, fmt.Errorf("webrtc: listen udp %s:%d: %w", ip, port, err)
		}
		port = conn.LocalAddr().(*net.UDPAddr).Port
		udp.SetBuffers(conn, size, log)
		bc := udp.New(conn, log, filter)
		socks = append(socks, bc)
		muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: pionLog, UDPConn: bc}))
	}
	if len(muxes) == 1 {
		return socks, muxes[0], nil
	}
	return socks, ice.NewMultiUDPMuxDefault(muxes...), nil
}

// ownSockets binds sockets for one PeerConnection of its own, on the
// addresses pion would gather on without a mux (every local IPv4 address,
// and 127.0.0.1 where the transport is on loopback only), but ours, with
// the transport's buffers, so that its sends batch and filter sees what
// they read. What they log, the transport said of its own sockets at
// start, so it is logged at debug level.
func (r *Transport) ownSockets(filter udp.ReadFilter) (sockets, ice.UDPMux, error) {
	ips, err := localIPv4s()
	if err != nil {
		return nil, nil, fmt.Errorf("webrtc: local addresses: %w", err)
	}
	if r.loopback {
		ips = append(ips, net.IPv4(127, 0, 0, 1))
	}
	if len(ips) == 0 {
		return nil, nil, fmt.Errorf("webrtc: no IPv4 address to send from")
	}
	log := slog.New(debugOnly{r.log.Handler()})
	for try := 1; ; try++ {
		// One ephemeral port on every address, as the shared port has: it
		// may be taken on another address, so a few tries.
		socks, mux, err := listen(ips, 0, r.cfg.SocketBuffer, log, filter)
		if err == nil || try == 3 {
			return socks, mux, err
		}
	}
}

// connFor is the socket that sends from local: the only one, or with a
// socket per local address the one bound on local; nil for none (a NAT 1:1
// address among several sockets).
func (s sockets) connFor(local netip.Addr) *udp.Conn {
	if len(s) == 1 {
		return s[0]
	}
	for _, bc := range s {
		if a, ok := bc.LocalAddr().(*net.UDPAddr); ok && a.AddrPort().Addr().Unmap() == local {
			return bc
		}
	}
	return nil
}

// directRoute is pc's selected pair when it can take direct sends: UDP
// from a host candidate on one of the sockets.
func (s sockets) directRoute(pc *webrtc.PeerConnection) (*directRoute, string) {
	sctp := pc.SCTP()
	if sctp == nil {
		return nil, "no transport"
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return nil, "no selected candidate pair"
	}
	if pair.Local.Protocol != webrtc.ICEProtocolUDP || pair.Local.Typ != webrtc.ICECandidateTypeHost {
		return nil, fmt.Sprintf("local candidate %s/%s", pair.Local.Typ, pair.Local.Protocol)
	}
	local, remote := selectedPair(pc)
	if !remote.IsValid() {
		return nil, fmt.Sprintf("remote address %q", pair.Remote.Address)
	}
	c := s.connFor(local)
	if c == nil {
		return nil, fmt.Sprintf("no socket of ours sends from %s", local)
	}
	return &directRoute{conn: c, remote: remote}, ""
}

// debugOnly passes records on at debug level.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(name string) slog.Handler    { return debugOnly{d.h.WithGroup(name)} }
