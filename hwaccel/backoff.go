package hwaccel

import (
	"math/rand/v2"
	"time"
)

// backoff yields restart delays: min, 2×min, 4×min … up to max, each with
// ±20 % jitter (so up to 1.2×max) so that several boxes restarted by the same event do not
// retry in step. Not safe for concurrent use; the supervisor loop owns it.
type backoff struct {
	min, max time.Duration
	cur      time.Duration // nominal delay of the last next(); 0 after reset
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	// Jitter applies at the cap too, or every box would retry at exactly max.
	return time.Duration(float64(b.cur) * (0.8 + 0.4*rand.Float64()))
}

func (b *backoff) reset() { b.cur = 0 }
