package ingest

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"whipgate/certs/certstest"
	"whipgate/gateway"
)

// udpSender sends RTP from its own UDP socket, each packet a one-packet
// frame whose payload starts with the sender's tag.
type udpSender struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
	tag  byte
	ssrc uint32
	seq  uint16
	ts   uint32
}

func newUDPSender(t *testing.T, ip string, to *net.UDPAddr, tag byte) *udpSender {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpSender{t: t, conn: conn, to: to, tag: tag, ssrc: uint32(tag) << 8, seq: uint16(tag) * 100, ts: 90000}
}

func (s *udpSender) addr() string { return s.conn.LocalAddr().String() }

func (s *udpSender) send(n int) {
	s.t.Helper()
	for range n {
		b, err := (&rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc, Marker: true},
			Payload: []byte{s.tag, 0x41, 0x9a},
		}).Marshal()
		if err != nil {
			s.t.Fatal(err)
		}
		if _, err := s.conn.WriteToUDP(b, s.to); err != nil {
			s.t.Fatal(err)
		}
		s.seq++
		s.ts += 3000
	}
}

func (s *udpSender) sendReport() {
	s.t.Helper()
	b, err := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: s.ssrc, NTPTime: 1 << 40, RTPTime: s.ts}})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.conn.WriteToUDP(b, s.to); err != nil {
		s.t.Fatal(err)
	}
}

// tagWriter records the tag of every packet a receiver writes.
type tagWriter struct {
	mu   sync.Mutex
	tags []byte
}

func (w *tagWriter) WriteRTP(_ int, p *rtp.Packet) {
	w.mu.Lock()
	w.tags = append(w.tags, p.Payload[0])
	w.mu.Unlock()
}

func (w *tagWriter) got() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.tags)
}

// runReceiver starts a receiver with cfg writing into a tagWriter.
func runReceiver(t *testing.T, cfg RTPConfig, log *slog.Logger) (*RTPReceiver, *tagWriter) {
	t.Helper()
	cfg.Codec = gateway.H264
	cfg.ReportInterval = -1
	r, err := NewRTPReceiver(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	w := &tagWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, w, 0) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
	return r, w
}

// waitStats waits until the receiver has taken packets and dropped
// foreign datagrams in all, then returns its stats.
func waitStats(t *testing.T, r *RTPReceiver, packets, foreign uint64) RTPStats {
	t.Helper()
	waitFor(t, 2*time.Second, "the datagrams", func() bool {
		st := r.Stats()
		return st.Packets >= packets && st.Foreign >= foreign
	})
	st := r.Stats()
	if st.Packets != packets || st.Foreign != foreign {
		t.Fatalf("got %d packets and %d foreign datagrams, want %d and %d", st.Packets, st.Foreign, packets, foreign)
	}
	return st
}

// The first sender heard is locked in: another address's datagrams are
// dropped, counted and logged (once in a while), until the first has been
// silent for 2 s; then the other takes its place.
func TestRTPSourceLock(t *testing.T) {
	var logs certstest.LogTap // the receiver logs from its goroutine
	r, w := runReceiver(t, RTPConfig{}, slog.New(slog.NewTextHandler(&logs, nil)))
	a := newUDPSender(t, "127.0.0.1", r.Addr(), 'A')
	b := newUDPSender(t, "127.0.0.1", r.Addr(), 'B')

	a.send(5)
	waitStats(t, r, 5, 0)
	b.send(5)
	waitStats(t, r, 5, 5)
	a.send(5)
	st := waitStats(t, r, 10, 5)
	if got := w.got(); got != "AAAAAAAAAA" {
		t.Errorf("got packets from %q, want A's 10 only", got)
	}
	if st.Source != a.addr() || st.Senders != 1 {
		t.Errorf("got source %s after %d senders, want %s after 1", st.Source, st.Senders, a.addr())
	}
	if n := strings.Count(logs.String(), "RTP from another address than the encoder's dropped"); n != 1 {
		t.Errorf("got %d log lines about foreign datagrams, want 1 (rate-limited)", n)
	}
	aStopped := time.Now()

	// RTCP from the locked sender's host on another port is the sender's
	// (rtpbin reports from its own socket); from another host it is not.
	newUDPSender(t, "127.0.0.1", r.Addr(), 'a').sendReport()
	newUDPSender(t, "127.0.0.2", r.Addr(), 'x').sendReport()
	waitStats(t, r, 10, 6)

	time.Sleep(time.Second)
	b.send(3) // A silent for a second only
	waitStats(t, r, 10, 9)

	time.Sleep(time.Until(aStopped.Add(sourceSilence + 100*time.Millisecond)))
	b.send(5)
	st = waitStats(t, r, 15, 9)
	if got := w.got(); got != "AAAAAAAAAABBBBB" {
		t.Errorf("got packets from %q, want A's 10, then B's 5", got)
	}
	if st.Source != b.addr() || st.Senders != 2 {
		t.Errorf("got source %s after %d senders, want %s after 2", st.Source, st.Senders, b.addr())
	}
	if n := strings.Count(logs.String(), "RTP source changed after the last one's silence"); n != 1 {
		t.Errorf("got %d log lines about the new source, want 1", n)
	}
	a.send(2) // now A is the foreign one
	waitStats(t, r, 15, 11)
}

