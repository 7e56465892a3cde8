package rtc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/internal/testkit"
	"whipgate/whip/rtc/codecs"
)

// repairNet is a publisher's network that loses chosen first
// transmissions on the way out and holds the RTX packets that answer the
// requests for them until it has one for each, then sends them all at
// once: a keyframe's repairs, arriving together.
type repairNet struct {
	transport.Net
	media, rtx atomic.Uint32 // the publisher's SSRCs; 0: not yet known

	mu      sync.Mutex
	lose    map[uint16]bool // sequence numbers to lose, once each
	lost    int
	held    [][]byte // RTX held back, with where to
	heldTo  []net.Addr
	holding int             // how many RTX to hold before sending them all; 0: none
	flushes int             // bursts sent
	rtxSeqs map[uint16]bool // the RTX sequence numbers sent, held ones once sent
	repeats int             // RTX packets sent again, the same packet (see counts)
}

func (n *repairNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &repairConn{UDPConn: c, n: n}, nil
}

// arm loses the given sequence numbers of the media SSRC and holds as
// many RTX packets.
func (n *repairNet) arm(lose []uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lose = map[uint16]bool{}
	for _, s := range lose {
		n.lose[s] = true
	}
	n.holding = len(lose)
}

// counts returns the packets lost, the bursts of repairs sent, and how
// many RTX packets went out: a packet asked for again is sent again as
// the same RTX packet by pion (its RTX sequence number assigned once),
// which SRTP's replay protection drops, so they count once.
func (n *repairNet) counts() (lost, flushes, rtxSent int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lost, n.flushes, len(n.rtxSeqs)
}

// repeated returns how many RTX packets went out again: the receiver
// refuses each as a replay.
func (n *repairNet) repeated() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.repeats
}

type repairConn struct {
	transport.UDPConn
	n *repairNet
}

func (c *repairConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !IsRTP(p) {
		return c.UDPConn.WriteTo(p, addr)
	}
	n := c.n
	ssrc := binary.BigEndian.Uint32(p[8:12])
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case ssrc == 0:
	case ssrc == n.media.Load():
		if s := binary.BigEndian.Uint16(p[2:4]); n.lose[s] {
			delete(n.lose, s)
			n.lost++
			return len(p), nil
		}
	case ssrc == n.rtx.Load():
		if n.rtxSeqs == nil {
			n.rtxSeqs = map[uint16]bool{}
		}
		if seq := binary.BigEndian.Uint16(p[2:4]); n.rtxSeqs[seq] {
			n.repeats++
		} else {
			n.rtxSeqs[seq] = true
		}
		if n.holding == 0 {
			break
		}
		n.held, n.heldTo = append(n.held, bytes.Clone(p)), append(n.heldTo, addr)
		if len(n.held) < n.holding {
			return len(p), nil
		}
		for i, h := range n.held {
			if _, err := c.UDPConn.WriteTo(h, n.heldTo[i]); err != nil {
				return 0, err
			}
		}
		n.held, n.heldTo, n.holding = nil, nil, 0
		n.flushes++
		return len(p), nil
	}
	return c.UDPConn.WriteTo(p, addr)
}

