package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"whipgate/gateway"
	"whipgate/whip/rtc/udp"
)

// RTPConfig describes one layer received as RTP over UDP.
type RTPConfig struct {
	// Layer names the layer in logs and OnFrame calls, and is the track
	// name an RTPSource publishes it as. Default "main".
	Layer string `yaml:"layer"`
	// Codec is the RTP payload's codec (h264, h265, av1, vp8, vp9, opus).
	// Required.
	Codec gateway.Codec `yaml:"codec"`
	// Listen is the UDP address to receive on. Default "127.0.0.1:0", any
	// free port (see RTPReceiver.Addr).
	Listen string `yaml:"listen"`
	// RTCPPort is the port on the sender's host that receiver reports and
	// PLIs go to; GStreamer's rtpbin reads RTCP on a udpsrc port of its own.
	// Default 0: the port the RTP comes from.
	RTCPPort int `yaml:"rtcp_port"`
	// Source is the only sender accepted: an address with its port
	// ("192.0.2.7:5004"), or an IP address or host name for any port on
	// it. A host name is resolved once, when the receiver is made.
	// Default: any. Either way the first sender heard is locked in, and
	// datagrams from any other address are dropped (counted as foreign)
	// until it has been silent for 2 s, as an encoder that was restarted
	// sends from a new port. RTCP is taken from any port of the locked
	// sender's host.
	Source string `yaml:"source"`
	// ReadBuffer is the socket receive buffer (SO_RCVBUF) to ask for, in
	// bytes. The kernel caps it at net.core.rmem_max, with a warning in the
	// log. Default 4 MiB, over 300 ms at 100 Mbps.
	ReadBuffer int `yaml:"read_buffer"`
	// ReorderPackets is how many packets after a missing one may arrive
	// before it counts as lost. Default 64.
	ReorderPackets int `yaml:"reorder_packets"`
	// ReorderDelay is how long a packet waits for a missing earlier one.
	// Default 20 ms.
	ReorderDelay time.Duration `yaml:"reorder_delay"`
	// ReportInterval is the time between RTCP receiver reports to the
	// sender. Default 1 s; negative turns them off.
	ReportInterval time.Duration `yaml:"report_interval"`
	// OnFrame, if set, is called with Layer after each frame (a packet with
	// the marker bit) is written; it must be quick. A watchdog uses it.
	OnFrame func(layer string) `yaml:"-"`
}

// ErrNoSender means nothing has sent RTP to the receiver yet, so there is
// nobody to send RTCP to.
var ErrNoSender = errors.New("no RTP sender yet")

func (c RTPConfig) withDefaults() (RTPConfig, error) {
	var err error
	if c.Layer, c.Codec, err = layerCodec("rtp", c.Layer, c.Codec); err != nil {
		return c, err
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.RTCPPort < 0 || c.RTCPPort > 65535 {
		return c, fmt.Errorf("ingest: rtp %s: rtcp_port %d out of range", c.Layer, c.RTCPPort)
	}
	if _, _, err := parseSource(c.Source); err != nil {
		return c, fmt.Errorf("ingest: rtp %s: %w", c.Layer, err)
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = 4 << 20
	}
	if c.ReorderPackets == 0 {
		c.ReorderPackets = 64
	}
	if c.ReorderPackets < 1 || c.ReorderPackets > 4096 {
		return c, fmt.Errorf("ingest: rtp %s: reorder_packets %d: want 1 to 4096", c.Layer, c.ReorderPackets)
	}
	if c.ReorderDelay <= 0 {
		c.ReorderDelay = 20 * time.Millisecond
	}
	if c.ReportInterval == 0 {
		c.ReportInterval = time.Second
	}
	return c, nil
}

// Validate checks the config with its defaults applied.
func (c RTPConfig) Validate() error {
	_, err := c.withDefaults()
	return err
}

// RTPStats counts what a receiver has seen.
type RTPStats struct {
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Frames    uint64 `json:"frames"`
	Lost      uint64 `json:"lost"`
	Late      uint64 `json:"late"`      // late or duplicate, dropped
	Reordered uint64 `json:"reordered"` // held back to restore the order
	PLIs      uint64 `json:"plis"`
	Senders   uint64 `json:"senders"` // senders seen in turn: a new SSRC or source address
	// Foreign counts datagrams dropped for coming from another address
	// than the locked sender (or the configured Source).
	Foreign uint64 `json:"foreign"`
	// Source is the locked sender's address, once one is.
	Source string `json:"source,omitempty"`
}

// sourceSilence is how long the locked sender must have sent nothing
// before another address may take its place: the hwaccel supervisor
// restarts an encoder after at least its backoff (500 ms by default), and
// the new process sends from a new port.
const sourceSilence = 2 * time.Second

// foreignLogEvery rate-limits the line about dropped foreign datagrams.
const foreignLogEvery = 10 * time.Second

// sourceFilter is a resolved RTPConfig.Source.
type sourceFilter struct {
	ips  []netip.Addr // any when empty
	port uint16       // any when 0
}

func (f sourceFilter) allows(a netip.AddrPort) bool {
	return (f.port == 0 || a.Port() == f.port) && (len(f.ips) == 0 || slices.Contains(f.ips, a.Addr()))
}

// parseSource splits an RTPConfig.Source into a host (an IP address or a
// name) and a port, 0 for any.
func parseSource(s string) (host string, port uint16, err error) {
	if s == "" {
		return "", 0, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String(), 0, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		host, ps = s, ""
	}
	if ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("source %q: port %q: want 1 to 65535", s, ps)
		}
		port = uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String(), port, nil
	}
	if !validHostName(host) {
		return "", 0, fmt.Errorf("source %q: want an IP address or host name, with or without a port", s)
	}
	return host, port, nil
}

