package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"whipgate/gateway"
)

// Two ffmpeg runs in turn send H.264 RTP to one receiver, as an encoder
// that restarts does: the second from a new port, taken once the first
// has been silent long enough (sourceSilence). The subscriber sees one
// stream with continuous sequence numbers that decodes cleanly.
func TestRTPIngestFFmpegRestart(t *testing.T) {
	requireTool(t, "ffmpeg")
	log := testLog(t)
	hub := newTestHub(t, log)
	var frames sync.Map
	src, err := NewRTPSource(RTPSourceConfig{Stream: "cam", Layers: []RTPConfig{{
		Layer: "preview", Codec: gateway.H264,
		OnFrame: func(l string) { n, _ := frames.LoadOrStore(l, new(int)); *n.(*int)++ },
	}}}, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rcv := src.Receivers()[0]

	ctx, stop := runSource(t, src)
	sub := subscribeWhenLive(t, hub, "cam", "preview")
	s := newSink(gateway.H264)
	drained := make(chan error, 1)
	dctx, stopDrain := context.WithCancel(ctx)
	go func() { drained <- drain(dctx, sub, s) }()

	const perRun = 30
	url := fmt.Sprintf("rtp://%s?pkt_size=1200", rcv.Addr())
	for run := 1; run <= 2; run++ {
		if run > 1 {
			time.Sleep(sourceSilence + 100*time.Millisecond)
		}
		cmd := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
			"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-frames:v", strconv.Itoa(perRun), "-pix_fmt", "yuv420p",
			"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30", "-f", "rtp", url)
		cmd.Stderr = os.Stderr // the SDP ffmpeg prints on stdout is not needed
		if err := cmd.Run(); err != nil {
			t.Fatalf("ffmpeg run %d: %v", run, err)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("%d frames", run*perRun), func() bool { return rcv.Stats().Frames >= uint64(run*perRun) })
	}
	waitFor(t, 2*time.Second, "the subscriber to catch up", func() bool { return sub.Stats().Queued == 0 })
	stopDrain()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	stop()
	st := rcv.Stats()
	if st.Senders != 2 || st.Lost != 0 || st.Foreign != 0 {
		t.Errorf("stats %+v: want 2 senders, no loss and nothing foreign", st)
	}
	if n, _ := frames.Load("preview"); n == nil || *n.(*int) != 2*perRun {
		t.Errorf("OnFrame counted %v frames, want %d", n, 2*perRun)
	}
	checkStream(t, "rtp-h264", s, sub, 2*perRun)
	t.Logf("receiver stats %+v", st)
}

