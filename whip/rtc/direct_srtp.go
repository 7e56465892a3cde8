package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/dtlskeys"
	"whipgate/whip/rtc/srtpgcm"
	"whipgate/whip/rtc/udp"
)

// directSRTP sends one PeerConnection's RTP beneath pion: sealed with the
// session's own SRTP keys and handed straight to the shared socket (into
// the session's open SendBatch), instead of through pion's SRTP session,
// mux endpoint and ICE connection. Those layers cost about as much per
// packet as the AES-GCM seal itself (docs/benchmarks-history.md, profiles), and a
// keyframe is sent once per viewer.
//
// pion does not export SRTP keys: dtlskeys learns them as the handshake
// passes, from the DTLS key log and the ServerHello — the one we send as
// DTLS server (a hook), or, as DTLS client, the one the peer sends, read
// off sockets of the PeerConnection's own (NewClientSender). One API per
// PeerConnection, so that the hooks see one handshake. On the shared port,
// which reads for every session, only the first way is open: a WHEP
// session answers as DTLS server.
//
// It sits innermost in the interceptor chain, so pion's RTCP reports and
// our NACK responder still see every packet, and every RTP packet of the
// PeerConnection — media, NACK re-sends, RTX — goes through one SRTP
// context once it is active. That is the safety rule: pion's context and
// ours must never both seal packets of one SSRC, or a sequence number could
// be sealed twice under one nonce with different contents. Activation
// happens once, before the first media packet, and is never undone; if the
// path later leaves our sockets (an ICE restart onto a relay), packets are
// dropped and the PeerConnection closed, so the peer connects again.
type directSRTP struct {
	log  *slog.Logger
	keys dtlskeys.Secrets

	active atomic.Bool
	route  atomic.Pointer[directRoute] // nil once the path left our sockets

	wmu  sync.Mutex // the sealer and scratch buffer: senders on several goroutines
	seal rtpSealer
	buf  []byte
	sent atomic.Uint64
	lost atomic.Uint64
}

type directRoute struct {
	conn   *udp.Conn
	remote netip.AddrPort
}

// newDirectSRTP returns a directSRTP for one PeerConnection, to pass in
// APIOptions.Direct of the API that creates it.
func newDirectSRTP(log *slog.Logger) *directSRTP {
	return &directSRTP{log: log}
}

// rtpSealer seals one RTP packet from its header and payload into dst
// (len 0, room for the packet and srtpOverhead), returning the packet.
type rtpSealer interface {
	Seal(dst []byte, h *rtp.Header, payload []byte) ([]byte, error)
}

// sealerOf returns the sending direction's sealer: srtpgcm's for the AEAD
// profiles, which encrypts the payload from where it lies (no copy, no
// header parsed back), and pion's context for AES-CM with HMAC-SHA1.
func sealerOf(s *dtlskeys.Secrets) (rtpSealer, error) {
	profile, key, salt, err := s.MasterKey(true)
	if err != nil {
		return nil, err
	}
	switch profile {
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm:
		return srtpgcm.New(key, salt)
	}
	ctx, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	return &pionSealer{ctx: ctx}, nil
}

// pionSealer seals with pion's context: the payload copied behind the
// header, the packet sealed in place.
type pionSealer struct {
	ctx *srtp.Context
	hdr rtp.Header
}

func (p *pionSealer) Seal(dst []byte, h *rtp.Header, payload []byte) ([]byte, error) {
	plain := dst[:h.MarshalSize()+len(payload)]
	hl, err := h.MarshalTo(plain)
	if err != nil {
		return nil, err
	}
	copy(plain[hl:], payload)
	return p.ctx.EncryptRTP(dst, plain, &p.hdr) // in place: dst's capacity has room for the tag
}

// Activate switches pc's RTP to the direct path, before its first media
// packet: pc is connected, the handshake showed us its secrets and the
// selected pair is UDP from one of socks. An error says why not; pion's
// path then stays, for good.
func (d *directSRTP) activate(socks sockets, pc *webrtc.PeerConnection) error {
	if d == nil || len(socks) == 0 {
		return errors.New("whip: direct srtp: not configured")
	}
	if d.active.Load() {
		return nil
	}
	sctp := pc.SCTP()
	if sctp == nil {
		return errors.New("whip: direct srtp: no transport")
	}
	dt := sctp.Transport()
	route, why := socks.directRoute(pc)
	if route == nil {
		return fmt.Errorf("whip: direct srtp: %s", why)
	}
	seal, err := sealerOf(&d.keys)
	if err != nil {
		return fmt.Errorf("whip: direct srtp: %w", err)
	}
	d.wmu.Lock()
	d.seal = seal
	d.wmu.Unlock()
	// The handler first, then the route: a pair chosen in between is not missed.
	dt.ICETransport().OnSelectedCandidatePairChange(func(*webrtc.ICECandidatePair) {
		if !d.active.Load() {
			return // activation failed: pion's path, which follows pairs itself
		}
		nr, why := socks.directRoute(pc)
		if nr == nil {
			d.route.Store(nil)
			d.log.Warn("media path left our UDP sockets; closing the session so the peer connects again", "why", why)
			go func() { _ = pc.Close() }() // not from inside pion's callback
			return
		}
		d.route.Store(nr)
	})
	if route, _ = socks.directRoute(pc); route == nil {
		return errors.New("whip: direct srtp: the selected pair changed during activation")
	}
	d.route.Store(route)
	d.active.Store(true)
	return nil
}

// Active reports whether the PeerConnection's RTP takes the direct path.
func (d *directSRTP) isActive() bool { return d != nil && d.active.Load() }

// Stats returns packets sent on the direct path and those dropped there
// (no route).
func (d *directSRTP) stats() (sent, dropped uint64) {
	if d == nil {
		return 0, 0
	}
	return d.sent.Load(), d.lost.Load()
}

// write seals one packet and queues it on the route's socket.
func (d *directSRTP) write(h *rtp.Header, payload []byte) (int, error) {
	route := d.route.Load()
	if route == nil {
		d.lost.Add(1)
		return 0, errDirectNoRoute
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	n := h.MarshalSize() + len(payload)
	var err error
	d.buf, err = route.conn.SealTo(route.remote, n+srtpOverhead, d.buf, func(dst []byte) ([]byte, error) {
		return d.seal.Seal(dst, h, payload)
	})
	if err != nil {
		return 0, err
	}
	d.sent.Add(1)
	return n, nil
}

// srtpOverhead is room for the authentication tag (16 bytes for GCM, 10
// for HMAC-SHA1-80) and an MKI, so sealing in place never reallocates.
const srtpOverhead = 32

var errDirectNoRoute = errors.New("whip: direct srtp: the media path left our UDP sockets")

// directInterceptor puts a directSRTP innermost in an API's interceptor
// chain. It is its own factory, as repairInterceptor is: it keeps nothing
// per PeerConnection.
type directInterceptor struct {
	interceptor.NoOp
	d *directSRTP
}

func (i *directInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return i, nil }

// BindLocalStream sends the stream's packets directly once the directSRTP
// is active, through pion before.
func (i *directInterceptor) BindLocalStream(_ *interceptor.StreamInfo, next interceptor.RTPWriter) interceptor.RTPWriter {
	d := i.d
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if d.active.Load() {
			return d.write(h, payload)
		}
		return next.Write(h, payload, a)
	})
}
