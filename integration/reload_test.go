package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
)

// TestSIGHUPReloadKeepsPlaying (issue 15) runs the built binary from a
// config file: the test source on stream "test", and stream "cam" (a pion
// publisher) with a view_token. A viewer of test plays through two
// SIGHUPs:
//  1. one that changes the log level and adds an egress: the viewer's
//     largest gap between frames stays under 1 s;
//  2. one that changes cam's view_token: a new WHEP POST with the old
//     token gets 401 and one with the new token 201; cam's viewer that
//     came with the old token is closed (the README's reload semantics),
//     while the viewer of test plays on, with no gap, in the same process,
//     which still exits 0 on SIGINT.
func TestSIGHUPReloadKeepsPlaying(t *testing.T) {
	const oldToken, newToken = "old-view-token-0123", "new-view-token-0123"
	dir := t.TempDir()
	conf := filepath.Join(dir, "whipgate.yaml")
	base := "listen: 127.0.0.1:0\nwebrtc: {udp_listen: 127.0.0.1:0}\nstate_dir: " + dir + "\ntest_source: {stream: test}\n"
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("streams:\n  cam: {view_token: " + oldToken + "}\n")
	proc := startWhipgateProcess(t, "reloaded", buildWhipgate(t), "-config", conf)
	reloads := 0
	hup := func(wantApplied string) {
		t.Helper()
		if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		reloads++
		var line string
		certstest.Eventually(t, 10*time.Second, fmt.Sprintf("reload %d logged", reloads), func() bool {
			select {
			case <-proc.done:
				t.Fatalf("whipgate exited on SIGHUP: %v", proc.err)
			default:
			}
			lines := regexp.MustCompile(`(?m)^.*msg="configuration reloaded".*$`).FindAllString(proc.stderr.String(), -1)
			if len(lines) < reloads {
				return false
			}
			line = lines[reloads-1]
			return true
		})
		if !strings.Contains(strings.ReplaceAll(line, `"`, ""), "applied=["+wantApplied+"]") {
			t.Fatalf("reload %d: %s; want applied [%s]", reloads, line, wantApplied)
		}
	}

	// A reload at once after the banner (systemd's READY=1 comes with
	// it): the SIGHUP handler is in place before either.
	hup("")
	v := watch(t, proc.url+"/whep/test/preview")
	v.waitFrames(30, 10*time.Second)
	publish(t, proc.url+"/whip/cam", publishOptions{video: h264Video})
	camViewer := watchWith(t, proc.url+"/whep/cam", watchOptions{token: oldToken})

	write("log_level: debug\nstreams:\n  cam: {view_token: " + oldToken + "}\n" +
		"egress:\n  - {id: relay, stream: test, url: \"http://127.0.0.1:9/whip\", layers: [preview]}\n")
	hup("egress log_level")
	playsOn(t, v, time.Now())

	write("log_level: debug\nstreams:\n  cam: {view_token: " + newToken + "}\n" +
		"egress:\n  - {id: relay, stream: test, url: \"http://127.0.0.1:9/whip\", layers: [preview]}\n")
	hup("streams")
	offer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
	resp, body := do(t, http.MethodPost, proc.url+"/whep/cam", "application/sdp", offer, bearer(oldToken))
	requireProblem(t, resp, body, http.StatusUnauthorized, "wrong Bearer token")
	watchWith(t, proc.url+"/whep/cam", watchOptions{token: newToken})
	resp, body = do(t, http.MethodGet, proc.url+"/api/v1/sessions/"+sessionID(camViewer.resource), "", "", nil)
	requireProblem(t, resp, body, http.StatusNotFound, "no session")
	playsOn(t, v, time.Now())

	if resp, body := do(t, http.MethodGet, proc.url+"/api/v1/sessions/"+sessionID(v.resource), "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the viewer of test after the reloads: %d %s", resp.StatusCode, body)
	}
	largest := largestGap(v.frames())
	fmt.Fprintf(t.Output(), "largest gap between frames across both reloads: %v\n", largest)
	if largest >= time.Second {
		t.Fatalf("the viewer's frames stopped for %v across a reload", largest)
	}
	proc.stop(t, syscall.SIGINT, 10*time.Second)
}

// playsOn waits until v has received frames for 2 s past since.
func playsOn(t testing.TB, v *viewer, since time.Time) {
	t.Helper()
	certstest.Eventually(t, 15*time.Second, "frames 2 s after the reload", func() bool {
		f := v.frames()
		return len(f) > 0 && f[len(f)-1].arrived.Sub(since) >= 2*time.Second
	})
}

// largestGap is the longest time between two frames' arrivals.
func largestGap(frames []accessUnit) time.Duration {
	var largest time.Duration
	for i := 1; i < len(frames); i++ {
		largest = max(largest, frames[i].arrived.Sub(frames[i-1].arrived))
	}
	return largest
}