// ReleaseSource lets a new sender in at once: the caller knows the old
// one is gone.
func TestRTPSourceRelease(t *testing.T) {
	r, w := runReceiver(t, RTPConfig{}, testLog(t))
	a := newUDPSender(t, "127.0.0.1", r.Addr(), 'A')
	b := newUDPSender(t, "127.0.0.1", r.Addr(), 'B')
	a.send(3)
	waitStats(t, r, 3, 0)
	r.ReleaseSource()
	b.send(3)
	st := waitStats(t, r, 6, 0)
	if got := w.got(); got != "AAABBB" || st.Source != b.addr() {
		t.Errorf("got packets from %q with source %s, want A's 3 and B's 3 with source %s", got, st.Source, b.addr())
	}
	a.send(1)
	waitStats(t, r, 6, 1)
}

// A configured source admits only its address (any port when it names
// none), even when another sender comes first.
func TestRTPSourceConfigured(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source func(a, b *udpSender) string
		want   string // tags of the packets taken
	}{
		{"none: the first wins", func(_, _ *udpSender) string { return "" }, "AAA"},
		{"b's address", func(_, b *udpSender) string { return b.addr() }, "BBB"},
		{"b's IP", func(_, _ *udpSender) string { return "127.0.0.2" }, "BBB"},
		{"a's host name", func(_, _ *udpSender) string { return "localhost" }, "AAA"},
		{"nobody's port", func(_, _ *udpSender) string { return "127.0.0.1:1" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The senders are made first, for their addresses; they
			// send to the receiver once it is there.
			a := newUDPSender(t, "127.0.0.1", nil, 'A')
			b := newUDPSender(t, "127.0.0.2", nil, 'B')
			r, w := runReceiver(t, RTPConfig{Source: tc.source(a, b)}, testLog(t))
			a.to, b.to = r.Addr(), r.Addr()
			a.send(3)
			b.send(3)
			waitStats(t, r, uint64(len(tc.want)), uint64(6-len(tc.want)))
			if got := w.got(); got != tc.want {
				t.Errorf("got packets from %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRTPSourceConfig(t *testing.T) {
	for _, tc := range []struct {
		source string
		want   string // "" for valid; else part of the error
	}{
		{"", ""},
		{"192.0.2.7", ""},
		{"192.0.2.7:5004", ""},
		{"2001:db8::1", ""},
		{"[2001:db8::1]:5004", ""},
		{"encoder.lan", ""},
		{"encoder.lan:5004", ""},
		{"192.0.2.7:0", `source "192.0.2.7:0": port "0": want 1 to 65535`},
		{"192.0.2.7:70000", `port "70000": want 1 to 65535`},
		{"encoder.lan:rtp", `port "rtp": want 1 to 65535`},
		{"enc oder", `source "enc oder": want an IP address or host name`},
		{"-encoder", `want an IP address or host name`},
		{"a/b", `want an IP address or host name`},
		{"encoder\n", `want an IP address or host name`},
	} {
		err := RTPConfig{Codec: gateway.H264, Source: tc.source}.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("source %q: got %v, want no error", tc.source, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source %q: got %v, want an error containing %s", tc.source, err, tc.want)
		}
	}
}
