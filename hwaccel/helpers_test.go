package hwaccel

import (
	"log/slog"
	"strings"
	"testing"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wantInvalid checks that Validate refuses cfg with an error containing
// want, and that NewSupervisor refuses it too.
func wantInvalid(t *testing.T, cfg Config, want string) {
	t.Helper()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate() = %v, want an error containing %q", err, want)
	}
	if _, err := NewSupervisor(cfg, testLog(t)); err == nil {
		t.Error("NewSupervisor accepted it")
	}
}
