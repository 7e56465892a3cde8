package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// TestBinaryAsREADMESays builds whipgate and starts it exactly as the
// README's first command does (no flags, no config), runs the curl line it
// prints, then stops it with SIGTERM: it must exit 0 within 3 s.
func TestBinaryAsREADMESays(t *testing.T) {
	curl := needTool(t, "curl", "apt-get install curl")
	bin := buildWhipgate(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "go run ./cmd/whipgate\n") {
		t.Fatalf("README no longer says `go run ./cmd/whipgate`; update this test with it")
	}

	p := startWhipgateProcess(t, "README's", bin)
	var curlLine string
	certstest.Eventually(t, 10*time.Second, "a curl line in the welcome text", func() bool {
		for l := range strings.Lines(p.stdout.String()) {
			if _, after, ok := strings.Cut(l, "try: "); ok {
				curlLine = strings.TrimSpace(after)
				return true
			}
		}
		return false
	})
	if printed := p.stdout.String(); !strings.Contains(printed, "http://127.0.0.1:8080/play/test") {
		t.Fatalf("the welcome text does not point at the player: %q", printed)
	}
	args := strings.Fields(curlLine)
	if args[0] != "curl" {
		t.Fatalf("printed line %q is not a curl command", curlLine)
	}
	// The test stream goes live within a frame or two.
	var out []byte
	for range 50 {
		out, err = exec.Command(curl, args[1:]...).Output()
		if err == nil && strings.Contains(string(out), `"live": true`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var doc struct {
		Streams []struct {
			Name string `json:"name"`
			Live bool   `json:"live"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("printed curl line gave %q: %v", out, err)
	}
	if len(doc.Streams) != 1 || doc.Streams[0].Name != "test" || !doc.Streams[0].Live {
		t.Fatalf("printed curl line gave %s", out)
	}

	// As the issue asks of a graceful shutdown.
	p.stop(t, syscall.SIGTERM, 3*time.Second)
}

// TestSIGTERMDeletesEgress: a whipgate process publishing to another one
// gets SIGTERM; it sends DELETE for its egress sessions (the target's
// publisher goes away at once, not after an ICE timeout) and exits 0 within
// 3 s.
func TestSIGTERMDeletesEgress(t *testing.T) {
	target := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	dir := t.TempDir()
	conf := filepath.Join(dir, "a.yaml")
	yaml := "listen: 127.0.0.1:0\nwebrtc: {udp_listen: 127.0.0.1:0}\nstate_dir: " + dir + "\ntest_source: {stream: test}\n" +
		"egress:\n  - {id: up, stream: test, url: \"" + target.URL() + "/whip/up-{layer}\"}\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startWhipgateProcess(t, "publishing", buildWhipgate(t), "-config", conf)

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		m, ok1 := target.Hub().Stream("up-main")
		p, ok2 := target.Hub().Stream("up-preview")
		if ok1 && ok2 && m.Live() && p.Live() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if whipSessions(target) != 2 {
		t.Fatalf("target has %d WHIP sessions, want 2", whipSessions(target))
	}
	proc.stop(t, syscall.SIGTERM, 3*time.Second)
	// The DELETEs arrived before the exit; consent timeouts would take 15 s.
	if n := whipSessions(target); n != 0 {
		t.Fatalf("target still has %d WHIP sessions after the publisher exited", n)
	}
}

func whipSessions(app *instance) int {
	n := 0
	for _, s := range app.Sessions().List() {
		if s.Kind == "whip" {
			n++
		}
	}
	return n
}
