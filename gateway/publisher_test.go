package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func wantStream(t *testing.T, hub *Hub, name string, want bool) {
	t.Helper()
	if _, ok := hub.Stream(name); ok != want {
		t.Fatalf("stream %q registered: %v, want %v", name, ok, want)
	}
}

func TestPublisherRestartKeepsSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, a, srcA := h264Hub(t, Config{})
		srcA.writeFrame()
		sub := subscribe(t, hub, "cam", "main")
		srcA.writeFrame()
		before := drain(t, sub)
		if len(before) != 25 {
			t.Fatalf("got %d packets from A, want 25", len(before))
		}
		last := before[len(before)-1]

		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if !errors.Is(a.Err(), ErrClosed) {
			t.Errorf("A.Err() = %v, want ErrClosed", a.Err())
		}
		wantStream(t, hub, "cam", true)
		if s, _ := hub.Stream("cam"); s.Live() {
			t.Error("stream is live with its publisher closed")
		}
		if sub.Err() != nil {
			t.Fatalf("subscription ended with its publisher: %v", sub.Err())
		}
		if _, err := hub.Subscribe("cam", []string{"main"}, SubscribeOptions{}); !errors.Is(err, ErrNoPublisher) {
			t.Errorf("subscribe between publishers: %v, want ErrNoPublisher", err)
		}
		srcA.writeFrame() // a late write from the closed publication goes nowhere

		time.Sleep(2 * time.Second)
		b := publishH264(t, hub, "cam")
		srcB := newH264Source(b, 0)
		srcB.seq, srcB.ts, srcB.index = 61000, 3_000_000_000, 10_000
		srcB.frame = 25 // B starts mid-GOP
		srcB.writeFrame()
		if n := keyRequests(b); n != 1 {
			t.Errorf("B got %d keyframe requests on its first write, want 1 for the waiting subscriber", n)
		}
		for !srcB.nextIsKey() {
			srcB.writeFrame()
		}
		keyFirst := srcB.index
		srcB.writeFrame()
		srcB.writeFrame()

		after := drain(t, sub)
		if len(after) != 25 {
			t.Fatalf("got %d packets from B, want its keyframe and one delta (25)", len(after))
		}
		if !after[0].KeyStart || index(after[0]) != keyFirst {
			t.Fatalf("first packet from B is source %d (KeyStart %v), want B's keyframe start %d", index(after[0]), after[0].KeyStart, keyFirst)
		}
		wantRun(t, after, keyFirst, last.Seq+1)
		// B's clock has another base; the subscriber's continues from A's
		// last timestamp, 2 s later (90 kHz).
		if want := last.Timestamp + 2*90000; after[0].Timestamp != want {
			t.Errorf("first timestamp from B %d, want %d (A's last %d + 2 s)", after[0].Timestamp, want, last.Timestamp)
		}
		if d := after[20].Timestamp - after[0].Timestamp; d != srcB.tsStep {
			t.Errorf("B's frames are %d apart for the subscriber, want %d", d, srcB.tsStep)
		}

		b.Close()
		wantStream(t, hub, "cam", true)
		sub.Close()
		wantStream(t, hub, "cam", false)
	})
}

