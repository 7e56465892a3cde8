package egress

import (
	"errors"
	"time"

	"whipgate/gateway"
	"whipgate/whip/client"
)

const (
	// egressBackoffBase and egressBackoffCap bound the wait between POSTs
	// to a target that is down or failing.
	egressBackoffBase = 500 * time.Millisecond
	egressBackoffCap  = 30 * time.Second
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
// (1 = the first retry) after err. rnd returns a number in [0, 1) for
// jitter. A Retry-After from the target is honoured as given (never less);
// otherwise exponential backoff with equal jitter (half fixed, half random).
func egressRetryDelay(err error, attempt int, rnd func() float64) time.Duration {
	if ra := client.RetryAfter(err); ra > 0 {
		return ra + time.Duration(rnd()*float64(ra)/10)
	}
	if egressWaitingForStream(err) {
		return egressStreamPoll
	}
	base, limit := egressBackoffBase, egressBackoffCap
	if client.Permanent(err) {
		base, limit = egressPermanentBase, egressPermanentCap
	}
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// egressWaitingForStream reports whether err only says the stream (or a
// layer of it) is not being published yet: not the target's fault.
func egressWaitingForStream(err error) bool {
	return errors.Is(err, gateway.ErrNotFound) || errors.Is(err, gateway.ErrNoPublisher) || errors.Is(err, gateway.ErrNoTrack)
}
