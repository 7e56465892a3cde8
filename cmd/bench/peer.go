package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"whipgate/whip/rtc/pionlog"
	"whipgate/whip/rtc/udp"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
)

// h264 is the one codec the bench offers: Constrained Baseline 3.1,
// packetization mode 1, as browsers and whipgate's player expect.
var h264 = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   clockRate,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	RTCPFeedback: []webrtc.RTCPFeedback{
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
	},
}

// h264PayloadType is the bench's one media payload type; RTX is 103.
const h264PayloadType = 102

// socketBuffer is what every bench socket asks for: a keyframe burst of a
// 100 Mbps stream is 1–2 MB, and the GOP cache a new viewer gets at once
// up to a GOP (12 MB at GOP 1 s), far over the kernel's default 208 KiB.
const socketBuffer = 32 << 20

// newAPI builds the pion API of the bench's peers: H.264 only (so the WHIP
// offer cannot lead with another codec), NACK both ways with 8K-sized
// windows, RTCP reports, no TWCC or stats interceptors (viewers must be
// cheap), loopback only, big socket and stream buffers.
//
// A viewer passes its gate and wire clock, and its direct receive path
// unless it reads through pion; the publisher nil for all three.
func newAPI(peers peerConfig, g *gate, wire *wireClock, direct *directReceive) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: h264, PayloadType: h264PayloadType}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("bench: register h264: %w", err)
	}
	rtx := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: clockRate, SDPFmtpLine: fmt.Sprintf("apt=%d", h264PayloadType)}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: rtx, PayloadType: 103}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("bench: register rtx: %w", err)
	}
	reg := &interceptor.Registry{}
	// 16384 packets is 1.6 s at 100 Mbps: a NACK for any packet of a
	// keyframe burst still finds it. A direct viewer asks for its losses
	// itself (h264's feedback lines still offer NACK).
	if direct == nil {
		if err := webrtc.ConfigureNackWithOptions(m, reg,
			[]nack.GeneratorOption{nack.GeneratorSize(8192)}, nack.ResponderSize(16384)); err != nil {
			return nil, fmt.Errorf("bench: nack: %w", err)
		}
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("bench: rtcp reports: %w", err)
	}
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("bench: network: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionLogs(peers.log, peers.full)}
	se.SetNet(bigBufferNet{Net: std, size: socketBuffer, gate: g, wire: wire, direct: direct, gro: peers.gro, loss: peers.loss, counts: peers.counts})
	if direct != nil {
		direct.srtp.Configure(&se)
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	// The tally counts duplicates itself; pion's replay window costs a
	// big-integer shift per packet (5% of the bench's CPU at 8192).
	se.DisableSRTPReplayProtection(true)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.BufferFactory = func(t packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
		b := packetio.NewBuffer()
		if t == packetio.RTPBufferPacket {
			b.SetLimitSize(4 << 20)
		} else {
			b.SetLimitSize(1 << 20)
		}
		return b
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// bigBufferNet is the standard network with large UDP socket buffers. As
// root it raises them past net.core.rmem_max, so that losses the bench
// reports are the server's, not the bench's own sockets'.
type bigBufferNet struct {
	transport.Net
	size   int
	gate   *gate          // nil: no gate
	wire   *wireClock     // with a gate: the socket's arrival times
	direct *directReceive // with a gate: media read beneath pion; nil: through pion
	gro    bool           // with a gate: receive GSO messages whole
	loss   *lossyPath     // nil: no loss
	counts *rtpCounts     // with a gate: counts what arrives; nil: no count
}

func (n bigBufferNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(n.size)
	_ = c.SetWriteBuffer(n.size)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				forceBuffers(fd, n.size)
				if n.wire != nil {
					_ = enableTimestamps(fd) // without them, wire latency = delivery latency
				}
			})
		}
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	if n.gate == nil {
		if n.loss == nil {
			return c, nil
		}
		return &lossyConn{UDPConn: c, udp: uc, loss: n.loss}, nil
	}
	gc := &gatedConn{lossyConn: lossyConn{UDPConn: c, udp: uc, loss: n.loss}, gate: n.gate, wire: n.wire, direct: n.direct, counts: n.counts}
	if n.gro {
		if err := udp.EnableGRO(uc); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("bench: UDP_GRO on a viewer socket (Linux ≥ 5.0; or run with -gro=false): %w", err)
		}
		gc.gro = udp.NewCoalescedReader(len(gc.oob))
	}
	return gc, nil
}

// signal runs the WHIP/WHEP offer/answer: gather all candidates, POST the
// offer, apply the answer. It returns the session URL (Location, resolved
// against the POST's URL: MediaMTX, for one, answers with a path) and when
// the POST started.
func signal(ctx context.Context, pc *webrtc.PeerConnection, url string) (resource string, posted time.Time, err error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", time.Time{}, fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", time.Time{}, ctx.Err()
	}
	posted = time.Now()
	resp, body, err := call(ctx, http.MethodPost, url, "application/sdp", strings.NewReader(pc.LocalDescription().SDP), 1<<20)
	if err != nil {
		return "", posted, err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", posted, fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return "", posted, fmt.Errorf("apply answer from %s: %w", url, err)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", posted, fmt.Errorf("POST %s: the answer's Location: %w", url, err)
	}
	return loc.String(), posted, nil
}

// hangUp ends a WHIP/WHEP session with DELETE, so the server frees the
// stream at once instead of at ICE timeout.
func hangUp(ctx context.Context, resource string) error {
	if resource == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, _, err := call(ctx, http.MethodDelete, resource, "", nil, 64<<10)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("DELETE %s: %s", resource, resp.Status)
	}
	return nil
}

// waitConnected waits until the PeerConnection is connected (DTLS up:
// packets written before that are lost) or has failed.
func waitConnected(ctx context.Context, pc *webrtc.PeerConnection, state <-chan webrtc.PeerConnectionState) error {
	for {
		if pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
			return nil
		}
		select {
		case s := <-state:
			switch s {
			case webrtc.PeerConnectionStateConnected:
				return nil
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return fmt.Errorf("peer connection %s", s)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stateChanges reports a PeerConnection's state changes on a channel that
// never blocks pion (a full channel drops, and waitConnected rereads the
// state).
func stateChanges(pc *webrtc.PeerConnection) <-chan webrtc.PeerConnectionState {
	ch := make(chan webrtc.PeerConnectionState, 8)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case ch <- s:
		default:
		}
	})
	return ch
}

// pionLogs bridges pion's logging to slog through whipgate's own bridge,
// counting in full the packets pion drops at its full receive buffers (it
// logs each one, at Info or above, whatever level the log shows).
func pionLogs(log *slog.Logger, full *atomic.Int64) logging.LoggerFactory {
	return pionlog.Factory{Log: log, BufferFull: func() { full.Add(1) }}
}

// peerConfig is what every bench peer's API is built from.
type peerConfig struct {
	log    *slog.Logger
	full   *atomic.Int64 // packets pion dropped at full buffers
	gro    bool          // viewers receive GSO messages whole (Options.GRO)
	direct bool          // viewers read media beneath pion (Options.Receive)
	loss   *lossyPath    // the peer's socket drops packets; nil: none
	counts *rtpCounts    // a viewer's socket counts what it receives; nil: not
}