// validHostName accepts letters, digits, - and . up to 253 characters.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 || h[0] == '-' || h[0] == '.' {
		return false
	}
	for i := range len(h) {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// resolveSource turns an RTPConfig.Source into the addresses it allows.
func resolveSource(s string) (sourceFilter, error) {
	host, port, err := parseSource(s)
	if err != nil || host == "" {
		return sourceFilter{}, err
	}
	f := sourceFilter{port: port}
	if a, err := netip.ParseAddr(host); err == nil {
		f.ips = []netip.Addr{a}
		return f, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return sourceFilter{}, fmt.Errorf("source %q: %w", s, err)
	}
	for _, a := range ips {
		f.ips = append(f.ips, a.Unmap())
	}
	return f, nil
}

// RTPReceiver receives one layer as RTP over UDP from an encoder process
// and writes it on with its own continuous sequence numbers and timestamps:
// an encoder that restarts (new SSRC, new sequence) is spliced on where the
// last one stopped. It sends RTCP receiver reports to the sender, and a PLI
// when asked for a keyframe.
type RTPReceiver struct {
	cfg  RTPConfig
	log  *slog.Logger
	conn *net.UDPConn
	rd   *udp.CoalescedReader // Run's: up to 16 datagrams per recvmmsg
	ssrc uint32               // ours, as the RTCP sender

	mu         sync.Mutex // guards the sender, which RequestKeyframe reads
	haveSender bool
	senderSSRC uint32
	senderAddr netip.AddrPort
	rtcpAddr   netip.AddrPort

	running sync.Mutex // held by Run
	// The sender's address is locked in (see RTPConfig.Source). Run's,
	// kept across calls.
	allowed        sourceFilter
	source         netip.AddrPort // invalid until the first RTP packet
	sourceHeard    time.Time      // the last datagram from source
	release        atomic.Bool    // ReleaseSource was called
	lastForeignLog time.Time
	// State of Run, kept across calls so that output stays continuous.
	reo      *reorder
	stats    recvStats
	w        TrackWriter
	track    int
	hdr      rtp.Header // of the datagram being received
	in       inPacket   // the packet being received
	out      rtp.Packet
	started  bool // something was written
	rebase   bool // the next delivered packet starts a new sender
	seqOff   uint16
	tsOff    uint32
	lastSeq  uint16
	lastTS   uint32
	lastAt   time.Time
	clockRef time.Time

	lastSenderLog time.Time

	closeOnce sync.Once
	closeErr  error

	packets, bytes, frames, plis, senders, foreign atomic.Uint64
}

// NewRTPReceiver validates cfg and binds the UDP socket, so the port is
// known (Addr) before the encoder starts. Close releases it.
func NewRTPReceiver(cfg RTPConfig, log *slog.Logger) (*RTPReceiver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	allowed, err := resolveSource(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("ingest: rtp %s: %w", cfg.Layer, err)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("ingest: rtp %s: listen address %q: %w", cfg.Layer, cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("ingest: rtp %s: %w", cfg.Layer, err)
	}
	r := &RTPReceiver{
		cfg:      cfg,
		log:      log.With("component", "ingest", "layer", cfg.Layer, "rtp", conn.LocalAddr().String()),
		conn:     conn,
		rd:       udp.NewCoalescedReader(0),
		allowed:  allowed,
		ssrc:     rand.Uint32(),
		rebase:   true,
		clockRef: time.Now(),
	}
	r.reo = newReorder(cfg.ReorderPackets, cfg.ReorderDelay, r.deliver)
	r.setReadBuffer()
	// A sender's UDP GSO messages (or a NIC's GRO) then arrive as one
	// read; an encoder sending datagram by datagram loses nothing by it.
	if err := udp.EnableGRO(conn); err != nil {
		r.log.Debug("UDP receives without UDP_GRO", "err", err)
	}
	return r, nil
}

// setReadBuffer asks for the configured receive buffer, past the kernel's
// limit when it may (CAP_NET_ADMIN), and warns when it gets less: at
// 100 Mbps the default 208 KiB overflows within milliseconds of a
// scheduling hiccup.
func (r *RTPReceiver) setReadBuffer() {
	want := r.cfg.ReadBuffer
	if err := r.conn.SetReadBuffer(want); err != nil {
		r.log.Warn("cannot set the UDP receive buffer", "want_bytes", want, "err", err)
		return
	}
	got, err := readBufferSize(r.conn)
	if err != nil {
		r.log.Debug("cannot read back the UDP receive buffer", "err", err)
		return
	}
	if got < want && forceReadBuffer(r.conn, want) == nil {
		if forced, err := readBufferSize(r.conn); err == nil {
			if forced >= want {
				r.log.Info("UDP receive buffer raised past net.core.rmem_max (CAP_NET_ADMIN)", "bytes", forced)
				return
			}
			got = forced
		}
	}
	if got < want {
		r.log.Warn("the kernel capped the UDP receive buffer; raise net.core.rmem_max or expect loss at high bitrates",
			"want_bytes", want, "got_bytes", got, "fix", fmt.Sprintf("sysctl -w net.core.rmem_max=%d", want))
		return
	}
	r.log.Debug("UDP receive buffer", "bytes", got)
}

// Addr is the local address the receiver listens on.
func (r *RTPReceiver) Addr() *net.UDPAddr { return r.conn.LocalAddr().(*net.UDPAddr) }

// Config returns the config with defaults applied.
func (r *RTPReceiver) Config() RTPConfig { return r.cfg }

// Stats returns the receiver's counters.
func (r *RTPReceiver) Stats() RTPStats {
	st := RTPStats{
		Packets: r.packets.Load(), Bytes: r.bytes.Load(), Frames: r.frames.Load(),
		Lost: r.reo.lost.Load(), Late: r.reo.late.Load(), Reordered: r.reo.reordered.Load(),
		PLIs: r.plis.Load(), Senders: r.senders.Load(), Foreign: r.foreign.Load(),
	}
	r.mu.Lock()
	if r.haveSender {
		st.Source = r.senderAddr.String()
	}
	r.mu.Unlock()
	return st
}

// ReleaseSource lets the next RTP packet from any allowed address lock
// the source in, without waiting for the locked sender's silence: for a
// caller that knows the encoder behind the port was replaced.
func (r *RTPReceiver) ReleaseSource() { r.release.Store(true) }

// Close releases the socket; a Run in progress returns. It is idempotent.
func (r *RTPReceiver) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.conn.Close() })
	return r.closeErr
}

