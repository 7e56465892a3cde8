package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// wantRun checks that got holds the source packets first..first+len(got)-1
// in order, with sequence numbers that continue from seq0 without a gap.
func wantRun(t *testing.T, got []Out, first uint32, seq0 uint16) {
	t.Helper()
	for i, o := range got {
		if idx := index(o); idx != first+uint32(i) {
			t.Fatalf("packet %d is source packet %d, want %d", i, idx, first+uint32(i))
		}
		if want := seq0 + uint16(i); o.Seq != want {
			t.Fatalf("packet %d (source %d) has seq %d, want %d", i, index(o), o.Seq, want)
		}
	}
}

// keyRequests returns how many keyframe requests wait on pub's channel,
// taking them off it.
func keyRequests(pub *Publication) int {
	n := 0
	for {
		select {
		case <-pub.KeyframeRequests():
			n++
		default:
			return n
		}
	}
}

func TestStalledSubscriberDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue = 64
		hub, _, src := h264Hub(t, Config{QueuePackets: queue})
		stalled := subscribe(t, hub, "cam", "main")
		draining := subscribe(t, hub, "cam", "main")

		ctx, cancel := context.WithCancel(t.Context())
		var got []Out
		readerDone := make(chan error)
		go func() {
			readerDone <- readEach(ctx, draining, 16, func(out []Out) { got = append(got, out...) })
		}()

		start := time.Now()
		for range 300 { // 10 GOPs, 3,450 packets: 54 queues' worth
			src.writeFrame()
			// Let the draining reader catch up. Wait does not advance the
			// fake clock, so had any write blocked on the stalled
			// subscriber, the bubble would deadlock or time would pass.
			synctest.Wait()
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("publishing took %v of bubble time; WriteRTP must not wait", d)
		}
		cancel()
		if err := <-readerDone; !errors.Is(err, context.Canceled) {
			t.Fatalf("draining reader ended with %v", err)
		}

		if len(got) != int(src.index) {
			t.Fatalf("draining subscriber got %d packets, want all %d", len(got), src.index)
		}
		wantRun(t, got, 0, got[0].Seq)
		if st := draining.Stats(); st.Dropped != 0 || st.Skipped != 0 || st.Delivered != uint64(src.index) {
			t.Errorf("draining stats %+v, want %d delivered and nothing dropped", st, src.index)
		}

		st := stalled.Stats()
		if st.Dropped == 0 {
			t.Errorf("stalled subscriber: Dropped = 0 after %d packets into a %d-packet queue", src.index, queue)
		}
		if st.Queued != queue {
			t.Errorf("stalled subscriber: Queued = %d, want a full queue of %d", st.Queued, queue)
		}
		if sum := uint64(st.Queued) + st.Dropped + st.Skipped; sum != uint64(src.index) {
			t.Errorf("stalled subscriber: queued %d + dropped %d + skipped %d = %d, want every packet accounted for (%d)",
				st.Queued, st.Dropped, st.Skipped, sum, src.index)
		}
		// What it holds is the oldest packets, untouched.
		held := drain(t, stalled)
		if len(held) != queue {
			t.Fatalf("stalled subscriber held %d packets, want %d", len(held), queue)
		}
		wantRun(t, held, 0, held[0].Seq)
	})
}

func TestDropThenResumeAtKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue = 64
		hub, pub, src := h264Hub(t, Config{QueuePackets: queue}) // GOP of 30 frames: 20-packet keyframe, 5-packet deltas
		sub := subscribe(t, hub, "cam", "main")

		for range 20 { // 115 packets into a 64-packet queue, nobody reading
			src.writeFrame()
		}
		if n := keyRequests(pub); n != 1 {
			t.Errorf("after the overflow %d keyframe requests reached the publisher, want 1", n)
		}
		before := drain(t, sub)
		if len(before) != queue {
			t.Fatalf("got %d packets before the overflow, want %d", len(before), queue)
		}
		wantRun(t, before, 0, before[0].Seq)
		last := before[len(before)-1]

		time.Sleep(time.Second)
		var keyFirst, keyTS uint32
		for range 16 { // frames 20..35; frame 30 is the next keyframe
			if src.nextIsKey() {
				keyFirst, keyTS = src.index, src.ts
			}
			src.writeFrame()
		}
		after := drain(t, sub)
		if len(after) == 0 {
			t.Fatal("nothing delivered after the next keyframe")
		}
		first := after[0]
		if !first.KeyStart || index(first) != keyFirst {
			t.Fatalf("first packet after the gap: source %d KeyStart=%v, want the keyframe's first packet %d with KeyStart",
				index(first), first.KeyStart, keyFirst)
		}
		if first.Seq != last.Seq+1 {
			t.Errorf("seq across the gap: %d then %d, want %d", last.Seq, first.Seq, last.Seq+1)
		}
		// Within one publication the source's own timestamps carry on, so
		// the viewer's clock keeps the source's frame spacing.
		if want := keyTS - 90000 + before[0].Timestamp; first.Timestamp != want {
			t.Errorf("timestamp across the gap: %d then %d, want %d (the source's spacing)", last.Timestamp, first.Timestamp, want)
		}
		wantRun(t, after, keyFirst, last.Seq+1)
		if len(after) != int(src.index-keyFirst) {
			t.Errorf("got %d packets from the keyframe on, want %d", len(after), src.index-keyFirst)
		}
		st := sub.Stats()
		if want := uint64(keyFirst - queue - 1); st.Dropped != 1 || st.Skipped != want {
			t.Errorf("stats: dropped %d skipped %d, want 1 dropped (the overflow) and %d skipped until the keyframe", st.Dropped, st.Skipped, want)
		}
	})
}

// audio writes one 20 ms Opus packet.
func writeAudio(src *h264Source) {
	src.writePacket([]byte{0xfc, 0xff, 0xfe, 0x00}, false)
}

func TestAudioNeverWaitsForKeyframes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := newTestHub(t, Config{GOPCacheBytes: -1})
		pub, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}, {Name: "audio", Codec: Opus, Channels: 2}}, PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		video := newH264Source(pub, 0)
		video.frame = 1 // start mid-GOP: the next keyframe is 29 frames away
		audio := newH264Source(pub, 1)
		audio.seq, audio.index = 30000, 100000

		// Some audio before anyone subscribes.
		for range 5 {
			writeAudio(audio)
		}
		audioOnly := subscribe(t, hub, "cam", "audio")
		both := subscribe(t, hub, "cam", "main", "audio")
		if n := keyRequests(pub); n != 1 {
			t.Errorf("%d keyframe requests after a video subscriber joined without a cache, want 1", n)
		}
		audioStart := audio.index
		for range 10 {
			writeAudio(audio)
			video.writeFrame()
		}

		got := drain(t, audioOnly)
		if len(got) != 10 {
			t.Fatalf("audio-only subscriber got %d packets, want all 10 audio packets", len(got))
		}
		wantRun(t, got, audioStart, got[0].Seq)
		for _, o := range got {
			if o.Track != 0 || !o.KeyStart {
				t.Fatalf("audio packet %d: track %d KeyStart %v, want track 0 and KeyStart", index(o), o.Track, o.KeyStart)
			}
		}

		got = drain(t, both)
		if len(got) != 10 {
			t.Fatalf("audio+video subscriber got %d packets before the keyframe, want only the 10 audio packets", len(got))
		}
		for _, o := range got {
			if o.Track != 1 {
				t.Fatalf("got a packet on track %d before the first keyframe, want only audio (track 1)", o.Track)
			}
		}
		if st := both.Stats(); st.Skipped != 50 {
			t.Errorf("audio+video subscriber skipped %d video packets, want 50", st.Skipped)
		}
		if n := keyRequests(pub); n != 0 {
			t.Errorf("%d keyframe requests for audio, want none", n)
		}
		both.RequestKeyframe(1) // the audio track: nothing to ask for
		audioOnly.RequestKeyframe(0)
		time.Sleep(time.Second)
		writeAudio(audio)
		if n := keyRequests(pub); n != 0 {
			t.Errorf("%d keyframe requests after RequestKeyframe on audio tracks, want none", n)
		}
	})
}
