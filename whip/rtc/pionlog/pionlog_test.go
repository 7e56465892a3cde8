package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// pion's info chatter reaches an operator only at debug; its warnings and
// errors at their own levels, scoped.
func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	f := Factory{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l := f.NewLogger("gcc")
	l.Info("estimate 1")
	l.Infof("estimate %d", 2)
	l.Debug("debug")
	l.Warnf("warn %d", 3)
	l.Error("error")
	out := buf.String()
	for _, gone := range []string{"estimate", "debug"} {
		if strings.Contains(out, gone) {
			t.Errorf("%q logged at info:\n%s", gone, out)
		}
	}
	for _, kept := range []string{"level=WARN msg=\"warn 3\" pion=gcc", "level=ERROR msg=error pion=gcc"} {
		if !strings.Contains(out, kept) {
			t.Errorf("missing %q in:\n%s", kept, out)
		}
	}
}

// The bench counts pion's drops at full buffers although pion reports
// them only at Info, which the log shows at Debug.
func TestBufferFullHook(t *testing.T) {
	var buf bytes.Buffer
	n := 0
	f := Factory{Log: slog.New(slog.NewTextHandler(&buf, nil)), BufferFull: func() { n++ }}
	l := f.NewLogger("mux")
	l.Infof("mux: endpoint buffer is full, dropping packet")
	l.Warnf("Failed to write packet: %s", "packetio.Buffer is full")
	l.Info("100% of estimate")
	if n != 2 || strings.Contains(buf.String(), "dropping") {
		t.Errorf("hook called %d times, want 2; pion's Info line logged at Info: %q", n, buf.String())
	}
}