// RequestKeyframe sends the sender an RTCP PLI, in a compound packet after
// an empty receiver report as RTCP requires. GStreamer's rtpbin turns it
// into a force-key-unit event for its encoder; ffmpeg ignores it. It fails
// with ErrNoSender before any RTP has arrived.
func (r *RTPReceiver) RequestKeyframe() error {
	r.mu.Lock()
	have, media, to := r.haveSender, r.senderSSRC, r.rtcpAddr
	r.mu.Unlock()
	if !have {
		return fmt.Errorf("ingest: rtp %s: keyframe request: %w", r.cfg.Layer, ErrNoSender)
	}
	b, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: r.ssrc},
		&rtcp.PictureLossIndication{SenderSSRC: r.ssrc, MediaSSRC: media},
	})
	if err == nil {
		_, err = r.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		return fmt.Errorf("ingest: rtp %s: send PLI to %s: %w", r.cfg.Layer, to, err)
	}
	r.plis.Add(1)
	r.log.Debug("sent PLI", "to", to.String(), "media_ssrc", media)
	return nil
}

// Run receives until ctx is done (it then returns ctx.Err()) or the
// receiver is closed, writing packets to track of w. Calls are serialized;
// the socket stays bound between them, so an encoder can keep sending while
// the publication is renewed.
func (r *RTPReceiver) Run(ctx context.Context, w TrackWriter, track int) error {
	r.running.Lock()
	defer r.running.Unlock()
	r.w, r.track = w, track
	defer func() { r.w = nil }()
	// A publication's first packet must not look like a continuation.
	r.rebase = true

	stop := context.AfterFunc(ctx, func() { _ = r.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var (
		deadline time.Time // set on the socket
		nextRR   = time.Now().Add(r.cfg.ReportInterval)
	)
	for {
		var want time.Time
		if r.cfg.ReportInterval > 0 {
			want = nextRR
		}
		if d, ok := r.reo.deadline(); ok && (want.IsZero() || d.Before(want)) {
			want = d
		}
		if !want.Equal(deadline) {
			if err := r.conn.SetReadDeadline(want); err != nil {
				return r.runErr(ctx, err)
			}
			deadline = want
		}
		// After setting the deadline: a cancellation that raced with it has
		// made ctx.Err() non-nil by now.
		if err := ctx.Err(); err != nil {
			return err
		}
		d, from, _, err := r.rd.Next(r.conn)
		now := time.Now()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			deadline = time.Unix(1, 0) // whatever was set has passed
		case err != nil:
			return r.runErr(ctx, err)
		default:
			r.receive(d, from, now)
		}
		r.reo.expire(now)
		if r.cfg.ReportInterval > 0 && !now.Before(nextRR) {
			r.sendReport(now)
			nextRR = now.Add(r.cfg.ReportInterval)
		}
	}
}

func (r *RTPReceiver) runErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("ingest: rtp %s: %w", r.cfg.Layer, err)
}

