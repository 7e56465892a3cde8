package rtc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc/codecs"
)

// TestIngestReadsSenderReports: a pion publisher's Sender Reports reach the
// report interceptor through the Ingest's RTCP readers, so the receiver
// reports it gets back carry LSR and DLSR for every stream it sends and it
// computes its round trip from them; the same on pion's path, beneath it
// (DirectIngest: RTP decrypted by us, RTCP still pion's) and for each rid
// of a simulcast section. The Ingest's own round trip (ICE) is measured,
// and Close ends every reader it started.
func TestIngestReadsSenderReports(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pionSRTP bool
		rids     []string
		srtp     string // the path the media must take
	}{
		{"direct", false, nil, "direct"},
		{"pion", true, nil, "pion"},
		{"simulcast", false, []string{"f", "h"}, "pion"}, // pion tells rids apart
	} {
		t.Run(tc.name, func(t *testing.T) {
			testkit.LeakCheck(t)
			p := newReportingPublisher(t, tc.rids)
			in := p.connect(t, newTestTransport(t), tc.pionSRTP)
			p.sendUntilReported(t)

			if got := in.Stats().SRTP; got != tc.srtp {
				t.Fatalf("the publisher's media took the %s path, want %s", got, tc.srtp)
			}
			for _, ssrc := range p.ssrcs {
				rr := p.lastReport(ssrc)
				if rr.LastSenderReport == 0 || rr.Delay == 0 {
					t.Fatalf("SSRC %d: receiver report LSR %#x DLSR %d; want both set", ssrc, rr.LastSenderReport, rr.Delay)
				}
			}
			rtts := map[uint32]time.Duration{}
			for _, ssrc := range p.ssrcs {
				// LSR and DLSR are truncated to 1/65536 s: a loopback
				// round trip may come out a unit or two below zero.
				rtt := p.roundTrip(ssrc)
				if rtt < -3*time.Second/65536 || rtt > time.Second {
					t.Fatalf("SSRC %d: the publisher computed a round trip of %v from our report", ssrc, rtt)
				}
				rtts[ssrc] = rtt
			}
			rtt, ok := in.RTT()
			if !ok || rtt <= 0 || rtt > time.Second {
				t.Fatalf("ingest RTT %v (measured %v); want a loopback round trip", rtt, ok)
			}
			t.Logf("publisher's round trips from our reports %v; ICE's %v", rtts, rtt)

			if err := in.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			p.wg.Wait() // the track readers: the leak check covers the RTCP readers
		})
	}
}

// reportingPublisher is a pion publisher (pion's default interceptors:
// Sender Reports every second) of one H.264 video section, one encoding
// per rid, that keeps the receiver reports it reads.
type reportingPublisher struct {
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	tracks []*webrtc.TrackLocalStaticRTP
	rids   []string
	ssrcs  []uint32

	mu       sync.Mutex
	reports  map[uint32]rtcp.ReceptionReport // the last block, by SSRC
	arrivals map[uint32]uint32               // when it came, NTP's middle 32 bits
	got      atomic.Int64                    // packets at the Ingest's track readers
	wg       sync.WaitGroup
}

func newReportingPublisher(t *testing.T, rids []string) *reportingPublisher {
	t.Helper()
	pc := testkit.LoopbackPeer(t)
	p := &reportingPublisher{pc: pc, rids: rids, reports: map[uint32]rtcp.ReceptionReport{}, arrivals: map[uint32]uint32{}}
	t.Cleanup(func() {
		_ = pc.Close()
		p.wg.Wait()
	})
	p.tracks, p.sender = testkit.SimulcastSender(t, pc, codecs.Capability(gateway.TrackInfo{Codec: gateway.H264}), "sr", rids, nil)
	for _, track := range p.tracks {
		p.wg.Go(func() { p.readRTCP(track.RID()) })
	}
	return p
}

// readRTCP keeps the receiver reports of one encoding and when they came.
func (p *reportingPublisher) readRTCP(rid string) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = p.sender.ReadRTCP()
		} else {
			pkts, _, err = p.sender.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		arrived := time.Now()
		for _, pkt := range pkts {
			if rr, ok := pkt.(*rtcp.ReceiverReport); ok {
				p.mu.Lock()
				for _, r := range rr.Reports {
					p.reports[r.SSRC] = r
					p.arrivals[r.SSRC] = ntpMiddle(arrived)
				}
				p.mu.Unlock()
			}
		}
	}
}

// connect offers to a new Ingest on tr, answers as the WHIP endpoint does
// and waits until both ends are connected.
func (p *reportingPublisher) connect(t *testing.T, tr *Transport, pionSRTP bool) *Ingest {
	t.Helper()
	wait := func(gathered <-chan struct{}) { <-gathered }
	setOffer(t, p.pc, nil, wait)
	parsed, err := p.pc.LocalDescription().Unmarshal()
	if err != nil {
		t.Fatal(err)
	}
	in, err := tr.NewIngest(parsed, webrtc.Configuration{}, PeerOptions{PionSRTP: pionSRTP, Log: testkit.Log(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	in.OnTrack(func(track *webrtc.TrackRemote) {
		p.wg.Go(func() { in.ReadTrack(track, func(*rtp.Packet) { p.got.Add(1) }) })
	})
	pc := in.PeerConnection()
	answerOffer(t, p.pc, pc, nil, wait)
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected &&
			pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	for _, e := range p.sender.GetParameters().Encodings {
		p.ssrcs = append(p.ssrcs, uint32(e.SSRC))
	}
	return in
}

// sendUntilReported sends a packet per encoding every 20 ms until the
// Ingest read some and a receiver report with LSR came back for every
// encoding.
func (p *reportingPublisher) sendUntilReported(t *testing.T) {
	t.Helper()
	var exts [][]testkit.RTPExtension
	for _, rid := range p.rids {
		e, err := testkit.RIDExtensions(p.pc, p.sender, rid)
		if err != nil {
			t.Fatal(err)
		}
		exts = append(exts, e)
	}
	seq := uint16(0)
	testkit.Eventually(t, 15*time.Second, "receiver reports with LSR for every encoding", func() bool {
		for i, track := range p.tracks {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 1800, Marker: true}, Payload: []byte{0x41, 1, 2, 3}}
			if len(exts) > 0 {
				if err := testkit.SetExtensions(&pkt.Header, exts[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := track.WriteRTP(pkt); err != nil {
				t.Fatal(err)
			}
		}
		seq++
		if p.got.Load() == 0 {
			return false
		}
		for _, ssrc := range p.ssrcs {
			if p.lastReport(ssrc).LastSenderReport == 0 {
				return false
			}
		}
		return true
	})
}

func (p *reportingPublisher) lastReport(ssrc uint32) rtcp.ReceptionReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reports[ssrc]
}

// roundTrip is the round trip the publisher computes from the last
// receiver report for ssrc, as RFC 3550 (6.4.1) has it: the report's
// arrival less LSR less DLSR, in NTP's middle 32 bits (1/65536 s).
func (p *reportingPublisher) roundTrip(ssrc uint32) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reports[ssrc]
	units := int32(p.arrivals[ssrc] - r.LastSenderReport - r.Delay)
	return time.Duration(units) * time.Second / 65536
}

// ntpMiddle is the middle 32 bits of t's NTP timestamp, the unit of LSR
// and DLSR.
func ntpMiddle(t time.Time) uint32 {
	secs := uint64(t.Unix()) + 2208988800 // 1900 to 1970
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return uint32((secs<<32 | frac) >> 16)
}
