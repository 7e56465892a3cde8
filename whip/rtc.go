package whip

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/webrtc/v4"
)

// RTCConfig configures the WebRTC transport every session of the server
// shares. The zero value means the defaults.
type RTCConfig struct {
	// UDPListen is the address of the one UDP port that carries all WebRTC
	// media (ICE UDP mux), so a box behind a firewall needs one rule.
	// Default: the HTTP listener's host with port 8189; port 0 picks one.
	UDPListen string `yaml:"udp_listen"`
	// PublicIPs replace the host addresses in candidates (NAT 1:1), so
	// clients behind the box's NAT, and FFmpeg (which uses only the first
	// host candidate), reach the right address.
	PublicIPs []string `yaml:"public_ips"`
	// ICEServers are STUN/TURN servers for the server's own gathering and,
	// for WHIP/WHEP, handed to clients in Link headers.
	ICEServers []ICEServer `yaml:"ice_servers"`
	// SocketBuffer is the UDP socket's send and receive buffer in bytes.
	// Default 8 MiB, so a 2 MB keyframe burst at 100 Mbps is not dropped by
	// the kernel; it warns when net.core.rmem_max/wmem_max clamp it.
	SocketBuffer int `yaml:"socket_buffer"`
	// SRTPReplayWindow is the SRTP replay-protection window in packets.
	// Default 8192: OBS retransmits without RTX, so a retransmission can be
	// thousands of packets late at 8K rates (pion's 64 would drop it).
	SRTPReplayWindow int `yaml:"srtp_replay_window"`
	// NACKHistory is how many sent packets each sender keeps for
	// retransmission. Default 4096 (0.4 s at 100 Mbps); power of two, at
	// most 32768.
	NACKHistory int `yaml:"nack_history"`
	// NACKReceive is the receive-side loss tracking window in packets.
	// Default 8192.
	NACKReceive int `yaml:"nack_receive"`
	// StreamBuffer is pion's per-stream SRTP read buffer in bytes. Default
	// 4 MiB (pion's 1 MiB is 80 ms at 100 Mbps).
	StreamBuffer int `yaml:"stream_buffer"`
	// DisconnectedTimeout and FailedTimeout are ICE consent timeouts.
	// Defaults 5 s and 15 s.
	DisconnectedTimeout time.Duration `yaml:"disconnected_timeout"`
	FailedTimeout       time.Duration `yaml:"failed_timeout"`

	// listenIPs replaces localIPv4s for an unspecified UDPListen (tests:
	// loopback addresses only).
	listenIPs func() ([]net.IP, error)
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls" json:"urls"`
	Username   string   `yaml:"username,omitempty" json:"username,omitempty"`
	Credential string   `yaml:"credential,omitempty" json:"credential,omitempty"`
}

func (c *RTCConfig) applyDefaults() {
	if c.UDPListen == "" {
		c.UDPListen = "127.0.0.1:8189"
	}
	if c.SocketBuffer <= 0 {
		c.SocketBuffer = 8 << 20
	}
	if c.SRTPReplayWindow <= 0 {
		c.SRTPReplayWindow = 8192
	}
	if c.NACKHistory <= 0 {
		c.NACKHistory = 4096
	}
	if c.NACKReceive <= 0 {
		c.NACKReceive = 8192
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = 4 << 20
	}
	if c.DisconnectedTimeout <= 0 {
		c.DisconnectedTimeout = 5 * time.Second
	}
	if c.FailedTimeout <= 0 {
		c.FailedTimeout = 15 * time.Second
	}
}

// Validate checks the configuration.
func (c RTCConfig) Validate() error {
	if c.UDPListen != "" {
		if _, _, err := net.SplitHostPort(c.UDPListen); err != nil {
			return fmt.Errorf("udp_listen %q: %w", c.UDPListen, err)
		}
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("public_ips: %q is not an IP address", ip)
		}
	}
	for _, n := range []int{c.NACKHistory, c.NACKReceive} {
		if n != 0 && (n > 32768 || n&(n-1) != 0) {
			return fmt.Errorf("nack sizes must be powers of two up to 32768, got %d", n)
		}
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return errors.New("ice_servers: an entry has no urls")
		}
	}
	return nil
}

