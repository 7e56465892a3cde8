package rtc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/nack"
)

// Config configures the WebRTC transport every session of the server
// shares. The zero value means the defaults.
type Config struct {
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
	// retransmission (each WHEP viewer, and an egress session until its
	// layer's bitrate is known). Default 16384: 1.6 s at 100 Mbps, 2 s
	// (the responder's nack.MaxAge) below 80 Mbps. A slot is a reference
	// to the hub's shared payload, 64 bytes: 1 MiB per viewer; the
	// references keep that much of the stream's payloads in memory,
	// shared by all its viewers: about 20 MB at 100 Mbps (0.5 MB at
	// 5 Mbps, where 4096 slots held 8 s). Power of two, at most 32768.
	NACKHistory int `yaml:"nack_history"`
	// NACKResendBudget bounds what each sender re-sends for NACKs, in
	// percent of the bytes it sent over the last second. Default 15
	// (nack.DefaultResendBudget); what a NACK asks past it is not re-sent,
	// and the viewer's frame waits for a keyframe the publisher is asked
	// for. At most 1000.
	NACKResendBudget int `yaml:"nack_resend_budget"`
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

func (c *Config) applyDefaults() {
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
		c.NACKHistory = 16384
	}
	if c.NACKResendBudget <= 0 {
		c.NACKResendBudget = nack.DefaultResendBudget
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
func (c Config) Validate() error {
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
	if c.NACKResendBudget < 0 || c.NACKResendBudget > 1000 {
		return fmt.Errorf("nack_resend_budget: %d %% is not between 1 and 1000", c.NACKResendBudget)
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return errors.New("ice_servers: an entry has no urls")
		}
		for _, u := range s.URLs {
			parsed, err := ParseICEURL(u)
			if err != nil {
				return fmt.Errorf("ice_servers: %q: %w", u, err)
			}
			turn := parsed.Scheme == stun.SchemeTypeTURN || parsed.Scheme == stun.SchemeTypeTURNS
			if turn && (s.Username == "" || s.Credential == "") {
				return fmt.Errorf("ice_servers: TURN server %q needs username and credential", u)
			}
		}
	}
	return nil
}

// ParseICEURL parses a STUN or TURN URL (RFC 7064, RFC 7065) as pion
// does, but first refuses a host that has no port even once the default
// one is added: pion's parser then adds it again and again, until the
// stack overflows and the process dies ("turn:[::1] 478"). Check every
// URL with it before pion sees it.
func ParseICEURL(raw string) (*stun.URI, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(u.Opaque); err != nil {
		if _, _, err := net.SplitHostPort(u.Opaque + ":3478"); err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
	}
	return stun.ParseURI(raw)
}

// PionICEServers converts servers to pion's form.
func PionICEServers(list []ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(list))
	for _, s := range list {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}
