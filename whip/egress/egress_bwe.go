package egress

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"whipgate/whip/rtc/pionlog"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/twcc"
)

// egressBWEMax lifts GCC's 50 Mbps ceiling: an 8K layer runs at ~100 Mbps.
const egressBWEMax = 1_000_000_000

// egressBWE estimates the path's bandwidth from the target's TWCC feedback
// with pion's GCC, passively: its pacer is a no-op and nothing follows its
// target (DESIGN §3: no GCC driving an 8K encoder); the estimate is only
// reported. Our packets carry transport-wide sequence numbers so a target
// that negotiated transport-cc can send that feedback at all.
type egressBWE struct {
	est atomic.Value // cc.BandwidthEstimator, once the PeerConnection exists
}

// interceptors returns the factories to add to the session's API, in
// order: the estimator, then the header extension (interceptors added later
// see outgoing packets first, and GCC must see the sequence number).
func (b *egressBWE) interceptors(initialBps int64, log *slog.Logger) ([]interceptor.Factory, error) {
	initial := int(min(max(initialBps, 1_000_000), egressBWEMax))
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.SendSideBWEInitialBitrate(initial),
			gcc.SendSideBWEMaxBitrate(egressBWEMax),
			gcc.WithLoggerFactory(pionlog.Factory{Log: log}),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("whip: bandwidth estimator: %w", err)
	}
	f.OnNewPeerConnection(func(_ string, est cc.BandwidthEstimator) { b.est.Store(est) })
	hdr, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("whip: twcc header extension: %w", err)
	}
	return []interceptor.Factory{f, hdr}, nil
}

// bps is GCC's current estimate, 0 before the PeerConnection exists.
func (b *egressBWE) bps() int64 {
	est, ok := b.est.Load().(cc.BandwidthEstimator)
	if !ok {
		return 0
	}
	return int64(est.GetTargetBitrate())
}