// subscribeWhenLive waits for the stream's publisher and subscribes.
func subscribeWhenLive(t *testing.T, hub *gateway.Hub, stream, layer string) *gateway.Subscription {
	t.Helper()
	waitFor(t, 2*time.Second, "the publication", func() bool {
		s, ok := hub.Stream(stream)
		return ok && s.Live()
	})
	sub, err := hub.Subscribe(stream, []string{layer}, gateway.SubscribeOptions{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// freeUDPPort returns a port nothing listens on right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// A GStreamer sender with rtpbin's RTCP receive path: a viewer's keyframe
// request reaches it as a PLI and x264enc answers with an IDR, long before
// its 20 s GOP would.
func TestRTPIngestGStreamerPLI(t *testing.T) {
	requireTool(t, "gst-launch-1.0")
	requireTool(t, "ffmpeg")
	log := testLog(t)
	hub := newTestHub(t, log)
	rtcpPort := freeUDPPort(t)
	src, err := NewRTPSource(RTPSourceConfig{Stream: "gst", Layers: []RTPConfig{{
		Layer: "preview", Codec: gateway.H264, RTCPPort: rtcpPort, ReportInterval: 200 * time.Millisecond,
	}}}, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rcv := src.Receivers()[0]
	port := rcv.Addr().Port

	ctx, stop := runSource(t, src)

	// Sender reports go to the RTP port (rtcp-mux); our RTCP goes to the
	// udpsrc feeding rtpbin's recv_rtcp_sink.
	pipeline := fmt.Sprintf("rtpbin name=rb "+
		"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=180,framerate=30/1 ! "+
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=600 ! rtph264pay pt=96 mtu=1200 config-interval=-1 ! rb.send_rtp_sink_0 "+
		"rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port=%d sync=false async=false "+
		"rb.send_rtcp_src_0 ! udpsink host=127.0.0.1 port=%d sync=false async=false "+
		"udpsrc address=127.0.0.1 port=%d ! rb.recv_rtcp_sink_0", port, port, rtcpPort)
	gst := exec.Command("gst-launch-1.0", append([]string{"-q"}, strings.Fields(pipeline)...)...)
	gst.Stdout, gst.Stderr = os.Stderr, os.Stderr
	if err := gst.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = gst.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = gst.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = gst.Process.Kill()
			<-done
		}
	}()

	sub := subscribeWhenLive(t, hub, "gst", "preview")
	s := newSink(gateway.H264)
	keys := make(chan time.Time, 16)
	dctx, stopDrain := context.WithCancel(ctx)
	drained := make(chan error, 1)
	go func() {
		outs := make([]gateway.Out, 256)
		for {
			n, err := sub.Next(dctx, outs)
			for _, o := range outs[:n] {
				if o.KeyStart {
					keys <- time.Now()
				}
				if err := s.add(o); err != nil {
					drained <- err
					return
				}
			}
			if err != nil {
				drained <- nil
				return
			}
		}
	}()

	select {
	case <-keys:
	case <-time.After(10 * time.Second):
		t.Fatal("no first keyframe from GStreamer within 10 s")
	}
	// Let the hub's keyframe rate limit (500 ms) pass since the join.
	time.Sleep(time.Second)
	asked := time.Now()
	sub.RequestKeyframe(0)
	var latency time.Duration
	select {
	case k := <-keys:
		latency = k.Sub(asked)
	case <-time.After(2 * time.Second):
		t.Fatalf("no keyframe within 2 s of the request; receiver stats %+v", rcv.Stats())
	}
	t.Logf("PLI → keyframe at the subscriber: %v", latency.Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond) // a few frames after the keyframe
	stopDrain()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	stop()
	if st := rcv.Stats(); st.PLIs < 1 || st.Lost != 0 {
		t.Errorf("receiver stats %+v: want at least one PLI and no loss", st)
	}
	path := s.write(t, "gst")
	decodeClean(t, path)
	if s.keyStarts < 2 {
		t.Errorf("%d keyframe starts, want the first and the requested one", s.keyStarts)
	}
}

// The kernel caps SO_RCVBUF at net.core.rmem_max: with CAP_NET_ADMIN the
// receiver passes it, without it says so.
func TestRTPReadBufferWarning(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatalf("read rmem_max: %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ask  int
		warn bool
	}{{rmemMax / 2, false}, {2*rmemMax + 1<<20, !canForceReadBuffer(t, 2*rmemMax+1<<20)}} {
		var logs bytes.Buffer
		r, err := NewRTPReceiver(RTPConfig{Codec: gateway.H264, ReadBuffer: tc.ask}, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readBufferSize(r.conn)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "sysctl -w net.core.rmem_max")
		if warned != tc.warn {
			t.Errorf("asked %d bytes with rmem_max %d, got %d: warned %v, want %v; log:\n%s", tc.ask, rmemMax, got, warned, tc.warn, logs.String())
		}
		if !tc.warn && got < tc.ask {
			t.Errorf("asked %d bytes, got %d", tc.ask, got)
		}
	}
}

// canForceReadBuffer tells whether this process may pass rmem_max
// (CAP_NET_ADMIN), by trying on a socket of its own.
func canForceReadBuffer(t *testing.T, size int) bool {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if forceReadBuffer(c, size) != nil {
		return false
	}
	got, err := readBufferSize(c)
	return err == nil && got >= size
}