// RTC is the WebRTC transport shared by all sessions: one UDP port, one
// pion API per direction.
type RTC struct {
	cfg      RTCConfig
	log      *slog.Logger
	mux      ice.UDPMux
	conns    []*batchConn // one per local address the port is bound on
	gate     readGate     // holds the sockets' reads while a publisher's burst is inside pion
	ingest   ingestTable  // publishers whose RTP the sockets' reader takes beneath pion
	addr     *net.UDPAddr
	loopback bool
	nacks    *nackGeneratorFactory // the NACK generators of every API built here
}

// NewRTC binds the shared UDP port.
func NewRTC(cfg RTCConfig, log *slog.Logger) (*RTC, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webrtc config: %w", err)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.UDPListen)
	if err != nil {
		return nil, fmt.Errorf("webrtc: resolve %s: %w", cfg.UDPListen, err)
	}
	r := &RTC{cfg: cfg, log: log}
	r.nacks = newNACKGeneratorFactory(uint16(min(cfg.NACKReceive, 1<<15)), log)
	pionLog := LoggerFactory{Log: log}.NewLogger("ice")
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
	port := addr.Port
	var muxes []ice.UDPMux
	fail := func(err error) (*RTC, error) {
		for _, m := range muxes {
			_ = m.Close()
		}
		return nil, err
	}
	for _, ip := range ips {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return fail(fmt.Errorf("webrtc: listen udp %s:%d: %w", ip, port, err))
		}
		local := conn.LocalAddr().(*net.UDPAddr)
		port = local.Port // an ephemeral port: the same on every address
		setSocketBuffers(conn, cfg.SocketBuffer, log)
		bc := newBatchConn(conn, log, &r.gate)
		bc.ingest = &r.ingest
		r.conns = append(r.conns, bc)
		muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: pionLog, UDPConn: bc}))
		if r.addr == nil {
			r.addr = local
		}
	}
	r.loopback = true
	for _, ip := range ips {
		r.loopback = r.loopback && ip.IsLoopback()
	}
	if len(muxes) == 1 {
		r.mux = muxes[0]
	} else {
		r.mux = ice.NewMultiUDPMuxDefault(muxes...)
		r.addr = &net.UDPAddr{IP: addr.IP, Port: port}
	}
	return r, nil
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

// setSocketBuffers asks for large buffers. Linux silently clamps them to
// net.core.rmem_max/wmem_max (4 MiB even on hosts tuned for video, 208 KiB
// by default); with CAP_NET_ADMIN, as an appliance running as root has, the
// FORCE options pass the limit (quic-go does the same). Otherwise it warns,
// naming the sysctl to raise.
func setSocketBuffers(conn *net.UDPConn, size int, log *slog.Logger) {
	for _, b := range []struct {
		dir, sysctl, effect string
		set                 func(int) error
		opt, force          int
	}{
		{"receive", "net.core.rmem_max", "keyframe bursts may be dropped", conn.SetReadBuffer, syscall.SO_RCVBUF, syscall.SO_RCVBUFFORCE},
		{"send", "net.core.wmem_max", "batched sends may stall", conn.SetWriteBuffer, syscall.SO_SNDBUF, syscall.SO_SNDBUFFORCE},
	} {
		if err := b.set(size); err != nil {
			log.Warn("cannot set the UDP "+b.dir+" buffer", "err", err)
			continue
		}
		got := socketBuffer(conn, b.opt)
		if got < 0 || got >= size {
			continue
		}
		if sockControl(conn, func(fd int) error { return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, b.force, size) }) == nil {
			if got = socketBuffer(conn, b.opt); got >= size {
				log.Info("UDP "+b.dir+" buffer raised past "+b.sysctl+" (CAP_NET_ADMIN)", "bytes", got)
				continue
			}
		}
		log.Warn("kernel clamped the UDP "+b.dir+" buffer; "+b.effect,
			"wanted", size, "got", got, "fix", fmt.Sprintf("sysctl -w %s=%d", b.sysctl, size))
	}
}

// socketBuffer is the buffer size Linux granted for opt (it reports twice
// that, the rest being its bookkeeping); -1 if it cannot be read.
func socketBuffer(conn *net.UDPConn, opt int) int {
	n := -2
	_ = sockControl(conn, func(fd int) error {
		v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, opt)
		if err == nil {
			n = v
		}
		return err
	})
	return n / 2
}

