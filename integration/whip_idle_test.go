package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestWHIPSessionDoesNotSpin: a connected WHIP session whose publisher is
// quiet must cost (almost) nothing. A select on the already-closed
// "connected" channel once made every ingest session burn a whole core.
func TestWHIPSessionDoesNotSpin(t *testing.T) {
	app := startGateway(t, nil)
	p := publish(t, app.URL()+"/whip/idle", publishOptions{video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}})
	time.Sleep(200 * time.Millisecond) // the server side is connected too
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, start := cpu(), time.Now()
	time.Sleep(time.Second)
	used, wall := cpu()-before, time.Since(start)
	// A spinning loop uses about one core-second per second; an idle
	// session a few milliseconds of keepalives.
	if used > wall/2 {
		t.Fatalf("an idle WHIP session used %v of CPU in %v", used, wall)
	}
	if !strings.Contains(p.answer, "a=recvonly") {
		t.Fatalf("answer is not recvonly")
	}
}
