package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// buildWhipgate builds the server binary the bench starts.
func buildWhipgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "whipgate")
	out, err := exec.Command("go", "build", "-o", bin, "whipgate/cmd/whipgate").CombinedOutput()
	if err != nil {
		t.Fatalf("go build whipgate: %v\n%s", err, out)
	}
	return bin
}

// startTestServer starts bin as a whipgate on loopback, logging all of
// its output to the test's; the test's end stops it.
func startTestServer(t *testing.T, bin, name string) *server {
	t.Helper()
	srv, err := startServer(t.Context(), name, bin, t.TempDir(), "", listenAddrs{}, t.Output(), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop the %s: %v", name, err)
		}
	})
	return srv
}

// loopbackUDP is a UDP socket on 127.0.0.1, closed when the test ends.
func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialUDP is a UDP socket that sends to rx, closed when the test ends.
func dialUDP(t *testing.T, rx *net.UDPConn) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runBench runs the command and returns its one JSON line, decoded both
// into a Result and into a map (to see which fields are present).
func runBench(t *testing.T, args ...string) (Result, map[string]any, string) {
	t.Helper()
	return runBenchAs[Result](t, args...)
}

// runBenchAs is runBench for a scenario whose JSON line is an R.
func runBenchAs[R any](t *testing.T, args ...string) (R, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Logf("stdout:\n%s", out)
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "{") {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d JSON lines, want 1 (one run):\n%s", len(lines), out)
	}
	var r R
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("JSON line does not parse: %v\n%s", err, lines[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	return r, m, out
}

// TestBenchAgainstARealServer runs the benchmark briefly, as CI does:
// 2 viewers at 20 Mbps for 3 s plus join probes, against the real binary.
// It checks that the report is complete and sane, not how fast anything is.
func TestBenchAgainstARealServer(t *testing.T) {
	bin := buildWhipgate(t)
	r, m, out := runBench(t, "-bin", bin, "-viewers", "2", "-bitrate", "20M", "-gop", "1s",
		"-duration", "3s", "-warmup", "1s", "-baseline", "1s", "-joins", "2")

	for _, col := range []string{"viewers", "srv CPU%", "CPU%/viewer", "RSS MB", "loss%", "incompl%", "lat p50", "p99 ms", "wire p99", "join p50 ms"} {
		if !strings.Contains(out, col) {
			t.Errorf("the table has no column %q", col)
		}
	}
	for _, k := range []string{"server_cpu_pct", "ingest_cpu_pct", "cpu_per_viewer_pct", "rss_mb", "baseline_rss_mb", "rss_per_viewer_mb",
		"loss_pct", "incomplete_pct", "latency_ms", "added_latency_ms", "wire_latency_ms", "join_ms", "per_viewer", "machine_busy_pct"} {
		if v, ok := m[k]; !ok || v == nil {
			t.Errorf("JSON field %q is missing or null", k)
		}
	}
	if r.Viewers != 2 || r.Mode != "burst" || r.BitrateMbps != 20 || len(r.PerViewer) != 2 {
		t.Fatalf("run %d viewers %s %v Mbps with %d viewer results, want 2 burst 20", r.Viewers, r.Mode, r.BitrateMbps, len(r.PerViewer))
	}
	// About 180 frames in a 3 s window at 60 fps.
	if r.Frames < 90 || r.Frames > 270 {
		t.Errorf("%d frames in the window, want about 180", r.Frames)
	}
	for i, v := range r.PerViewer {
		if v.Frames != r.Frames || v.Received < r.Frames/2 || v.Packets == 0 {
			t.Errorf("viewer %d: %+v; want all %d window frames accounted for and most received", i, v, r.Frames)
		}
		if v.JoinMs <= 0 {
			t.Errorf("viewer %d never saw a complete keyframe", i)
		}
	}
	if r.LatencyMs.N == 0 || r.LatencyMs.P50 <= 0 || r.LatencyMs.P50 > r.LatencyMs.P99 {
		t.Errorf("latency %+v: want samples with 0 < p50 ≤ p99", r.LatencyMs)
	}
	// A frame reaches a viewer's socket before pion hands it on: without
	// the kernel's timestamps, wire would equal added exactly.
	w, a := r.WireLatencyMs, r.AddedLatencyMs
	if w.N != a.N || w.P50 > a.P50 || w.P99 > a.P99 || (w.P50 == a.P50 && w.P95 == a.P95 && w.P99 == a.P99) {
		t.Errorf("wire latency %+v against added %+v: want as many samples, each earlier", w, a)
	}
	if *r.ServerCPUPct <= 0 || *r.RSSMB < 5 || *r.RSSMB > 4096 {
		t.Errorf("server CPU %v%%, RSS %v MB: not a running server's figures", *r.ServerCPUPct, *r.RSSMB)
	}
	if r.ProbeJoinMs.N == 0 || r.JoinMs.N < 2 {
		t.Errorf("join probes %+v, joins %+v: want the probes and both viewers counted", r.ProbeJoinMs, r.JoinMs)
	}
	if r.IngestRepair == nil || r.LongestGapMs <= 0 || m["stall_ms"] == nil || m["duplicate_pct"] == nil {
		t.Errorf("ingest repair %+v, longest gap %v ms: want the server's repair counters read and the viewers' gaps measured", r.IngestRepair, r.LongestGapMs)
	}
	if r.Drops.ServerQueue == nil || r.JoinDrops.ServerQueue == nil {
		t.Errorf("drops %v, at the joins %v: the server's queue drops unread from its /metrics", r.Drops, r.JoinDrops)
	}
	if r.Keyframes < 3 {
		t.Errorf("%d keyframes sent over about 6 s at GOP 1 s", r.Keyframes)
	}
	// The viewers read their media beneath pion: every packet the window
	// counts came that way, and each one decrypted.
	var got int64
	for _, v := range r.PerViewer {
		got += v.Packets - v.Lost
	}
	if r.ViewerReceive != "direct" || r.ViewerDirectPackets < uint64(got) || r.ViewerSRTPErrors != 0 {
		t.Errorf("viewers read %q, %d packets beneath pion (%d counted in the window), %d undecryptable; want direct, all, none",
			r.ViewerReceive, r.ViewerDirectPackets, got, r.ViewerSRTPErrors)
	}
}

// With 2 % of the packets dropped both ways on both paths (-loss), the
// bench's sockets drop about that share of media and RTCP in each
// direction, the server asks the publisher again (NACK) and repairs the
// viewer with RTX, which the viewer reads beneath pion.
func TestBenchLossOnBothPaths(t *testing.T) {
	r, _, out := runBench(t, "-bin", buildWhipgate(t), "-loss", "2%", "-seed", "7", "-viewers", "1", "-bitrate", "10M",
		"-duration", "2s", "-warmup", "500ms", "-baseline", "500ms")
	v, vp, pp := r.PerViewer[0], r.ViewerLoss, r.PublisherLoss
	if vp == nil || pp == nil || r.Seed != 7 {
		t.Fatalf("viewer path %v, publisher path %v, seed %d: want both paths' figures and seed 7", vp, pp, r.Seed)
	}
	t.Logf("viewer path %+v, publisher path %+v; window: %d of %d packets lost, %d of %d frames incomplete (at %v); "+
		"%d RTX repairs beneath pion; publisher NACKed for %d packets",
		*vp, *pp, v.Lost, v.Packets, v.Incomplete, v.Frames, v.IncompleteAt, r.ViewerRTX, r.IngestNACKed)
	// About 2000 media packets each way in the 2 s window: 2 % is ~40.
	for _, d := range []struct {
		what          string
		dropped, seen int64
	}{
		{"toward the viewer", vp.InDropped, vp.InSeen},
		{"from the publisher", pp.OutDropped, pp.OutSeen},
	} {
		if d.seen < 1000 || d.dropped < d.seen/200 || d.dropped > d.seen/20 {
			t.Errorf("%s: dropped %d of %d, want about 2 %% of over 1000", d.what, d.dropped, d.seen)
		}
	}
	if vp.OutSeen == 0 || pp.InSeen == 0 {
		t.Errorf("no RTCP seen from the viewer (%d) or toward the publisher (%d)", vp.OutSeen, pp.InSeen)
	}
	if r.IngestNACKed == 0 || r.ViewerRTX == 0 {
		t.Errorf("publisher NACKed for %d packets, viewer got %d RTX repairs: want both", r.IngestNACKed, r.ViewerRTX)
	}
	// The server's side of it: its NACKs counted in its /metrics, its RTX
	// counted at the viewer's socket.
	if i := r.IngestRepair; i == nil || i.NACKed == 0 || r.ResentPackets == 0 || r.ResentBytes < r.ResentPackets*12 || r.ResentPct <= 0 {
		t.Errorf("ingest repair %+v, resent %d packets (%d bytes, %v %%): want NACKs sent and RTX re-sent", i, r.ResentPackets, r.ResentBytes, r.ResentPct)
	}
	for _, col := range []string{"viewer path", "publisher path", "stall ms", "longest gap ms", "dup%", "resent MB", "key req sent/recv", "ingest NACKed/RTX/lost"} {
		if !strings.Contains(out, col) {
			t.Errorf("the repair table has no column %q", col)
		}
	}
}

// TestBenchAnExternalServer benches a whipgate it did not start (-server,
// -pid) and leaves it running.
func TestBenchAnExternalServer(t *testing.T) {
	srv := startTestServer(t, buildWhipgate(t), "external")
	r, _, _ := runBench(t, "-server", srv.url, "-pid", srv.pid, "-viewers", "1", "-bitrate", "5M",
		"-duration", "1s", "-warmup", "500ms", "-baseline", "500ms", "-mode", "paced")
	if r.ServerCPUPct == nil || r.RSSMB == nil || r.Mode != "paced" || r.PerViewer[0].Received == 0 {
		t.Errorf("got %+v; want CPU and RSS from -pid and frames received in paced mode", r)
	}
	if err := srv.alive(); err != nil {
		t.Errorf("the bench stopped a server it did not start: %v", err)
	}
	// Runs again on the same server (the first run's publisher is gone),
	// the viewer reading through pion.
	r, _, out := runBench(t, "-server", srv.url, "-viewers", "1", "-bitrate", "5M", "-duration", "500ms", "-warmup", "0s", "-baseline", "0s", "-receive", "pion")
	if r.ViewerReceive != "pion" || r.ViewerDirectPackets != 0 || r.PerViewer[0].Received == 0 || !strings.Contains(out, "burst,pion") {
		t.Errorf("got %q receive, %d packets beneath pion, %d frames; want pion, 0, some, and the mode shown as burst,pion", r.ViewerReceive, r.ViewerDirectPackets, r.PerViewer[0].Received)
	}
}

// TestBenchEgress adds a WHIP egress from the server under test to a
// second whipgate and checks that a viewer there received the stream.
func TestBenchEgress(t *testing.T) {
	bin := buildWhipgate(t)
	r, m, out := runBench(t, "-bin", bin, "-egress", "-viewers", "1", "-bitrate", "10M",
		"-duration", "2s", "-warmup", "500ms", "-baseline", "500ms")
	if !r.Egress || r.EgressViewer == nil || r.EgressLatencyMs == nil || m["egress_target_cpu_pct"] == nil {
		t.Fatalf("egress run without egress figures: %+v", r)
	}
	if e := r.EgressViewer; e.Frames != r.Frames || e.Received < r.Frames/2 || e.JoinMs <= 0 {
		t.Errorf("the target's viewer got %+v of %d frames; want most of them", e, r.Frames)
	}
	if !strings.Contains(out, "egress (a viewer on the target whipgate)") {
		t.Errorf("no egress table in:\n%s", out)
	}
}

// TestBenchEgressRecovery kills the egress target and starts it again
// after 3 s, longer than the 2 s of RTCP silence that tells the egress its
// target is gone (with a shorter outage the target may be back before the
// egress notices, and the API may never show it down): the report has
// every step, in order, as the server's API showed it.
func TestBenchEgressRecovery(t *testing.T) {
	r, m, out := runBenchAs[RecoveryResult](t, "-bin", buildWhipgate(t), "-scenario", "egress-recovery", "-bitrate", "2M",
		"-target-down", "3s", "-warmup", "2s")
	if r.Scenario != "egress-recovery" || r.DownSeconds < 3 || r.UpSeconds < 2 || r.StartMs <= 0 {
		t.Errorf("got %+v; want the scenario's run, the target up 2 s and down 3 s", r)
	}
	if r.DetectMs == nil || *r.DetectMs <= 0 || r.ConnectedMs == nil || r.PictureMs == nil {
		t.Fatalf("detect %v, connected %v, picture %v ms; want each measured (the egress seen down, back, a picture through it)",
			m["detect_ms"], m["connected_ms"], m["picture_ms"])
	}
	if n := len(r.States); n < 3 || r.States[0] != "connected" || r.States[n-1] != "connected" {
		t.Errorf("states %v: want connected, something else, connected", r.States)
	}
	for _, col := range []string{"detect ms", "connected ms", "picture ms", "states"} {
		if !strings.Contains(out, col) {
			t.Errorf("the recovery table has no column %q", col)
		}
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"-h"}, &out, &out); err != nil {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(out.String(), "-viewers") {
		t.Errorf("-h output lists no -viewers flag:\n%s", &out)
	}
}

// A WHIP server may answer with a relative Location (MediaMTX does; so
// does the test kit's target): signal returns it resolved against the
// POST's URL, so the DELETE at the end reaches the session.
func TestSignalResolvesRelativeLocation(t *testing.T) {
	f := testkit.NewTarget(t, nil)
	pc := testkit.LoopbackPeer(t)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "bench")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	url := f.URL("127.0.0.1", "/whip")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resource, _, err := signal(ctx, pc, url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resource, f.URL("127.0.0.1", "/resource/")) {
		t.Errorf("session URL %q; want the target's /resource/… on its host and port", resource)
	}
}