// A pion publisher sending with RTX loses 125 packets of a 1,000-packet
// burst on the way, and the 125 repairs it sends for them arrive at once
// while the Ingest's track reader waits for media (pion's repair channel
// takes 50 of them and drops the rest). Beneath pion every repair reaches
// the track reader: every packet arrives, each repair is counted as
// recovered (and by the NACK generator, so nothing is counted lost), and
// the publisher's receiver reports still count the 125 as lost on the
// media SSRC (repairs count on the RTX SSRC, as libwebrtc's do; pion's
// publisher drops reports on its RTX SSRC, so they are not checked).
//
// Before the repairs were read beneath pion, 75 of them were dropped
// there, and each asked for again came back as the same RTX packet
// (pion numbers an RTX packet once), which SRTP's replay protection
// drops: 75 packets lost for good.
func TestDirectIngestReadsABurstOfRepairs(t *testing.T) {
	testkit.LeakCheck(t)
	tr := newTestTransport(t)
	rn := &repairNet{Net: testkit.StdNet(t)}
	pub, err := testkit.PionAPI(t, rn).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = pub.Close()
		wg.Wait()
	})
	track, err := webrtc.NewTrackLocalStaticRTP(codecs.Capability(diTrack), "video", "rx")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	sender := tc.Sender()
	var rrMu sync.Mutex
	reports := map[uint32]rtcp.ReceptionReport{}
	wg.Go(func() {
		// Reading RTCP is what hands the NACKs to pion's responder.
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if rr, ok := p.(*rtcp.ReceiverReport); ok {
					rrMu.Lock()
					for _, r := range rr.Reports {
						reports[r.SSRC] = r
					}
					rrMu.Unlock()
				}
			}
		}
	})

	wait := func(gathered <-chan struct{}) { <-gathered }
	setOffer(t, pub, nil, wait)
	offer, err := pub.LocalDescription().Unmarshal()
	if err != nil {
		t.Fatal(err)
	}
	in, err := tr.NewIngest(offer, webrtc.Configuration{}, PeerOptions{Log: testkit.Log(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	var gotMu sync.Mutex
	got := map[uint16]bool{}
	in.OnTrack(func(tr *webrtc.TrackRemote) {
		wg.Go(func() {
			in.ReadTrack(tr, func(p *rtp.Packet) {
				if len(p.Payload) == 1200 && binary.BigEndian.Uint16(p.Payload[1:]) == p.SequenceNumber {
					gotMu.Lock()
					got[p.SequenceNumber] = true
					gotMu.Unlock()
				}
			})
		})
	})
	answerOffer(t, pub, in.PeerConnection(), nil, wait)
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return pub.ConnectionState() == webrtc.PeerConnectionStateConnected && in.PeerConnection().ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	enc := sender.GetParameters().Encodings[0]
	media, rtxSSRC := uint32(enc.SSRC), uint32(enc.RTX.SSRC)
	if rtxSSRC == 0 {
		t.Fatal("the publisher negotiated no RTX")
	}
	rn.media.Store(media)
	rn.rtx.Store(rtxSSRC)

	write := func(seq uint16) {
		payload := make([]byte, 1200)
		payload[0] = 0x41
		binary.BigEndian.PutUint16(payload[1:], seq)
		if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq/100) * 3000, Marker: seq%100 == 99}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	arrived := func(first uint16, n int) int {
		gotMu.Lock()
		defer gotMu.Unlock()
		c := 0
		for i := range n {
			if got[first+uint16(i)] {
				c++
			}
		}
		return c
	}
	// The live stream: a packet every 50 ms until cond holds.
	next := uint16(0)
	trickle := func(what string, cond func() bool) {
		t.Helper()
		last := time.Time{}
		testkit.Eventually(t, 10*time.Second, what, func() bool {
			if time.Since(last) > 50*time.Millisecond {
				write(next)
				next, last = next+1, time.Now()
			}
			return cond()
		})
	}
	trickle("the first packets at the track reader", func() bool { return arrived(0, 1) == 1 })

	const burst = 1000
	first := next
	var lose []uint16
	for i := 3; i < burst; i += 8 {
		lose = append(lose, first+uint16(i))
	}
	rn.arm(lose)
	for i := range burst {
		write(first + uint16(i)) // at once, as an encoder's keyframe
	}
	// No media until the repairs are out: the track reader waits in Read.
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("the publisher answering all %d requests", len(lose)), func() bool {
		_, flushes, _ := rn.counts()
		return flushes == 1
	})
	next = first + burst
	trickle("every packet of the burst at the track reader", func() bool { return arrived(first, burst) == burst })

	lost, _, _ := rn.counts()
	if lost != len(lose) {
		t.Fatalf("lost %d packets on the way, want %d", lost, len(lose))
	}
	// Every RTX packet sent reached the track reader.
	defer func() {
		if t.Failed() {
			_, _, sent := rn.counts()
			rrMu.Lock()
			t.Logf("RTX sent %d; repair %+v; ingest %+v; reports %+v", sent, in.Repair(media), in.Stats(), reports)
			rrMu.Unlock()
		}
	}()
	trickle("every repair sent counted as recovered", func() bool {
		_, _, sent := rn.counts()
		return in.Repair(media).Recovered == uint64(sent)
	})
	rep := in.Repair(media)
	if rep.Recovered < uint64(len(lose)) || rep.NACKed < uint64(len(lose)) || rep.Lost != 0 {
		t.Fatalf("repair: %d asked for, %d recovered, %d lost; want ≥ %d, ≥ %d, 0", rep.NACKed, rep.Recovered, rep.Lost, len(lose), len(lose))
	}
	// A request repeated before its repair arrived (a loaded machine
	// delays the held burst) is answered with the same RTX packet again:
	// each such repeat is a replay, refused beneath pion as pion would.
	if st, repeats := in.Stats(), rn.repeated(); st.SRTP != "direct" || st.DirectDropped != 0 || st.DirectUndecryptable != uint64(repeats) {
		t.Fatalf("ingest %+v, %d RTX packets sent again; want every packet read beneath pion, only the repeats refused", st, repeats)
	}
	trickle("receiver reports counting the loss before repair on the media SSRC", func() bool {
		rrMu.Lock()
		defer rrMu.Unlock()
		return reports[media].TotalLost >= uint32(len(lose))
	})
	t.Logf("%d lost, %d repairs in one burst; %+v; %d RTX sent again", lost, len(lose), rep, rn.repeated())

	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close()
	wg.Wait()
}