func TestStreamRemoval(t *testing.T) {
	hub := newTestHub(t, Config{})

	pub := publishH264(t, hub, "a")
	wantStream(t, hub, "a", true)
	pub.Close()
	wantStream(t, hub, "a", false)

	pub = publishH264(t, hub, "b")
	sub := subscribe(t, hub, "b", "main")
	sub.Close()
	wantStream(t, hub, "b", true) // the publisher is still there
	if err := sub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !errors.Is(sub.Err(), ErrClosed) {
		t.Errorf("closed subscription's Err() = %v, want ErrClosed", sub.Err())
	}
	if _, err := sub.Next(t.Context(), make([]Out, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	pub.Close()
	wantStream(t, hub, "b", false)

	if _, err := hub.Pin("c"); err != nil {
		t.Fatal(err)
	}
	wantStream(t, hub, "c", true)
	if _, err := hub.Subscribe("c", []string{"main"}, SubscribeOptions{}); !errors.Is(err, ErrNoPublisher) {
		t.Errorf("subscribe to a pinned stream with no publisher: %v, want ErrNoPublisher", err)
	}
	pub = publishH264(t, hub, "c")
	sub = subscribe(t, hub, "c", "main")
	sub.Close()
	pub.Close()
	wantStream(t, hub, "c", true)
	if st := hub.Streams(); len(st) != 1 || st[0].Name != "c" || !st[0].Pinned || st[0].Live {
		t.Errorf("Streams() = %+v, want only the pinned, idle stream c", st)
	}

	if _, err := hub.Subscribe("nope", []string{"main"}, SubscribeOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("subscribe to an unknown stream: %v, want ErrNotFound", err)
	}
	pub = publishH264(t, hub, "d")
	defer pub.Close()
	if _, err := hub.Subscribe("d", []string{"preview"}, SubscribeOptions{}); !errors.Is(err, ErrNoTrack) {
		t.Errorf("subscribe to a missing layer: %v, want ErrNoTrack", err)
	}
	if _, err := hub.Subscribe("d", nil, SubscribeOptions{}); !errors.Is(err, ErrBadTracks) {
		t.Errorf("subscribe to no layers: %v, want ErrBadTracks", err)
	}
}

func TestPublishValidation(t *testing.T) {
	hub := newTestHub(t, Config{})
	for _, tc := range []struct {
		name   string
		tracks []TrackInfo
		want   error
	}{
		{"no tracks", nil, ErrBadTracks},
		{"unnamed track", []TrackInfo{{Codec: H264}}, ErrBadTracks},
		{"same name twice", []TrackInfo{{Name: "main", Codec: H264}, {Name: "main", Codec: Opus}}, ErrBadTracks},
		{"unknown codec", []TrackInfo{{Name: "main", Codec: "video/MPV"}}, ErrUnsupportedCodec},
	} {
		if _, err := hub.Publish("x", tc.tracks, PublishOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	wantStream(t, hub, "x", false)
	// Codec names are normalised.
	pub, err := hub.Publish("y", []TrackInfo{{Name: "main", Codec: "hevc"}, {Name: "audio", Codec: "OPUS"}}, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if tr := pub.Stream().Tracks(); tr[0].Codec != H265 || tr[1].Codec != Opus {
		t.Errorf("tracks %+v, want H265 and Opus", tr)
	}
}

func TestSecondLivePublisherIsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, a, src := h264Hub(t, Config{})
		src.writeFrame()
		sub := subscribe(t, hub, "cam", "main")

		if _, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{}); !errors.Is(err, ErrStreamBusy) {
			t.Fatalf("second publisher: %v, want ErrStreamBusy", err)
		}
		// StaleAfter does not apply while A keeps writing.
		for range 10 {
			time.Sleep(time.Second)
			src.writeFrame()
		}
		if _, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{StaleAfter: 2 * time.Second}); !errors.Is(err, ErrStreamBusy) {
			t.Fatalf("publisher with StaleAfter 2s while A writes every 1s: %v, want ErrStreamBusy", err)
		}
		if a.Err() != nil {
			t.Fatalf("A ended: %v", a.Err())
		}
		if got := drainWaiting(t, sub); len(got) != 20+10*5 {
			t.Errorf("subscriber got %d packets from A, want 70", len(got))
		}
	})
}