// TestBenchBox runs the box path briefly in both egress modes: the
// stream in through the encoder pipe, out through WHIP egress to a
// second whipgate, whose viewer must get the frames; the report has the
// box's CPU split and allocations, and -cpuprofile keeps the profile
// the split came from.
func TestBenchBox(t *testing.T) {
	bin := buildWhipgate(t)
	for _, c := range []struct{ mode, viewers string }{{"sessions", "1"}, {"simulcast", "0"}} {
		t.Run(c.mode, func(t *testing.T) {
			prof := filepath.Join(t.TempDir(), "box.pprof")
			r, m, out := runBench(t, "-bin", bin, "-box", "-egress-mode", c.mode, "-viewers", c.viewers, "-bitrate", "5M",
				"-preview-bitrate", "1M", "-duration", "3s", "-warmup", "500ms", "-baseline", "500ms", "-cpuprofile", prof)
			x := r.Box
			if x == nil || !r.Egress || x.EgressMode != c.mode || m["box"] == nil {
				t.Fatalf("a -box run without box figures: %+v", r)
			}
			if e := r.EgressViewer; e == nil || e.Frames != r.Frames || e.Received < r.Frames/2 || e.JoinMs <= 0 {
				t.Errorf("the target's viewer got %+v of %d frames; want most of them", e, r.Frames)
			}
			if r.EgressLatencyMs == nil || r.EgressLatencyMs.N == 0 {
				t.Errorf("no latency at the target's viewer: %+v", r.EgressLatencyMs)
			}
			if c.viewers == "1" && (len(r.PerViewer) != 1 || r.PerViewer[0].Received < r.Frames/2) {
				t.Errorf("the local viewer got %+v of %d frames", r.PerViewer, r.Frames)
			}
			var sum float64
			for _, p := range parts {
				sum += x.CPUPct[p]
			}
			if r.ServerCPUPct == nil || *r.ServerCPUPct <= 0 || sum < *r.ServerCPUPct*0.95 || sum > *r.ServerCPUPct*1.05 {
				t.Errorf("the parts %v add up to %.2f %%, the server used %v %%", x.CPUPct, sum, r.ServerCPUPct)
			}
			if x.ProfileSamples == 0 || x.AllocsPerSecond == nil || *x.AllocsPerSecond <= 0 {
				t.Errorf("%d profile samples, %v allocations a second: want both measured", x.ProfileSamples, x.AllocsPerSecond)
			}
			if !strings.Contains(out, "box (encoder pipe in") {
				t.Errorf("no box table in:\n%s", out)
			}
			raw, err := os.ReadFile(prof)
			if err != nil {
				t.Fatalf("-cpuprofile: %v", err)
			}
			// The same samples the split was made of (a short run at 5 Mbps
			// gets a handful: no part is sure to have one).
			if _, n, err := splitProfile(raw); err != nil || n != x.ProfileSamples {
				t.Errorf("-cpuprofile wrote %d bytes: %d samples (the report says %d), %v",
					len(raw), n, x.ProfileSamples, err)
			}
		})
	}
}
