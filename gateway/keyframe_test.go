package gateway

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestKeyframeRequestsAreMergedAndRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 500 * time.Millisecond
		hub, pub, src := h264Hub(t, Config{KeyframeInterval: interval})
		src.writeFrame()
		var subs []*Subscription
		for range 4 {
			subs = append(subs, subscribe(t, hub, "cam", "main")) // served from the GOP cache
		}
		if n := keyRequests(pub); n != 0 {
			t.Fatalf("%d requests before anyone asked", n)
		}

		// A burst of PLIs from every viewer, and one from the operator.
		for range 100 {
			for _, s := range subs {
				s.RequestKeyframe(0)
			}
		}
		s, _ := hub.Stream("cam")
		if err := s.RequestKeyframe(); err != nil {
			t.Fatal(err)
		}
		if n := keyRequests(pub); n != 1 {
			t.Fatalf("a burst of 401 requests gave %d on the channel, want 1", n)
		}

		// More within the interval are held back, writes included.
		time.Sleep(interval / 2)
		subs[0].RequestKeyframe(0)
		src.writeFrame()
		if n := keyRequests(pub); n != 0 {
			t.Fatalf("%d requests within the interval, want 0", n)
		}
		// After the interval the pending one goes out with the next write.
		time.Sleep(interval / 2)
		if n := keyRequests(pub); n != 0 {
			t.Fatalf("%d requests with no write since, want 0 until the next write", n)
		}
		src.writeFrame()
		if n := keyRequests(pub); n != 1 {
			t.Fatalf("%d requests on the first write after the interval, want the 1 pending", n)
		}
		for range 40 {
			time.Sleep(50 * time.Millisecond)
			src.writeFrame()
		}
		if n := keyRequests(pub); n != 0 {
			t.Fatalf("%d more requests with nothing pending, want 0", n)
		}

		// A keyframe answers a pending request: it is not sent afterwards.
		subs[1].RequestKeyframe(0)
		if n := keyRequests(pub); n != 1 {
			t.Fatalf("%d requests a whole interval after the last, want 1 at once", n)
		}
		subs[1].RequestKeyframe(0) // pending
		src.frame = 0
		src.writeFrame() // the keyframe
		time.Sleep(2 * interval)
		src.writeFrame()
		if n := keyRequests(pub); n != 0 {
			t.Errorf("a request pending before a keyframe went out after it (%d)", n)
		}

		if got := hub.Streams()[0].Tracks[0].KeyframeRequests; got != 3 {
			t.Errorf("stats count %d keyframe requests, want 3", got)
		}

		// Out-of-range track indexes are ignored.
		subs[2].RequestKeyframe(-1)
		subs[2].RequestKeyframe(1)
	})
}

// A publisher that never drains its channel does not block the hub: the
// request stays pending and goes out once there is room.
func TestKeyframeRequestsNeverBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, pub, src := h264Hub(t, Config{KeyframeInterval: time.Millisecond, GOPCacheBytes: -1})
		src.frame, src.gop = 1, 1000 // no keyframe to answer the requests
		sub := subscribe(t, hub, "cam", "main")
		for range 100 {
			time.Sleep(time.Millisecond)
			sub.RequestKeyframe(0)
			src.writeFrame()
		}
		n := keyRequests(pub)
		if n == 0 || n != cap(pub.KeyframeRequests()) {
			t.Fatalf("%d requests queued, want the channel full (%d)", n, cap(pub.KeyframeRequests()))
		}
		time.Sleep(time.Millisecond)
		src.writeFrame()
		if n := keyRequests(pub); n != 1 {
			t.Errorf("%d requests after the channel was drained, want the pending 1", n)
		}
	})
}