// receive handles one datagram: RTP, or RTCP from the sender sharing the
// port (rtcp-mux, RFC 5761: RTCP packet types 192-223 in the second byte).
// Only the locked source's datagrams get through (see RTPConfig.Source).
func (r *RTPReceiver) receive(b []byte, from netip.AddrPort, now time.Time) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if r.release.Load() && r.release.Swap(false) {
		r.source = netip.AddrPort{}
	}
	if from == r.source {
		r.sourceHeard = now
	}
	if len(b) >= 2 && b[1] >= 192 && b[1] <= 223 {
		switch {
		case r.source.IsValid() && from.Addr() == r.source.Addr():
			// rtpbin sends its reports from a socket of their own.
			r.receiveRTCP(b, now)
		case r.source.IsValid() || !r.allowed.allows(from):
			r.dropForeign(from, now)
		}
		return
	}
	lock := false
	if from != r.source {
		if !r.allowed.allows(from) || r.source.IsValid() && now.Sub(r.sourceHeard) < sourceSilence {
			r.dropForeign(from, now)
			return
		}
		lock = true
	}
	h := &r.hdr // reused: its CSRC and extension slices keep their room
	hl, err := h.Unmarshal(b)
	if err != nil || h.Version != 2 {
		return
	}
	if lock {
		// The first lock shows as the "RTP sender" line below.
		if r.source.IsValid() {
			r.log.Info("RTP source changed after the last one's silence", "from", from.String(), "was", r.source.String(),
				"silent_for", now.Sub(r.sourceHeard).Round(time.Millisecond))
		}
		r.source, r.sourceHeard = from, now
	}
	payload := b[hl:]
	if h.Padding {
		// The last octet counts the padding, itself included (RFC 3550
		// §5.1): a packet without one, or with a count of 0, is malformed.
		if len(payload) == 0 || payload[len(payload)-1] == 0 || int(payload[len(payload)-1]) > len(payload) {
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}
	r.mu.Lock()
	newSender := lock || !r.haveSender || h.SSRC != r.senderSSRC
	if newSender || from != r.senderAddr {
		r.haveSender, r.senderSSRC, r.senderAddr = true, h.SSRC, from
		r.rtcpAddr = r.rtcpAddrFrom(from)
	}
	r.mu.Unlock()
	if newSender {
		// A sender that keeps changing its SSRC would log on every
		// packet; one line a second is enough to show it.
		if n := r.senders.Add(1); now.Sub(r.lastSenderLog) >= time.Second {
			r.log.Info("RTP sender", "from", from.String(), "ssrc", h.SSRC, "pt", h.PayloadType,
				"rtcp_to", r.rtcpAddrFrom(from).String(), "senders_so_far", n)
			r.lastSenderLog = now
		}
		r.reo.flush()
		r.stats = recvStats{}
		r.rebase = true
	}
	r.packets.Add(1)
	r.bytes.Add(uint64(len(payload)))
	r.stats.update(h.SequenceNumber, h.Timestamp, r.arrival(now))
	r.in = inPacket{seq: h.SequenceNumber, ts: h.Timestamp, marker: h.Marker, payload: payload, at: now}
	r.reo.push(&r.in)
}