func TestTakeover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   PublishOptions
		pause time.Duration // A's silence before B comes
	}{
		{"Takeover", PublishOptions{Takeover: true}, 0},
		{"StaleAfter", PublishOptions{StaleAfter: 2 * time.Second}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub := newTestHub(t, Config{})
				a, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}, {Name: "preview", Codec: H264}}, PublishOptions{})
				if err != nil {
					t.Fatal(err)
				}
				srcA, prevA := newH264Source(a, 0), newH264Source(a, 1)
				srcA.writeFrame()
				prevA.writeFrame()
				sub := subscribe(t, hub, "cam", "main")
				preview := subscribe(t, hub, "cam", "preview")
				last := drain(t, sub)[19]
				drain(t, preview)

				time.Sleep(tc.pause)
				b, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, tc.opt)
				if err != nil {
					t.Fatalf("takeover: %v", err)
				}
				select {
				case <-a.Done():
				default:
					t.Fatal("A's Done is open after the takeover")
				}
				if !errors.Is(a.Err(), ErrReplaced) {
					t.Errorf("A.Err() = %v, want ErrReplaced", a.Err())
				}
				// A has not noticed yet and keeps writing, on both tracks.
				srcA.writeFrame()
				prevA.frame = 0
				prevA.writeFrame()

				srcB := newH264Source(b, 0)
				srcB.seq, srcB.ts, srcB.index = 500, 77, 10_000
				srcB.writeFrame()
				got := drain(t, sub)
				if len(got) != 20 || index(got[0]) != 10_000 {
					t.Fatalf("after the takeover got %d packets starting at source %d, want B's 20-packet keyframe", len(got), index(got[0]))
				}
				wantRun(t, got, 10_000, last.Seq+1)
				if got := drain(t, preview); len(got) != 0 {
					t.Errorf("the replaced publisher still reached a subscriber of a layer the new one lacks: %d packets", len(got))
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				if !errors.Is(a.Err(), ErrReplaced) {
					t.Errorf("A.Err() after Close = %v, want ErrReplaced still", a.Err())
				}
				if s, _ := hub.Stream("cam"); !s.Live() {
					t.Error("A's Close after the takeover left the stream without B")
				}
				srcB.writeFrame()
				if got := drain(t, sub); len(got) != 5 {
					t.Errorf("B's delta after A closed: got %d packets, want 5", len(got))
				}
			})
		})
	}
}

func TestNilLogger(t *testing.T) {
	hub := NewHub(Config{}, nil)
	defer hub.Close()
	publishH264(t, hub, "cam")
	// A takeover logs; it must not need a logger from the caller.
	if _, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{Takeover: true}); err != nil {
		t.Fatal(err)
	}
}

func TestCodecChangeEndsSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := newTestHub(t, Config{})
		a, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}, {Name: "audio", Codec: Opus}}, PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		newH264Source(a, 0).writeFrame()
		video := subscribe(t, hub, "cam", "main")
		audio := subscribe(t, hub, "cam", "audio")
		a.Close()

		b, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H265}, {Name: "audio", Codec: Opus}}, PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		select {
		case <-video.Done():
		default:
			t.Fatal("a subscriber of the H.264 layer is still live after the layer became H.265")
		}
		// What was queued is still handed out, then the reason.
		if got := drain(t, video); len(got) != 20 {
			t.Errorf("drained %d packets, want the 20 queued before the change", len(got))
		}
		if _, err := video.Next(context.Background(), make([]Out, 4)); !errors.Is(err, ErrCodecChanged) {
			t.Errorf("Next after the codec change: %v, want ErrCodecChanged", err)
		}
		if audio.Err() != nil {
			t.Errorf("the audio subscriber ended too: %v", audio.Err())
		}
		if tr := video.Tracks(); tr[0].Codec != H265 {
			t.Errorf("Tracks() = %+v", tr)
		}
	})
}

func TestHubClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewHub(Config{}, testLog(t))
		pub := publishH264(t, hub, "cam")
		newH264Source(pub, 0).writeFrame()
		sub := subscribe(t, hub, "cam", "main")
		done := make(chan error)
		go func() {
			out := make([]Out, 64)
			for {
				if _, err := sub.Next(context.Background(), out); err != nil {
					done <- err
					return
				}
			}
		}()
		synctest.Wait()
		hub.Close()
		hub.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("a waiting Next returned %v when the hub closed, want ErrClosed", err)
		}
		if !errors.Is(pub.Err(), ErrClosed) {
			t.Errorf("publication: %v, want ErrClosed", pub.Err())
		}
		if _, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Publish on a closed hub: %v, want ErrClosed", err)
		}
		if _, err := hub.Pin("x"); !errors.Is(err, ErrClosed) {
			t.Errorf("Pin on a closed hub: %v, want ErrClosed", err)
		}
	})
}
