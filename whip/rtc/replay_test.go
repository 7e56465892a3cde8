package rtc

import (
	"encoding/binary"
	"testing"

	"github.com/pion/transport/v4/replaydetector"
)

// replayStep is one packet index offered to a detector: checked, and
// accepted if it passed (as srtp does once the packet decrypts).
func replayStep(d replaydetector.ReplayDetector, seq uint64) (ok, latest bool) {
	accept, ok := d.Check(seq)
	if ok {
		latest = accept()
	}
	return ok, latest
}

// The ring answers as SRTP replay protection must: new packets pass once,
// a late one within the window passes once, an older one never, and a
// jump forward forgets what fell out of the window. The window need not
// be a multiple of 64: pion's detector keeps fewer bits than its window
// then (its top word's mask is 64 − n%64 bits wide), so a replay 92..99
// packets back passes a 100-packet window; ours refuses it.
func TestRingReplay(t *testing.T) {
	d := newRingReplay(100)
	for seq := uint64(1); seq <= 300; seq++ {
		if ok, latest := replayStep(d, seq); !ok || !latest {
			t.Fatalf("new packet %d: ok %v latest %v, want both", seq, ok, latest)
		}
	}
	for _, tc := range []struct {
		seq  uint64
		want bool
		why  string
	}{
		{300, false, "the latest, again"},
		{250, false, "seen, within the window"},
		{205, false, "seen, 95 back (pion's detector lets this replay through)"},
		{200, false, "100 back: out of the window"},
		{1, false, "long gone"},
		{maxSRTPIndex + 1, false, "past the largest SRTP index"},
		{310, true, "new, skipping 9"},
		{305, true, "skipped, now late within the window"},
		{305, false, "the late one, again"},
	} {
		if ok, _ := replayStep(d, tc.seq); ok != tc.want {
			t.Errorf("%d (%s): ok %v, want %v", tc.seq, tc.why, ok, tc.want)
		}
	}
	// A jump past the whole ring forgets everything before it.
	if ok, _ := replayStep(d, 100_000); !ok {
		t.Fatal("a jump forward was refused")
	}
	if ok, _ := replayStep(d, 99_950); !ok {
		t.Error("a late packet after a jump was refused: a stale bit survived the jump")
	}
}

// FuzzRingReplay holds the ring to pion's detector on any series of
// packet indices, for windows that are a multiple of 64 (where pion's
// keeps all its bits; see TestRingReplay): each byte pair moves the next
// index forward or back by up to 32767 from the last, or jumps.
func FuzzRingReplay(f *testing.F) {
	f.Add(uint8(0), []byte{0, 1, 0, 1, 0, 1, 255, 254, 0, 3, 0, 3})
	f.Add(uint8(3), []byte{127, 255, 128, 0, 0, 64, 255, 192, 0, 1})
	f.Add(uint8(1), []byte{0, 0, 0, 0, 0, 65, 255, 191})
	f.Fuzz(func(t *testing.T, w uint8, steps []byte) {
		window := []uint{64, 128, 192, 8192}[w%4]
		ours, pions := newRingReplay(window), replaydetector.New(window, maxSRTPIndex)
		var seq uint64 = 1000
		for i := 0; i+1 < len(steps); i += 2 {
			step := int16(binary.BigEndian.Uint16(steps[i:]))
			switch {
			case step == -32768:
				seq = maxSRTPIndex - 5 // near the end of the index space
			case step < 0 && uint64(-step) > seq:
				seq = 0
			default:
				seq = uint64(int64(seq) + int64(step))
			}
			ok1, latest1 := replayStep(ours, seq)
			ok2, latest2 := replayStep(pions, seq)
			if ok1 != ok2 || latest1 != latest2 {
				t.Fatalf("window %d, step %d, index %d: ours ok %v latest %v, pion's ok %v latest %v",
					window, i/2, seq, ok1, latest1, ok2, latest2)
			}
		}
	})
}

// BenchmarkReplay is the cost a packet of each detector at the 8192-packet
// window, packets in order: what a WHIP publisher's stream costs.
func BenchmarkReplay(b *testing.B) {
	for _, impl := range []struct {
		name string
		new  func() replaydetector.ReplayDetector
	}{
		{"ring", ringReplayFactory(8192)},
		{"pion", func() replaydetector.ReplayDetector { return replaydetector.New(8192, maxSRTPIndex) }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			d := impl.new().(replaydetector.CheckAccepter)
			b.ReportAllocs()
			for i := range b.N {
				if !d.Accept(d.CheckSeq(uint64(i) + 1)) {
					b.Fatal("refused")
				}
			}
		})
	}
}