// gatePublisher registers a publisher's PeerConnection with the read gate
// of the shared sockets. Its track readers call StartReader, Reading and
// delivered on the result; the session calls ungate.
func (r *RTC) gatePublisher(pc *webrtc.PeerConnection) *gatedPeer {
	return r.gate.add(pc)
}

func (r *RTC) ungate(p *gatedPeer) { r.gate.remove(p) }

// Addr is the bound UDP address.
func (r *RTC) Addr() *net.UDPAddr { return r.addr }

// Config is the effective configuration, defaults applied.
func (r *RTC) Config() RTCConfig { return r.cfg }

// ICEServers returns the configured servers in pion's form.
func (r *RTC) ICEServers() []webrtc.ICEServer { return PionICEServers(r.cfg.ICEServers) }

// PionICEServers converts servers to pion's form.
func PionICEServers(list []ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(list))
	for _, s := range list {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// APIOptions tune one pion API built on the shared transport.
type APIOptions struct {
	// NACKHistory overrides RTCConfig.NACKHistory for senders of this API.
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
	// Direct, when set, lets the API's one PeerConnection send its RTP
	// beneath pion once Direct.Activate succeeds (see DirectSRTP). It makes
	// us the DTLS server when answering.
	Direct *DirectSRTP
	// Ingest, when set, lets the API's one PeerConnection receive its RTP
	// beneath pion (see DirectIngest). It makes us the DTLS server when
	// answering. Not with Direct.
	Ingest *DirectIngest
}

// receiveMTU is the largest datagram pion reads (see SetReceiveMTU).
const receiveMTU = 8192

// NewAPI builds a pion API on the shared UDP port, with codecs and
// interceptors sized for 8K rates.
func (r *RTC) NewAPI(opt APIOptions) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("webrtc: register codecs: %w", err)
	}
	if opt.Direct != nil && opt.Ingest != nil {
		return nil, errors.New("webrtc: an API sends or receives beneath pion, not both")
	}
	reg := &interceptor.Registry{}
	var keys *handshakeSecrets
	switch {
	case opt.Direct != nil:
		reg.Add(directFactory{opt.Direct}) // first: innermost, beneath the NACK responder and reports
		keys = &opt.Direct.keys
	case opt.Ingest != nil:
		reg.Add(ingestFactory{opt.Ingest}) // first: innermost, beneath reports, TWCC and the NACK generator
		keys = &opt.Ingest.keys
		opt.Ingest.replay = uint(r.cfg.SRTPReplayWindow)
	}
	history := r.cfg.NACKHistory
	if opt.NACKHistory > 0 {
		history = opt.NACKHistory
	}
	genOpts := []nack.GeneratorOption{nack.GeneratorSize(uint16(r.cfg.NACKReceive))}
	if opt.PionNACK {
		if err := webrtc.ConfigureNackWithOptions(m, reg, genOpts, nack.ResponderSize(uint16(history))); err != nil {
			return nil, fmt.Errorf("webrtc: nack: %w", err)
		}
	} else {
		// What ConfigureNackWithOptions does, with our responder and our
		// generator (see nackgen.go).
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
		reg.Add(&nackResponderFactory{size: uint16(history), log: r.log})
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
	if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
		return nil, fmt.Errorf("webrtc: twcc: %w", err)
	}
	for _, f := range opt.Interceptors {
		reg.Add(f)
	}

	se := webrtc.SettingEngine{LoggerFactory: LoggerFactory{Log: r.log}}
	// pion reads datagrams into 1500-byte buffers and drops longer ones
	// ("short buffer"): a compound RTCP datagram from a peer at 8K rates
	// (a whole interval's TWCC feedback, a long NACK list) can be longer.
	se.SetReceiveMTU(receiveMTU)
	if !opt.NoMux {
		se.SetICEUDPMux(r.mux)
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
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
		se.SetDTLSKeyLogWriter(keyLog{keys})
		se.SetDTLSServerHelloMessageHook(keys.serverHello)
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
func (r *RTC) Close() error {
	return r.mux.Close()
}
