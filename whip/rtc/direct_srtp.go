package rtc

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

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
// pion does not export SRTP keys, so directSRTP learns what RFC 5764
// derives them from as the handshake passes: the client random and master
// secret from the DTLS key log, and the server random, cipher suite and
// SRTP profile from the ServerHello — the one we send as DTLS server (a
// hook), or, as DTLS client, the one the peer sends, read off sockets of
// the PeerConnection's own (NewClientSender). One API per PeerConnection,
// so that the hooks see one handshake. On the shared port, which reads for
// every session, only the first way is open: a WHEP session answers as
// DTLS server.
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
	keys handshakeSecrets

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

// handshakeSecrets is what one DTLS handshake shows of the values RFC 5764
// derives the SRTP keys from; it implements srtp.KeyingMaterialExporter.
type handshakeSecrets struct {
	mu           sync.Mutex
	clientRandom []byte
	serverRandom []byte
	master       []byte
	suite        uint16
	profile      srtp.ProtectionProfile
	// client: the ServerHello was the peer's, so we were DTLS client.
	client bool
	// conflict: our sockets showed two different ServerHellos of the peer
	// (a forged one among them): the keys are not to be trusted.
	conflict bool
}

// keyLog takes the DTLS key log (SSLKEYLOGFILE format, one line per
// handshake): "CLIENT_RANDOM <client random> <master secret>".
type keyLog struct{ s *handshakeSecrets }

func (k keyLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		f := strings.Fields(string(line))
		if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(f[1])
		ms, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		k.s.mu.Lock()
		k.s.clientRandom, k.s.master = cr, ms
		k.s.mu.Unlock()
	}
	return len(p), nil
}

// serverHello notes what our ServerHello says and sends it unchanged (the
// DTLS server's hook).
func (s *handshakeSecrets) serverHello(m handshake.MessageServerHello) handshake.Message {
	s.noteHello(&m, false)
	return &m
}

// inspect notes the peer's ServerHello in a datagram our socket received,
// if it carries one (we are DTLS client); anything else is ignored,
// cheaply for what is not a DTLS handshake.
func (s *handshakeSecrets) inspect(b []byte) {
	// A DTLS 1.2 handshake record in epoch 0 starts 22, 254, 253, 0, 0.
	if len(b) <= recordlayer.FixedHeaderSize || b[0] != byte(protocol.ContentTypeHandshake) || b[3] != 0 || b[4] != 0 {
		return
	}
	recs, err := recordlayer.UnpackDatagram(b)
	if err != nil {
		return
	}
	for _, r := range recs {
		var h recordlayer.Header
		if h.Unmarshal(r) != nil || h.ContentType != protocol.ContentTypeHandshake || h.Epoch != 0 || h.Size() > len(r) {
			continue
		}
		var hs handshake.Handshake
		if hs.Unmarshal(r[h.Size():]) != nil { // a fragment or another message
			continue
		}
		if m, ok := hs.Message.(*handshake.MessageServerHello); ok {
			s.noteHello(m, true)
		}
	}
}

// noteHello keeps what a ServerHello says, ours or (peer) the peer's. A
// retransmission repeats the peer's hello; a different one means that
// someone else sent one too, and pion's handshake took at most one of
// them: the keys stay unknown.
func (s *handshakeSecrets) noteHello(m *handshake.MessageServerHello, peer bool) {
	r := m.Random.MarshalFixed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if peer && s.serverRandom != nil && !bytes.Equal(s.serverRandom, r[:]) {
		s.conflict = true
	}
	s.serverRandom, s.client = r[:], peer
	if m.CipherSuiteID != nil {
		s.suite = *m.CipherSuiteID
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			s.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
}

// ExportKeyingMaterial is RFC 5705's exporter over the captured secrets,
// as pion's dtls.State computes it (no context).
func (s *handshakeSecrets) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(context) != 0 {
		return nil, errors.New("whip: direct srtp: exporter context unsupported")
	}
	if len(s.master) == 0 || len(s.clientRandom) != 32 || len(s.serverRandom) != 32 {
		return nil, errors.New("whip: direct srtp: handshake secrets not seen")
	}
	seed := append(append([]byte(label), s.clientRandom...), s.serverRandom...)
	return prf.PHash(s.master, seed, length, suiteHash(s.suite))
}

// errSecretsUnseen: the handshake has not shown all that the keys derive
// from — not yet, or not to us (the ServerHello hook sees only a hello we
// send, and a peer's hello is seen only on sockets of a PeerConnection's
// own).
var errSecretsUnseen = errors.New("no SRTP profile or handshake secrets seen (not the DTLS server, nor a client on sockets of its own?)")

// srtpContext derives one direction's SRTP context (RFC 5764) from the
// captured secrets: our sending keys (send) or the peer's, in the DTLS role
// the ServerHello showed we had.
func (s *handshakeSecrets) srtpContext(send bool, opts ...srtp.ContextOption) (*srtp.Context, error) {
	profile, key, salt, err := s.masterKey(send)
	if err != nil {
		return nil, err
	}
	ctx, err := srtp.CreateContext(key, salt, profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	return ctx, nil
}

// masterKey returns the SRTP profile and one direction's master key and
// salt (RFC 5764 §4.2), as srtpContext.
func (s *handshakeSecrets) masterKey(send bool) (profile srtp.ProtectionProfile, key, salt []byte, err error) {
	s.mu.Lock()
	profile, complete := s.profile, len(s.master) > 0 && len(s.clientRandom) == 32 && len(s.serverRandom) == 32
	isClient, conflict := s.client, s.conflict
	s.mu.Unlock()
	if conflict {
		return 0, nil, nil, errors.New("two different ServerHellos seen: the keys are unknown")
	}
	if profile == 0 || !complete {
		return 0, nil, nil, errSecretsUnseen
	}
	conf := srtp.Config{Profile: profile}
	if err := conf.ExtractSessionKeysFromDTLS(s, isClient); err != nil {
		return 0, nil, nil, fmt.Errorf("keys: %w", err)
	}
	if send {
		return profile, conf.Keys.LocalMasterKey, conf.Keys.LocalMasterSalt, nil
	}
	return profile, conf.Keys.RemoteMasterKey, conf.Keys.RemoteMasterSalt, nil
}

// rtpSealer seals one RTP packet from its header and payload into dst
// (len 0, room for the packet and srtpOverhead), returning the packet.
type rtpSealer interface {
	Seal(dst []byte, h *rtp.Header, payload []byte) ([]byte, error)
}

// sealer returns the sending direction's sealer: srtpgcm's for the AEAD
// profiles, which encrypts the payload from where it lies (no copy, no
// header parsed back), and pion's context for AES-CM with HMAC-SHA1.
func (s *handshakeSecrets) sealer() (rtpSealer, error) {
	profile, key, salt, err := s.masterKey(true)
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

// suiteHash is the PRF hash of a TLS 1.2 cipher suite: SHA-384 for the
// suites named so, SHA-256 for every other.
func suiteHash(id uint16) func() hash.Hash {
	if strings.HasSuffix(dtls.CipherSuiteID(id).String(), "SHA384") {
		return sha512.New384
	}
	return sha256.New
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
	seal, err := d.keys.sealer()
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

// directFactory puts a directSRTP innermost in an API's interceptor chain.
type directFactory struct{ d *directSRTP }

func (f directFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &directInterceptor{d: f.d}, nil
}

type directInterceptor struct {
	interceptor.NoOp
	d *directSRTP
}

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
