package ingest

import (
	"math"
	"math/rand/v2"
	"time"
)

// frameClock hands out 90 kHz RTP timestamps for frames. Within a run (one
// reader or encoder process) they come from a frame count at a fixed rate,
// from the container's pts, or from the arrival time; a new run continues
// where the last one stopped plus the wall-clock time in between, so
// subscribers see one timeline across encoder restarts.
type frameClock struct {
	fps float64 // > 0: timestamps from the frame count; 0: from arrival

	started bool
	last    uint32    // last timestamp handed out
	lastAt  time.Time // when

	base   uint32 // this run's first timestamp
	at     time.Time
	frames int64
	pts0   int64
	hasPTS bool
}

const clockRate = 90000

// begin starts a run.
func (c *frameClock) begin(now time.Time) {
	if c.started {
		c.base = c.last + uint32(max(ticks(now.Sub(c.lastAt)), 1))
	} else {
		c.base = rand.Uint32()
	}
	c.at, c.frames, c.hasPTS = now, 0, false
}

func ticks(d time.Duration) int64 { return int64(d) * clockRate / int64(time.Second) }

// next is the timestamp of the run's next frame, by frame count or arrival.
func (c *frameClock) next(now time.Time) uint32 {
	var off int64
	if c.fps > 0 {
		off = int64(math.Round(float64(c.frames) * clockRate / c.fps))
	} else {
		off = ticks(now.Sub(c.at))
	}
	c.frames++
	return c.emit(c.base+uint32(off), now)
}

// pts is the timestamp of a frame whose container pts is pts units of
// num/den seconds.
func (c *frameClock) pts(now time.Time, pts int64, num, den uint32) uint32 {
	if !c.hasPTS {
		c.pts0, c.hasPTS = pts, true
	}
	off := (pts - c.pts0) * clockRate * int64(num) / int64(den)
	return c.emit(c.base+uint32(off), now)
}

// emit keeps timestamps strictly increasing: the hub tells frames apart by
// their timestamp, so two frames must never share one.
func (c *frameClock) emit(ts uint32, now time.Time) uint32 {
	if c.started && int32(ts-c.last) <= 0 {
		ts = c.last + 1
	}
	c.started, c.last, c.lastAt = true, ts, now
	return ts
}
