package rtc

import (
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
// mux: the shared port's, one per local address it is bound on. Sends from
// them can be batched (peerBatch) and sealed beneath pion (directSRTP).
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
