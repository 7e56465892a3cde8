package rtc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	pionnack "github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/dtlskeys"
	"whipgate/whip/rtc/nack"
	"whipgate/whip/rtc/pionlog"
)

// Transport is the WebRTC transport shared by all sessions: one UDP port,
// pion APIs built on it, and the paths beneath pion for media in both
// directions.
type Transport struct {
	cfg      Config
	log      *slog.Logger
	mux      ice.UDPMux
	conns    sockets     // one per local address the port is bound on
	gate     readGate    // holds the sockets' reads while a publisher's burst is inside pion
	ingest   ingestTable // publishers whose RTP the sockets' reader takes beneath pion
	addr     *net.UDPAddr
	loopback bool
	nacks    *nack.GeneratorFactory // the NACK generators of every API built here
	resps    *nack.ResponderFactory // the NACK responders of every API built here (WithSize)

	panics atomic.Uint64 // recovered in filter

	apiOnce sync.Once
	api     *webrtc.API // the default API, for sessions on pion's path
	apiErr  error
}

// sharedAPI is one API with the default options, built once, for every
// session that needs no API of its own.
func (r *Transport) sharedAPI() (*webrtc.API, error) {
	r.apiOnce.Do(func() { r.api, r.apiErr = r.NewAPI(APIOptions{}) })
	return r.api, r.apiErr
}

// New binds the shared UDP port.
func New(cfg Config, log *slog.Logger) (*Transport, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webrtc config: %w", err)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.UDPListen)
	if err != nil {
		return nil, fmt.Errorf("webrtc: resolve %s: %w", cfg.UDPListen, err)
	}
	r := &Transport{cfg: cfg, log: log}
	r.nacks = nack.NewGeneratorFactory(uint16(min(cfg.NACKReceive, 1<<15)), log)
	r.resps = nack.NewResponderFactory(uint16(cfg.NACKHistory), log, nack.ResendBudget(cfg.NACKResendBudget))
	ips := []net.IP{addr.IP}
	if addr.IP == nil || addr.IP.IsUnspecified() {
		// One socket per local address, as pion's NewMultiUDPMuxFromPort
		// binds them (replies must leave from the address they came to),
		// but each ours, so that every one batches its sends and gates
		// its reads.
		listIPs := cfg.listenIPs
		if listIPs == nil {
			listIPs = localIPv4s
		}
		if ips, err = listIPs(); err != nil {
			return nil, fmt.Errorf("webrtc: local addresses for %s: %w", cfg.UDPListen, err)
		}
		if len(ips) == 0 {
			log.Warn("no non-loopback IPv4 address: WebRTC media on 127.0.0.1 only", "udp_listen", cfg.UDPListen)
			ips = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
	}
	socks, mux, err := listen(ips, addr.Port, cfg.SocketBuffer, log, r.filter)
	if err != nil {
		return nil, err
	}
	r.conns, r.mux = socks, mux
	r.addr = socks[0].LocalAddr().(*net.UDPAddr)
	if len(socks) > 1 {
		r.addr = &net.UDPAddr{IP: addr.IP, Port: r.addr.Port}
	}
	r.loopback = true
	for _, ip := range ips {
		r.loopback = r.loopback && ip.IsLoopback()
	}
	return r, nil
}

// filter sees every datagram the shared sockets read, before pion: the
// read gate counts a publisher's RTP, and a publisher read beneath pion
// takes its own.
func (r *Transport) filter(d []byte, from netip.AddrPort) (taken bool) {
	defer func() {
		// The socket reader is every session's: a panic here (a bug on a
		// datagram anyone can send) drops that datagram and is counted,
		// and the reader reads on.
		if v := recover(); v != nil {
			r.panics.Add(1)
			r.log.Error("panic in the shared socket's reader; datagram dropped", "from", from, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			taken = true
		}
	}()
	taken, a := r.ingest.take(d, from)
	r.gate.received(d, from, a)
	return taken
}

// Panics counts the panics recovered on the shared socket's reader.
func (r *Transport) Panics() uint64 { return r.panics.Load() }

// beneath reports whether a session's media may go beneath pion: unless
// the configuration says otherwise or the offer insists on being the DTLS
// server (setup:passive), since the keys come from our ServerHello.
func beneath(offer *sdp.SessionDescription, pionSRTP bool) bool {
	return !pionSRTP && !OffersDTLSServer(offer)
}

// newPeer makes a PeerConnection on the shared API, or, for a session
// whose media goes beneath pion (opt.direct or opt.ingest), on an API of
// its own: the keys come from hooks that must see this PeerConnection's
// handshake only.
func (r *Transport) newPeer(conf webrtc.Configuration, opt APIOptions) (*webrtc.PeerConnection, error) {
	var api *webrtc.API
	var err error
	if opt.direct != nil || opt.ingest != nil {
		api, err = r.NewAPI(opt)
	} else {
		api, err = r.sharedAPI()
	}
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("webrtc: new peer connection: %w", err)
	}
	return pc, nil
}

// usableRemote keeps the remote candidate addresses worth checking.
func usableRemote(ip net.IP) bool {
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast() && !ip.Equal(net.IPv4bcast)
}

// localIPv4s lists the IPv4 addresses of the interfaces that are up, but
// loopback and link-local ones: the host candidates a remote peer can reach.
func localIPv4s() ([]net.IP, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
				continue
			}
			ips = append(ips, n.IP.To4())
		}
	}
	return ips, nil
}

