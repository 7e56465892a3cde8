package udp

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"whipgate/internal/testkit"
)

// Buffers larger than the sysctls allow are granted whole with
// CAP_NET_ADMIN (root, as on the box) and otherwise clamped with a warning
// that names the sysctl to raise.
func TestSocketBuffersPastTheSysctls(t *testing.T) {
	limit := max(procInt(t, "/proc/sys/net/core/rmem_max"), procInt(t, "/proc/sys/net/core/wmem_max"))
	size := 2*limit + 1<<20
	conn := testkit.LoopbackUDP(t, "udp4")
	var logs bytes.Buffer
	SetBuffers(conn, size, slog.New(slog.NewTextHandler(&logs, nil)))
	rcv, snd := socketBuffer(conn, syscall.SO_RCVBUF), socketBuffer(conn, syscall.SO_SNDBUF)
	if hasNetAdmin(t) {
		if rcv < size || snd < size {
			t.Errorf("with CAP_NET_ADMIN asked %d bytes past the sysctls' %d, got %d receive, %d send", size, limit, rcv, snd)
		}
		if strings.Contains(logs.String(), "WARN") {
			t.Errorf("warned although the buffers were granted:\n%s", logs.String())
		}
		return
	}
	for _, sysctl := range []string{"net.core.rmem_max", "net.core.wmem_max"} {
		if !strings.Contains(logs.String(), "sysctl -w "+sysctl+"="+strconv.Itoa(size)) {
			t.Errorf("without CAP_NET_ADMIN (%d receive, %d send of %d) no warning naming %s:\n%s", rcv, snd, size, sysctl, logs.String())
		}
	}
}

func procInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// hasNetAdmin reads CAP_NET_ADMIN (bit 12) from the effective capabilities.
func hasNetAdmin(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("read capabilities: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", hex, err)
			}
			return caps&(1<<12) != 0
		}
	}
	t.Fatal("no CapEff line in /proc/self/status")
	return false
}
