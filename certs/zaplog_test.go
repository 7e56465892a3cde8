package certs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"

	"go.uber.org/zap"
)

func TestZapLoggerWritesToSlog(t *testing.T) {
	log, logs := certstest.NewLog(t)
	zl := zapLogger(log).Named("obtain").With(zap.String("issuer", "pebble"))
	zl.Error("could not get certificate", zap.Error(errors.New("boom")),
		zap.Strings("identifiers", []string{"a.example"}), zap.Duration("after", 2*time.Second))
	zl.Debug("hidden") // the test handler's level is Info
	zl.DPanic("still only logged")
	out := logs.String()
	for _, want := range []string{
		`level=ERROR msg="could not get certificate" issuer=pebble logger=obtain after=2s error=boom identifiers=[a.example]`,
		`level=ERROR msg="still only logged"`,
	} {
		mustContain(t, out, want)
	}
	if strings.Contains(out, "hidden") {
		t.Fatalf("a debug entry passed an Info handler:\n%s", out)
	}
}
