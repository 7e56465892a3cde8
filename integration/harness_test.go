package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"whipgate/cmd"
	"whipgate/gateway"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Client keep-alive connections of the default transport.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testOutput(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testOutput is t.Output() until the test's cleanups have run, then a sink:
// pion calls back on its own goroutines (ICE state changes) after a session
// is closed, and writing to a finished test's output is a data race.
func testOutput(t testing.TB) io.Writer {
	w := &cleanupWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		w.w = nil
		w.mu.Unlock()
	})
	return w
}

type cleanupWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *cleanupWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return len(p), nil
	}
	return c.w.Write(p)
}

// startGateway runs whipgate in-process on ephemeral loopback ports.
func startGateway(t testing.TB, mutate func(*cmd.Config)) *cmd.App {
	t.Helper()
	cfg := cmd.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.WebRTC.UDPListen = "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	app, err := cmd.Start(context.Background(), cfg, nil, testLog(t))
	if err != nil {
		t.Fatalf("start whipgate: %v", err)
	}
	t.Cleanup(func() {
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("close whipgate: %v", err)
		}
	})
	return app
}

// clientAPI is a pion API for test peers on loopback.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// accessUnit is one reassembled frame.
type accessUnit struct {
	data     []byte // Annex-B
	key      bool
	arrived  time.Time
	rtpTS    uint32
	packets  int
	firstSeq uint16
}

// viewer is a pion WHEP player that reassembles H.264 access units.
type viewer struct {
	t        testing.TB
	pc       *webrtc.PeerConnection
	resource string
	etag     string
	answer   string
	posted   time.Time

	mu        sync.Mutex
	aus       []accessUnit
	audio     int
	packets   int
	seqs      []uint16
	codec     string
	firstPkt  time.Time
	trackDone chan struct{}
}

// watch POSTs a recvonly offer to url and collects what arrives.
func watch(t testing.TB, url string, header http.Header) *viewer {
	t.Helper()
	v, resp := tryWatch(t, url, header)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST %s: %d %s", url, resp.StatusCode, v.answer)
	}
	return v
}

func tryWatch(t testing.TB, url string, header http.Header) (*viewer, *http.Response) {
	t.Helper()
	return tryWatchWith(t, http.DefaultClient, url, header)
}

// gatheredOffer sets a new offer on pc and returns it with every candidate.
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// tryWatchWith is tryWatch over a client of the test's choosing (HTTPS
// with a test root, say).
func tryWatchWith(t testing.TB, client *http.Client, url string, header http.Header) (*viewer, *http.Response) {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{t: t, pc: pc, trackDone: make(chan struct{})}
	t.Cleanup(v.close)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			go v.readAudio(tr)
			return
		}
		v.mu.Lock()
		v.codec = tr.Codec().MimeType
		v.mu.Unlock()
		go v.readVideo(tr)
	})
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(gatheredOffer(t, pc)))
	req.Header.Set("Content-Type", "application/sdp")
	for k, vs := range header {
		req.Header[k] = vs
	}
	v.posted = time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("WHEP POST %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v.answer = string(body)
	if resp.StatusCode != http.StatusCreated {
		return v, resp
	}
	v.resource = resp.Header.Get("Location")
	v.etag = resp.Header.Get("ETag")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: v.answer}); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
	return v, resp
}

func (v *viewer) close() { _ = v.pc.Close() }

func (v *viewer) readAudio(tr *webrtc.TrackRemote) {
	for {
		if _, _, err := tr.ReadRTP(); err != nil {
			return
		}
		v.mu.Lock()
		v.audio++
		v.mu.Unlock()
	}
}

func (v *viewer) readVideo(tr *webrtc.TrackRemote) {
	defer close(v.trackDone)
	codec, err := gateway.ParseCodec(tr.Codec().MimeType)
	if err != nil {
		v.t.Errorf("viewer got codec %s: %v", tr.Codec().MimeType, err)
		return
	}
	var dep rtp.Depacketizer = &codecs.H264Packet{}
	if codec == gateway.H265 {
		dep = &codecs.H265Depacketizer{}
	}
	var cur []byte
	var curKey bool
	var curPackets int
	var curSeq uint16
	var lastTS uint32
	started := false
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		if v.packets == 0 {
			v.firstPkt = time.Now()
		}
		v.packets++
		v.seqs = append(v.seqs, pkt.SequenceNumber)
		v.mu.Unlock()
		if started && pkt.Timestamp != lastTS && len(cur) > 0 {
			// a frame whose marker was lost: keep what we have
			v.push(cur, curKey, lastTS, curPackets, curSeq)
			cur, curKey, curPackets = nil, false, 0
		}
		if curPackets == 0 {
			curSeq = pkt.SequenceNumber
		}
		started, lastTS = true, pkt.Timestamp
		if gateway.IsKeyframe(codec, pkt.Payload) {
			curKey = true
		}
		if nal, err := dep.Unmarshal(pkt.Payload); err == nil {
			cur = append(cur, nal...)
		}
		curPackets++
		if pkt.Marker {
			v.push(cur, curKey, pkt.Timestamp, curPackets, curSeq)
			cur, curKey, curPackets = nil, false, 0
		}
	}
}

func (v *viewer) push(data []byte, key bool, ts uint32, packets int, seq uint16) {
	v.mu.Lock()
	v.aus = append(v.aus, accessUnit{data: data, key: key, arrived: time.Now(), rtpTS: ts, packets: packets, firstSeq: seq})
	v.mu.Unlock()
}

// frames returns a copy of the access units so far.
func (v *viewer) frames() []accessUnit {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]accessUnit(nil), v.aus...)
}

// waitFrames waits until n access units arrived.
func (v *viewer) waitFrames(n int, within time.Duration) []accessUnit {
	v.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if f := v.frames(); len(f) >= n {
			return f
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := v.frames()
	v.t.Fatalf("got %d access units within %v, want %d (state %s)", len(f), within, n, v.pc.ConnectionState())
	return nil
}

// annexB writes the access units from the first keyframe on.
func annexB(t testing.TB, aus []accessUnit) string {
	t.Helper()
	start := -1
	for i, au := range aus {
		if au.key {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("no keyframe among %d access units", len(aus))
	}
	ext := "*.h264"
	if d := aus[start].data; len(d) > 4 && (d[4]>>1)&0x3f == 32 { // starts with an H.265 VPS
		ext = "*.h265"
	}
	f, err := os.CreateTemp(t.TempDir(), ext)
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range aus[start:] {
		if _, err := f.Write(au.data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	return f.Name()
}

// needTool fails (never skips) when a program the tests need is missing.
func needTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s (bash .ci/run installs it)", name, install)
	}
	return p
}

// decodeClean decodes a file with ffmpeg and fails on any decoder message;
// it returns width, height and the number of frames ffprobe counts.
func decodeClean(t testing.TB, path string) (w, h, frames int) {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg", "apt-get install ffmpeg")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg decode of %s: err=%v output:\n%s", path, err, out)
	}
	probe := needTool(t, "ffprobe", "apt-get install ffmpeg")
	out, err = exec.Command(probe, "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d,%d,%d", &w, &h, &frames); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return w, h, frames
}
