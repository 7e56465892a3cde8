package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"whipgate/gateway"
	"whipgate/internal/testkit"
)

func TestTestSourceDecodes(t *testing.T) {
	requireTool(t, "ffmpeg")
	log := testLog(t)
	hub := newTestHub(t, log)
	var mainFrames, previewFrames atomic.Int64
	src, err := NewTestSource(TestSourceConfig{
		Stream:  "box",
		Main:    TestLayerConfig{GOP: 600},                         // 1280x720@30 by default; IDRs only on request
		Preview: TestLayerConfig{Width: 426, Height: 240, FPS: 15}, // not the defaults: they must be used
		OnFrame: func(layer string) {
			map[string]*atomic.Int64{"main": &mainFrames, "preview": &previewFrames}[layer].Add(1)
		},
	}, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopRun := runSource(t, src)

	// Join in the middle of a GOP: the cache must start the viewer at its IDR.
	time.Sleep(700 * time.Millisecond)
	layers := []struct {
		name          string
		width, height int
	}{{"main", 1280, 720}, {"preview", 426, 240}}
	sinks := make([]*sink, len(layers))
	subs := make([]*gateway.Subscription, len(layers))
	for i, l := range layers {
		sub, err := hub.Subscribe("box", []string{l.name}, gateway.SubscribeOptions{Kind: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs[i], sinks[i] = sub, newSink(gateway.H264)
	}
	collect, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	for i := range layers {
		wg.Go(func() { errs[i] = drain(collect, subs[i], sinks[i]) })
	}

	// A keyframe request makes the next main frame an IDR, long before the
	// 20 s GOP would.
	time.Sleep(time.Second)
	asked := time.Now()
	subs[0].RequestKeyframe(0)
	wg.Wait()
	stopRun()
	for i, l := range layers {
		if errs[i] != nil {
			t.Fatalf("%s: %v", l.name, errs[i])
		}
		s := sinks[i]
		if !s.first.KeyStart {
			t.Errorf("%s: first packet is not a keyframe start", l.name)
		}
		if s.gaps != 0 {
			t.Errorf("%s: %d sequence gaps", l.name, s.gaps)
		}
		path := s.write(t, l.name)
		decodeClean(t, path)
		p := probeVideo(t, path)
		if p.width != l.width || p.height != l.height {
			t.Errorf("%s: ffprobe says %dx%d, want %dx%d", l.name, p.width, p.height, l.width, l.height)
		}
		if p.frames != s.frames || s.frames < 40 {
			t.Errorf("%s: decoded %d frames of %d sent, want all and at least 40", l.name, p.frames, s.frames)
		}
		t.Logf("%s: %d packets, %d frames, %d keyframes, %dx%d", l.name, s.packets, s.frames, s.keyStarts, p.width, p.height)
	}
	key, ok := sinks[0].keyAfter(asked)
	if !ok {
		t.Fatalf("main: no keyframe after the request (%d keyframe starts in all)", sinks[0].keyStarts)
	}
	if d := key.Sub(asked); d > 2*time.Second {
		t.Errorf("main: keyframe came %v after the request, want well under 2 s", d)
	} else {
		t.Logf("main: keyframe %v after the request", d.Round(time.Millisecond))
	}
	if sinks[0].keyStarts != 2 {
		t.Errorf("main: %d keyframe starts, want 2 (the cached IDR and the requested one)", sinks[0].keyStarts)
	}
	if mainFrames.Load() < 60 || previewFrames.Load() < 30 {
		t.Errorf("OnFrame counted main %d, preview %d; want about 110 and 55", mainFrames.Load(), previewFrames.Load())
	}
}

// Another publisher taking the stream over ends Run with ErrReplaced.
func TestTestSourceReplaced(t *testing.T) {
	log := testLog(t)
	hub := newTestHub(t, log)
	src, err := NewTestSource(TestSourceConfig{Main: TestLayerConfig{Width: 320, Height: 180}}, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(t.Context()) }()
	waitFor(t, 2*time.Second, "the test stream", func() bool {
		s, ok := hub.Stream("test")
		return ok && s.Live() && s.Stats().Tracks[0].Frames > 2
	})
	other, err := hub.Publish("test", src.Tracks(), gateway.PublishOptions{Kind: "whip", Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := testkit.Returned(t, done, 5*time.Second, "Run ending after the takeover"); !errors.Is(err, gateway.ErrReplaced) {
		t.Fatalf("Run returned %v, want ErrReplaced", err)
	}
}