// Addr is the bound UDP address.
func (r *Transport) Addr() *net.UDPAddr { return r.addr }

// Config is the effective configuration, defaults applied.
func (r *Transport) Config() Config { return r.cfg }

// ICEServers returns the configured servers in pion's form.
func (r *Transport) ICEServers() []webrtc.ICEServer { return PionICEServers(r.cfg.ICEServers) }

// APIOptions tune one pion API built on the shared transport.
type APIOptions struct {
	// NACKHistory overrides Config.NACKHistory for senders of this API
	// (and pionNACKHistory with PionNACK).
	NACKHistory int
	// Interceptors are added after the standard ones (NACK, RTCP reports,
	// TWCC feedback).
	Interceptors []interceptor.Factory
	// NoMux gathers on ephemeral sockets instead of the shared port (a WHIP
	// client talking to a remote server from behind NAT may want this).
	NoMux bool
	// PionNACK keeps pion's NACK responder, which copies every sent packet,
	// instead of ours, which keeps references to the payload and so needs
	// payloads that never change once written (the hub's never do).
	// Default false: ours.
	PionNACK bool
	// RelayOnly drops pion's 2 s wait before accepting a relay pair, which
	// only delays a session that has nothing but relay candidates.
	RelayOnly bool
	// NoTWCC leaves transport-wide congestion control out: the header
	// extension is not negotiated and no TWCC feedback is sent. For a
	// sender that estimates no bandwidth from feedback (an egress), it
	// would only cost. Default false.
	NoTWCC bool
	// direct, when set, lets the API's one PeerConnection send its RTP
	// beneath pion once direct.activate succeeds (see directSRTP). It makes
	// us the DTLS server when answering. NewSender sets it.
	direct *directSRTP
	// ingest, when set, lets the API's one PeerConnection receive its RTP
	// beneath pion (see directIngest). It makes us the DTLS server when
	// answering. Not with direct. NewIngest sets it.
	ingest *directIngest
	// mux, when set, is the UDP mux of the PeerConnection's own sockets,
	// gathered on instead of the shared port. NewClientSender sets it.
	mux ice.UDPMux
}

// receiveMTU is the largest datagram pion reads (see SetReceiveMTU).
const receiveMTU = 8192

// pionNACKHistory is the history of pion's NACK responder (PionNACK)
// unless APIOptions.NACKHistory says otherwise: it copies each packet,
// so Config.NACKHistory, sized for ours, would cost four times as much.
const pionNACKHistory = 4096

