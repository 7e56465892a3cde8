package egress

import (
	"errors"
	"net/http"
	"time"

	"whipgate/gateway"
	"whipgate/whip/client"
)

const (
	// egressBackoffBase and egressBackoffCap bound the wait between POSTs
	// to a target that is down or failing.
	egressBackoffBase = 250 * time.Millisecond
	egressBackoffCap  = 30 * time.Second
	// While an outage is younger than egressFastFor, the wait stays under
	// egressFastCap: a target that restarts (a crash, a deploy) is back
	// within seconds, and should find its publishers at once, not a
	// backoff of many seconds later. A longer outage backs off to the cap.
	egressFastFor = time.Minute
	egressFastCap = time.Second
	// A target that refuses us as configured (401, 404, rejected rids) is
	// retried too, in case an operator fixes it, but slowly.
	egressPermanentBase = 30 * time.Second
	egressPermanentCap  = 5 * time.Minute
	// egressStreamPoll is how often a leg looks for its stream to go live.
	egressStreamPoll = 500 * time.Millisecond
	// egressStableAfter: a session that stayed up this long resets the
	// backoff, so a target that flaps now and then is rejoined at once.
	egressStableAfter = 10 * time.Second
)

// egressRetryDelay is how long to wait before POST attempt number attempt
// (1 = the first retry) of an outage that has lasted down, after err. rnd
// returns a number in [0, 1) for jitter.
//   - A Retry-After from the target is honoured as given (never less).
//   - The session URL gone (404 or 410 to a PATCH: the target restarted
//     and forgot it), or the first retry of an outage: at once.
//   - A target that refuses us as configured (401, 404 to the POST,
//     rejected rids): slowly, 30 s to 5 min.
//   - Otherwise exponential backoff from 250 ms with equal jitter (half
//     fixed, half random), at most 1 s in the outage's first minute and
//     30 s after.
func egressRetryDelay(err error, attempt int, down time.Duration, rnd func() float64) time.Duration {
	if ra := client.RetryAfter(err); ra > 0 {
		return ra + time.Duration(rnd()*float64(ra)/10)
	}
	if egressWaitingForStream(err) {
		return egressStreamPoll
	}
	if egressSessionGone(err) {
		return 0
	}
	base, limit := egressBackoffBase, egressBackoffCap
	if client.Permanent(err) {
		base, limit = egressPermanentBase, egressPermanentCap
	} else if attempt <= 1 {
		return 0
	} else if down < egressFastFor {
		limit = egressFastCap
	}
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// egressSessionGone reports whether err says the target no longer knows
// our session (404 or 410 to a PATCH): it restarted, and a new POST is
// the way back, now.
func egressSessionGone(err error) bool {
	he, ok := errors.AsType[*client.HTTPError](err)
	return ok && he.Method == http.MethodPatch && (he.Status == http.StatusNotFound || he.Status == http.StatusGone)
}

// egressWaitingForStream reports whether err only says the stream (or a
// layer of it) is not being published yet: not the target's fault.
func egressWaitingForStream(err error) bool {
	return errors.Is(err, gateway.ErrNotFound) || errors.Is(err, gateway.ErrNoPublisher) || errors.Is(err, gateway.ErrNoTrack)
}