// dropForeign counts a datagram from an address other than the source's,
// saying so in the log now and then.
func (r *RTPReceiver) dropForeign(from netip.AddrPort, now time.Time) {
	n := r.foreign.Add(1)
	if now.Sub(r.lastForeignLog) < foreignLogEvery {
		return
	}
	r.lastForeignLog = now
	attrs := []any{"from", from.String(), "foreign_so_far", n}
	if r.source.IsValid() {
		attrs = append(attrs, "source", r.source.String(), "source_silent_for", now.Sub(r.sourceHeard).Round(time.Millisecond))
	}
	if r.cfg.Source != "" {
		attrs = append(attrs, "configured_source", r.cfg.Source)
	}
	r.log.Warn("RTP from another address than the encoder's dropped", attrs...)
}

func (r *RTPReceiver) rtcpAddrFrom(from netip.AddrPort) netip.AddrPort {
	if r.cfg.RTCPPort != 0 {
		return netip.AddrPortFrom(from.Addr(), uint16(r.cfg.RTCPPort))
	}
	return from
}

// arrival is now in the codec's RTP clock, for the jitter estimate.
func (r *RTPReceiver) arrival(now time.Time) int64 {
	return int64(now.Sub(r.clockRef)) * int64(r.cfg.Codec.ClockRate()) / int64(time.Second)
}

func (r *RTPReceiver) receiveRTCP(b []byte, now time.Time) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	r.mu.Lock()
	sender := r.senderSSRC
	r.mu.Unlock()
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == sender {
			r.stats.senderReport(sr, now)
		}
	}
}

// deliver writes one in-order packet, mapped into the receiver's own
// sequence and timestamp space.
func (r *RTPReceiver) deliver(p *inPacket) {
	if r.rebase {
		r.rebase = false
		if r.started {
			gap := max(int64(p.at.Sub(r.lastAt))*int64(r.cfg.Codec.ClockRate())/int64(time.Second), 1)
			r.seqOff = r.lastSeq + 1 - p.seq
			r.tsOff = r.lastTS + uint32(gap) - p.ts
		}
	}
	seq, ts := p.seq+r.seqOff, p.ts+r.tsOff
	r.started, r.lastSeq, r.lastAt = true, seq, p.at
	if int32(ts-r.lastTS) > 0 {
		r.lastTS = ts
	}
	if r.w == nil {
		return
	}
	r.out.Header = rtp.Header{Version: 2, PayloadType: dynamicPT, SequenceNumber: seq, Timestamp: ts, SSRC: r.ssrc, Marker: p.marker}
	r.out.Payload = p.payload
	r.w.WriteRTP(r.track, &r.out)
	r.out.Payload = nil
	if p.marker {
		r.frames.Add(1)
		if r.cfg.OnFrame != nil {
			r.cfg.OnFrame(r.cfg.Layer)
		}
	}
}

// sendReport sends a receiver report about the current sender.
func (r *RTPReceiver) sendReport(now time.Time) {
	r.mu.Lock()
	have, media, to := r.haveSender, r.senderSSRC, r.rtcpAddr
	r.mu.Unlock()
	if !have || !r.stats.started {
		return
	}
	b, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: r.ssrc, Reports: []rtcp.ReceptionReport{r.stats.report(media, now)}}})
	if err == nil {
		_, err = r.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		r.log.Debug("cannot send a receiver report", "to", to.String(), "err", err)
	}
}
