package cmd

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"whipgate/cmd/config/configtest"
)

// Under systemd (Type=notify) Run says READY=1 once it serves, feeds the
// watchdog, says RELOADING=1 then READY=1 around a SIGHUP reload and
// STOPPING=1 when it stops.
func TestRunNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(int((300 * time.Millisecond).Microseconds())))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(syscall.Getpid()))

	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- strings.TrimSpace(string(buf[:n]))
		}
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-got:
				if s == want {
					return
				}
			case <-deadline:
				t.Fatalf("systemd was not told %s", want)
			}
		}
	}
	cfgFile := configtest.WriteFile(t, "whipgate.yaml", "log_level: info\n")
	_, _ = runServer(t, []string{"-config", cfgFile, "-listen", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-state-dir", t.TempDir()}, nil)
	expect("READY=1")
	expect("WATCHDOG=1")
	expect("WATCHDOG=1") // kept fed
	// Run has its SIGHUP handler installed once it has said READY.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expect("RELOADING=1")
	expect("READY=1")
}

// The unit in examples/systemd passes systemd-analyze verify and keeps the
// settings the README promises.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is not on PATH (%v): ./test.sh (which .ci/run runs) installs it; by hand: apt-get install -y systemd", err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "examples", "systemd", "whipgate.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE", "StateDirectory=whipgate",
		"EnvironmentFile=", "LoadCredential=api_token:", "WHIPGATE_API_TOKEN_FILE=%d/api_token",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "DeviceAllow=char-video4linux rw", "DeviceAllow=char-drm rw",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit has no %q", want)
		}
	}
	// verify wants the binary it names to exist: this test's will do.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "whipgate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/whipgate", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
