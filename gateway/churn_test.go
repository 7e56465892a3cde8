package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentChurn runs publishers, takeovers, subscribers, keyframe
// requests and stats against a few streams at once (meant for -race), and
// checks what must hold whatever the interleaving: a live publication's
// stream is the registered one, every subscriber sees per-track sequence
// numbers without a gap starting at a keyframe, and nothing is left behind.
func TestConcurrentChurn(t *testing.T) {
	hub := newTestHub(t, Config{QueuePackets: 128, KeyframeInterval: time.Millisecond})
	names := []string{"a", "b", "c"}
	tracks := []TrackInfo{{Name: "main", Codec: H264}, {Name: "audio", Codec: Opus}}

	// A lock-order deadlock would otherwise hang until go test's timeout.
	watchdog := time.AfterFunc(2*time.Minute, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("TestConcurrentChurn made no progress in 2 minutes; deadlocked?\n%s", buf[:runtime.Stack(buf, true)]))
	})
	defer watchdog.Stop()

	var published, subscribed, checked atomic.Int64
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 150 {
				name := names[(p+i)%len(names)]
				pub, err := hub.Publish(name, tracks, PublishOptions{Takeover: i%3 == 0})
				if errors.Is(err, ErrStreamBusy) {
					continue
				}
				if err != nil {
					t.Errorf("publish %s: %v", name, err)
					return
				}
				published.Add(1)
				if s, ok := hub.Stream(name); !ok || s != pub.Stream() {
					if pub.Err() == nil {
						t.Errorf("live publication on %q is not on the registered stream (%v)", name, ok)
					}
				}
				video, audio := newH264Source(pub, 0), newH264Source(pub, 1)
				video.gop = 4
				for range 6 {
					video.writeFrame()
					writeAudio(audio)
					select {
					case <-pub.KeyframeRequests():
						video.frame = 0
					default:
					}
				}
				pub.Close()
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for i := range 150 {
				name := names[i%len(names)]
				sub, err := hub.Subscribe(name, []string{"main", "audio"}, SubscribeOptions{})
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoPublisher) || errors.Is(err, ErrNoTrack) {
					continue
				}
				if err != nil {
					t.Errorf("subscribe %s: %v", name, err)
					return
				}
				subscribed.Add(1)
				var rg sync.WaitGroup
				rg.Go(func() {
					n, err := checkContinuity(sub)
					if err != nil {
						t.Error(err)
					}
					checked.Add(int64(n))
				})
				for range 3 {
					sub.RequestKeyframe(0)
					_ = sub.Stats()
					_ = hub.Streams()
				}
				sub.Close()
				rg.Wait()
			}
		})
	}
	wg.Wait()
	t.Logf("%d publications, %d subscriptions, %d packets checked", published.Load(), subscribed.Load(), checked.Load())
	if st := hub.Streams(); len(st) != 0 {
		t.Errorf("streams left with nothing attached: %+v", st)
	}
	if n := hub.GOPCacheBytes(); n != 0 {
		t.Errorf("the hub counts %d GOP bytes with no tracks left, want 0", n)
	}
}

// checkContinuity reads sub until it ends and checks each track's sequence
// numbers run on without a gap from a first packet that starts a keyframe.
func checkContinuity(sub *Subscription) (int, error) {
	out := make([]Out, 32)
	var last [2]uint16
	var started [2]bool
	total := 0
	for {
		n, err := sub.Next(context.Background(), out)
		if err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrCodecChanged) {
				return total, nil
			}
			return total, fmt.Errorf("next: %w", err)
		}
		total += n
		for _, o := range out[:n] {
			if !started[o.Track] {
				if !o.KeyStart {
					return total, fmt.Errorf("track %d starts with a packet that is no keyframe start (source %d)", o.Track, index(o))
				}
				started[o.Track] = true
			} else if o.Seq != last[o.Track]+1 {
				return total, fmt.Errorf("track %d: seq %d after %d", o.Track, o.Seq, last[o.Track])
			}
			last[o.Track] = o.Seq
		}
	}
}
