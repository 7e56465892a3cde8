package ingest

import (
	"testing"

	"go.uber.org/goleak"
)

// Every source must stop all its goroutines when Run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
