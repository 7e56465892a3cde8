package hwaccel

import (
	"log/slog"
	"strings"
	"sync"
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

// readOutputs reads each of run's outputs on a goroutine of its own until
// all of them end, and hands every chunk read to got, with the output's
// layer name. got is called concurrently; chunk is valid only during the
// call.
func readOutputs(run *Run, got func(layer string, chunk []byte)) {
	var wg sync.WaitGroup
	for name, r := range run.Outputs {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Read(buf)
				got(name, buf[:n])
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
}