// NewAPI builds a pion API on the shared UDP port, with codecs and
// interceptors sized for 8K rates.
func (r *Transport) NewAPI(opt APIOptions) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("webrtc: register codecs: %w", err)
	}
	if opt.direct != nil && opt.ingest != nil {
		return nil, errors.New("webrtc: an API sends or receives beneath pion, not both")
	}
	reg := &interceptor.Registry{}
	var keys *dtlskeys.Secrets
	switch {
	case opt.direct != nil:
		reg.Add(&directInterceptor{d: opt.direct}) // first: innermost, beneath the NACK responder and reports
		keys = &opt.direct.keys
	case opt.ingest != nil:
		reg.Add(&ingestInterceptor{d: opt.ingest}) // first: innermost, beneath reports, TWCC and the NACK generator
		keys = &opt.ingest.keys
		opt.ingest.replay = uint(r.cfg.SRTPReplayWindow)
	}
	history := r.cfg.NACKHistory
	if opt.PionNACK {
		// pion copies every packet into a 1460-byte slot: 6 MB a sender
		// at this size, 24 MB at our default.
		history = pionNACKHistory
	}
	if opt.NACKHistory > 0 {
		history = opt.NACKHistory
	}
	genOpts := []pionnack.GeneratorOption{pionnack.GeneratorSize(uint16(r.cfg.NACKReceive))}
	if opt.PionNACK {
		if err := webrtc.ConfigureNackWithOptions(m, reg, genOpts, pionnack.ResponderSize(uint16(history))); err != nil {
			return nil, fmt.Errorf("webrtc: nack: %w", err)
		}
	} else {
		// What ConfigureNackWithOptions does, with our responder and our
		// generator (see nackgen.go).
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
		reg.Add(r.resps.WithSize(uint16(history)))
		reg.Add(r.nacks)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("webrtc: rtcp reports: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("webrtc: simulcast extensions: %w", err)
	}
	// pion sends all of an interval's TWCC feedback as one compound
	// datagram: at 100 Mbps its 100 ms (1,000 packets, a keyframe burst
	// more) exceed 1500 bytes, which a pion peer drops unless its receive
	// MTU is raised as ours is below. Feedback every 25 ms kept it small,
	// but Chromium's simulcast then failed to bring up its full-size layer
	// within 10 s in 2 of 40 test runs (0 of 32 at 100 ms).
	if !opt.NoTWCC {
		if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
			return nil, fmt.Errorf("webrtc: twcc: %w", err)
		}
	}
	for _, f := range opt.Interceptors {
		reg.Add(f)
	}
	if opt.ingest != nil {
		reg.Add(&repairInterceptor{d: opt.ingest}) // last: outermost, above every reader of the media stream
	}

	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Log: r.log}}
	// pion reads datagrams into 1500-byte buffers and drops longer ones
	// ("short buffer"): a compound RTCP datagram from a peer at 8K rates
	// (a whole interval's TWCC feedback, a long NACK list) can be longer.
	se.SetReceiveMTU(receiveMTU)
	switch {
	case opt.mux != nil:
		se.SetICEUDPMux(opt.mux)
	case !opt.NoMux:
		se.SetICEUDPMux(r.mux)
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// A remote candidate costs connectivity checks from the box: never to
	// an address that is no one's (unspecified), everyone's (multicast,
	// broadcast) or not routed (link-local).
	se.SetRemoteIPFilter(usableRemote)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if r.loopback {
		se.SetIncludeLoopbackCandidate(true)
	}
	if len(r.cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(r.cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if opt.RelayOnly {
		se.SetRelayAcceptanceMinWait(0)
	}
	if keys != nil {
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			return nil, fmt.Errorf("webrtc: dtls role: %w", err)
		}
		se.SetDTLSKeyLogWriter(keys.KeyLog())
		se.SetDTLSServerHelloMessageHook(keys.ServerHello)
	}
	se.SetICETimeouts(r.cfg.DisconnectedTimeout, r.cfg.FailedTimeout, 2*time.Second)
	se.SetSRTPReplayProtectionWindow(uint(r.cfg.SRTPReplayWindow))
	// GCM first: far cheaper per packet than AES-CM + HMAC-SHA1.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	limit := r.cfg.StreamBuffer
	se.BufferFactory = func(t packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
		b := packetio.NewBuffer()
		if t == packetio.RTPBufferPacket {
			b.SetLimitSize(limit)
		} else {
			b.SetLimitSize(1 << 20)
		}
		return b
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// Close releases the UDP port.
func (r *Transport) Close() error {
	return r.mux.Close()
}
