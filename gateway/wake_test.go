package gateway

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
)

// delivery is one Next call's result as a consumer saw it.
type delivery struct {
	at   time.Time
	outs []Out
}

// consume runs Next on sub until ctx ends and returns what each call gave.
func consume(ctx context.Context, sub *Subscription) func() []delivery {
	var (
		mu  sync.Mutex
		got []delivery
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = readEach(ctx, sub, 256, func(out []Out) {
			mu.Lock()
			got = append(got, delivery{at: time.Now(), outs: append([]Out(nil), out...)})
			mu.Unlock()
		})
	}()
	return func() []delivery {
		wg.Wait()
		return got
	}
}

// A publisher that paces a frame's packets must not wake the subscriber
// for each one: the frame goes out as one group at its last packet.
func TestPacedFrameWakesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _, src := h264Hub(t, Config{})
		src.pace = 100 * time.Microsecond // 20 packets over 1.9 ms
		src.deltaPackets = 20
		sub := subscribe(t, hub, "cam", "main")
		ctx, cancel := context.WithCancel(context.Background())
		result := consume(ctx, sub)
		synctest.Wait() // the consumer waits in Next

		const frames = 10
		for range frames {
			src.writeFrame()
			time.Sleep(16 * time.Millisecond)
		}
		cancel()
		got := result()
		if len(got) != frames {
			t.Fatalf("wake-ups %v for %d paced frames, want one per frame", counts(got), frames)
		}
		for i, d := range got {
			if len(d.outs) != 20 || !d.outs[len(d.outs)-1].Marker {
				t.Errorf("wake-up %d: %d packets (last marker %v), want the whole frame of 20", i, len(d.outs), d.outs[len(d.outs)-1].Marker)
			}
		}
	})
}

// A frame whose last packet never comes (lost, or a publisher that never
// sets the marker) still leaves, wakeDelay after its first packet.
func TestFrameWithoutMarkerLeavesAfterWakeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _, src := h264Hub(t, Config{})
		sub := subscribe(t, hub, "cam", "main")
		ctx, cancel := context.WithCancel(context.Background())
		result := consume(ctx, sub)
		synctest.Wait() // the consumer waits in Next

		src.writeFrame() // the keyframe the subscriber starts at
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		src.writePacket(append([]byte{0x7c, 0x81}, make([]byte, 100)...), false)
		time.Sleep(time.Millisecond)
		src.writePacket(append([]byte{0x7c, 0x01}, make([]byte, 100)...), false)
		time.Sleep(50 * time.Millisecond)
		cancel()
		got := result()
		if len(got) != 2 || len(got[1].outs) != 2 {
			t.Fatalf("deliveries %v, want the keyframe, then both unterminated packets together", counts(got))
		}
		if d := got[1].at.Sub(start); d != wakeDelay {
			t.Errorf("unterminated frame left %v after its first packet, want %v", d, wakeDelay)
		}
	})
}

// Audio packets carry no frame-end marker worth waiting for: each leaves
// at once.
func TestAudioWakesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := newTestHub(t, Config{})
		pub, err := hub.Publish("mic", []TrackInfo{{Name: "audio", Codec: Opus}}, PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sub := subscribe(t, hub, "mic", "audio")
		ctx, cancel := context.WithCancel(context.Background())
		result := consume(ctx, sub)
		synctest.Wait() // the consumer waits in Next

		var sent []time.Time
		for i := range 5 {
			sent = append(sent, time.Now())
			pub.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: []byte{0xfc, 1, 2}})
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		got := result()
		if len(got) != 5 {
			t.Fatalf("deliveries %v, want one per audio packet", counts(got))
		}
		for i, d := range got {
			if !d.at.Equal(sent[i]) {
				t.Errorf("audio packet %d left %v after it came, want at once", i, d.at.Sub(sent[i]))
			}
		}
	})
}

// A subscriber joining with a GOP cache gets the keyframe at once, then
// the rest of the cache at catchUpSpeed times the pace it arrived at, then
// live packets as they come.
func TestGOPCacheReplayIsPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _, src := h264Hub(t, Config{})
		src.gop = 1000
		const frame = 20 * time.Millisecond
		sentAt := map[uint32]time.Time{} // a frame's first packet index → when written
		write := func() {
			first, _ := src.writeFrame()
			sentAt[first] = time.Now()
			time.Sleep(frame)
		}
		for range 30 { // 600 ms of GOP cached
			write()
		}
		join := time.Now()
		sub := subscribe(t, hub, "cam", "main")
		ctx, cancel := context.WithCancel(context.Background())
		result := consume(ctx, sub)
		synctest.Wait() // the consumer waits in Next
		for range 30 {
			write()
		}
		cancel()

		firstSent := sentAt[0]
		for _, d := range result() {
			for _, o := range d.outs {
				sent, ok := sentAt[index(o)]
				if !ok {
					continue // not a frame's first packet
				}
				// Replayed at catchUpSpeed from the join, and never before
				// it came; the replay ends (and the rest leaves at once)
				// when it is within catchUpLag of live.
				want := join.Add(sent.Sub(firstSent) / catchUpSpeed)
				if want.Before(sent) {
					want = sent
				}
				if late := d.at.Sub(want); late < -catchUpLag || late > frame {
					t.Errorf("frame at source index %d (written %v after the keyframe) left %v after the join, want about %v",
						index(o), sent.Sub(firstSent), d.at.Sub(join), want.Sub(join))
				}
			}
		}
	})
}

func counts(ds []delivery) []int {
	var n []int
	for _, d := range ds {
		n = append(n, len(d.outs))
	}
	return n
}
