package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
)

// egressLeg is one WHIP session of an egress, re-made as often as needed:
// one layer (mode sessions) or all of them (mode simulcast), plus the
// stream's audio in the first leg.
type egressLeg struct {
	e      *Egress
	client *client.Client
	url    string
	layers []string
	rids   []string // simulcast: rids[i] names layers[i]
	audio  string
	log    *slog.Logger

	mu             sync.Mutex
	state          string
	stateSince     time.Time // when state was entered
	lastUp         time.Time // when the leg was last connected; zero: never
	lastErr        string
	lastErrAt      time.Time
	retries        int
	connectedSince time.Time
	nextRetry      time.Time
	live           *egressLive // the current session, nil between sessions
	restarts       int         // of earlier sessions
	bitrate        int64
	warned         bool
}

func newEgressLeg(e *Egress, c *client.Client, url string, layers, rids []string, audio string) *egressLeg {
	return &egressLeg{
		e: e, client: c, url: url, layers: layers, rids: rids, audio: audio,
		log:   e.log.With("layers", layers, "url", client.Redact(url)),
		state: StateConnecting, stateSince: time.Now(),
	}
}

// run serves sessions one after another until ctx is done.
func (l *egressLeg) run(ctx context.Context) {
	attempt := 0
	var outage time.Time // when the current run of failures began
	for {
		up, err := l.serve(ctx)
		if ctx.Err() != nil {
			return
		}
		if up >= egressStableAfter {
			attempt, outage = 0, time.Time{}
		}
		if outage.IsZero() {
			outage = time.Now()
		}
		waiting := egressWaitingForStream(err)
		if !waiting {
			attempt++
		}
		delay := egressRetryDelay(err, attempt, time.Since(outage), rand.Float64)
		state := StateReconnecting
		switch {
		case waiting:
			state = StateConnecting
		case client.Permanent(err) && !egressSessionGone(err):
			state = StateFailed
		}
		l.mu.Lock()
		l.enterLocked(state, time.Now())
		l.lastErr, l.lastErrAt = err.Error(), time.Now()
		l.bitrate = 0
		if !waiting {
			l.retries++
		}
		l.connectedSince = time.Time{}
		l.nextRetry = time.Now().Add(delay)
		l.mu.Unlock()
		if waiting {
			l.log.Debug("stream not ready", "err", err)
		} else {
			l.log.Warn("WHIP session failed; retrying", "err", err, "in", delay.Round(time.Millisecond),
				"attempt", attempt, "permanent", state == StateFailed)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// enterLocked moves the leg to state s at now (l.mu held).
func (l *egressLeg) enterLocked(s string, now time.Time) {
	if l.state == StateConnected && s != StateConnected {
		l.lastUp = now
	}
	if s != l.state {
		l.state, l.stateSince = s, now
	}
}

func (l *egressLeg) setState(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enterLocked(s, time.Now())
	if s == StateConnected && l.connectedSince.IsZero() {
		l.connectedSince = time.Now()
	}
	if s != StateConnected {
		l.connectedSince = time.Time{}
	}
}

// egressLive is the state of one live session that Status reads. The
// fields above mu are set before the leg publishes it.
type egressLive struct {
	sess     *client.Session
	snd      *rtc.Sender
	feedback *egressFeedback
	history  int

	mu        sync.Mutex
	pacers    []*Pacer
	audio     *egressCountingWriter
	warning   string
	lastBytes uint64
	lastAt    time.Time
	// pair is the selected candidate pair, looked up on the leg's
	// goroutine only: pion's GetSelectedCandidatePair races with ICE
	// start-up.
	pair string
}

func (v *egressLive) setWarning(w string) {
	v.mu.Lock()
	v.warning = w
	v.mu.Unlock()
}

func (v *egressLive) setPair(p string) {
	v.mu.Lock()
	v.pair = p
	v.mu.Unlock()
}

// sentBytes needs v.mu held.
func (v *egressLive) sentBytes() uint64 {
	var n uint64
	for _, p := range v.pacers {
		n += p.Stats().Bytes
	}
	if v.audio != nil {
		n += v.audio.bytes.Load()
	}
	return n
}

// sample returns the bitrate since the previous sample.
func (v *egressLive) sample(now time.Time) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.sentBytes()
	var bps int64
	if !v.lastAt.IsZero() && now.After(v.lastAt) {
		bps = int64(float64(b-v.lastBytes) * 8 / now.Sub(v.lastAt).Seconds())
	}
	v.lastBytes, v.lastAt = b, now
	return bps
}

// egressSetup is what serve needs about the layers it sends.
type egressSetup struct {
	names   []string // subscription order: video layers, then audio
	infos   []gateway.TrackInfo
	bitrate []int64 // measured payload bitrate per name, 0 if unknown
	avgSize []int
}

func (l *egressLeg) setup() (egressSetup, error) {
	st, ok := l.e.hub.Stream(l.e.cfg.Stream)
	if !ok {
		return egressSetup{}, fmt.Errorf("stream %q: %w", l.e.cfg.Stream, gateway.ErrNotFound)
	}
	live := st.Tracks()
	if len(live) == 0 {
		return egressSetup{}, fmt.Errorf("stream %q: %w", l.e.cfg.Stream, gateway.ErrNoPublisher)
	}
	stats := st.Stats()
	var s egressSetup
	s.names = append(s.names, l.layers...)
	if l.audio != "" {
		s.names = append(s.names, l.audio)
	}
	for _, n := range s.names {
		var info *gateway.TrackInfo
		for i := range live {
			if live[i].Name == n {
				info = &live[i]
			}
		}
		if info == nil {
			return egressSetup{}, fmt.Errorf("stream %q layer %q: %w", l.e.cfg.Stream, n, gateway.ErrNoTrack)
		}
		var bps int64
		avg := 0
		for _, ts := range stats.Tracks {
			if ts.Name == n {
				bps = ts.BitrateBps
				if ts.Packets > 0 {
					avg = int(ts.Bytes / ts.Packets)
				}
			}
		}
		if bps == 0 && info.BitrateKbps > 0 {
			bps = int64(info.BitrateKbps) * 1000
		}
		s.infos = append(s.infos, *info)
		s.bitrate = append(s.bitrate, bps)
		s.avgSize = append(s.avgSize, avg)
	}
	if len(l.rids) > 0 {
		for _, info := range s.infos[:len(l.layers)] {
			if info.Codec != s.infos[0].Codec {
				return egressSetup{}, fmt.Errorf("%w: simulcast needs one codec for all layers, but %s is %s and %s is %s",
					client.ErrProtocol, s.infos[0].Name, s.infos[0].Codec, info.Name, info.Codec)
			}
		}
	}
	return s, nil
}

// serve runs one session: POST, connect, send until something breaks. It
// returns how long the session was connected and why it ended.
func (l *egressLeg) serve(ctx context.Context) (up time.Duration, err error) {
	setup, err := l.setup()
	if err != nil {
		return 0, err
	}
	nVideo := len(l.layers)
	history := 0 // per sender, so the busiest layer sets it
	for i := range nVideo {
		history = max(history, egressNACKHistory(setup.bitrate[i], setup.avgSize[i]))
	}
	warning := l.checkTargetLimits(setup.names[:nVideo], setup.bitrate[:nVideo])

	live := &egressLive{feedback: newEgressFeedback(), warning: warning}
	// Each session gathers on sockets of its own (see NewClientSender) and
	// seals its media beneath pion where it can. No TWCC: the bandwidth
	// estimate is the target's REMB, where it sends one. pion's GCC over
	// TWCC feedback cost as much a packet as the rest of the send path,
	// and its send history (250 packets, 25 ms at 100 Mbps) is shorter
	// than the feedback interval (100 ms), so at 8K rates it could match
	// little of the feedback; nothing followed its estimate anyway.
	snd, err := l.e.t.NewClientSender(l.client.PeerConfiguration(),
		rtc.APIOptions{NACKHistory: history, RelayOnly: l.e.cfg.RelayOnly, NoTWCC: true},
		rtc.PeerOptions{PionSRTP: l.e.cfg.PionSRTP, Log: l.log})
	if err != nil {
		return 0, fmt.Errorf("whip: new peer connection: %w", err)
	}
	if history == 0 {
		history = l.e.t.Config().NACKHistory // not measured yet: the transport's default
	}
	pc := snd.PeerConnection()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		l.log.Debug("ICE state", "state", s)
		poke()
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		l.log.Debug("connection state", "state", s)
		poke()
	})

	var wg sync.WaitGroup
	sctx, cancel := context.WithCancel(ctx)
	var sess *client.Session
	var sub *gateway.Subscription
	live.snd, live.history = snd, history
	defer func() {
		cancel()
		live.mu.Lock()
		pacers := live.pacers
		live.mu.Unlock()
		for _, p := range pacers {
			_ = p.Close()
		}
		_ = snd.Close() // ends the RTCP readers
		wg.Wait()
		if sub != nil {
			_ = sub.Close()
		}
		if sess != nil {
			// Bounded: a dead target must not hold up the next POST or a stop.
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), client.DeleteWait)
			if derr := sess.Close(dctx); derr != nil {
				l.log.Info("DELETE of the old session failed", "err", derr)
			}
			dcancel()
		}
		l.mu.Lock()
		if l.live == live {
			l.restarts += sess.Restarts()
			l.live = nil
		}
		l.mu.Unlock()
	}()

	tracks, trs, err := l.addTracks(pc, setup)
	if err != nil {
		return 0, err
	}
	sess, err = l.client.Publish(ctx, pc)
	if err != nil {
		return 0, err
	}
	live.sess = sess
	l.mu.Lock()
	l.live = live
	l.mu.Unlock()

	if err := l.waitConnected(ctx, pc, kick); err != nil {
		return 0, err
	}
	connectedAt := time.Now()
	defer func() { up = time.Since(connectedAt) }()
	live.setPair(egressPair(pc))
	l.setState(StateConnected)
	l.log.Info("connected", "resource", client.Redact(sess.Resource()), "pair", live.pair, "nack_history", history)

	// Subscribe only now: packets sent before DTLS is up are lost, and a
	// fresh subscription starts with the GOP cache, so the target decodes
	// at once.
	sub, err = l.e.hub.Subscribe(l.e.cfg.Stream, setup.names, gateway.SubscribeOptions{Kind: "egress", Remote: client.Redact(l.url)})
	if err != nil {
		return up, err
	}
	for i, info := range sub.Tracks() {
		if info.Codec != setup.infos[i].Codec {
			return up, fmt.Errorf("layer %s changed codec from %s to %s", info.Name, setup.infos[i].Codec, info.Codec)
		}
	}
	writers := make([]rtc.RTPWriter, len(setup.names))
	for i := range nVideo {
		pcfg := PacerConfig{Factor: l.e.cfg.PacingFactor, InitialBps: setup.bitrate[i], Batch: snd}
		if len(l.rids) > 0 {
			pcfg.Extensions = egressRIDExtensions(trs[0], l.rids[i])
		}
		p, err := NewPacer(pcfg, tracks[i], l.log)
		if err != nil {
			return up, err
		}
		live.mu.Lock()
		live.pacers = append(live.pacers, p)
		live.mu.Unlock()
		writers[i] = p
		wg.Go(func() { _ = p.Run(sctx) })
	}
	if l.audio != "" {
		aw := &egressCountingWriter{w: tracks[nVideo]}
		live.mu.Lock()
		live.audio = aw
		live.mu.Unlock()
		writers[nVideo] = aw
	}
	l.startRTCP(&wg, sub, trs, live.feedback)
	fwdDone := make(chan error, 1)
	wg.Go(func() { fwdDone <- snd.Forward(sctx, sub, writers) })
	return up, l.monitor(ctx, pc, sess, kick, fwdDone, live)
}

// checkTargetLimits warns, once per leg, when a layer runs above what the
// target documents (Sora: 15 Mbps per stream). It never refuses: an 8K
// publish to Sora is the operator's call. It returns the warning, if any.
func (l *egressLeg) checkTargetLimits(layers []string, bitrates []int64) string {
	if l.e.cfg.Target != TargetSora {
		return ""
	}
	warning := ""
	for i, b := range bitrates {
		if b > egressSoraMaxBps {
			warning = fmt.Sprintf("layer %s runs at %.1f Mbps; Sora documents at most 15 Mbps per stream",
				layers[i], float64(b)/1e6)
		}
	}
	if warning != "" && !l.warned {
		l.warned = true
		l.log.Warn(warning)
	}
	return warning
}

// layerBitrates is the hub's measured bitrate of each of the leg's layers.
func (l *egressLeg) layerBitrates() []int64 {
	out := make([]int64, len(l.layers))
	st, ok := l.e.hub.Stream(l.e.cfg.Stream)
	if !ok {
		return out
	}
	for _, ts := range st.Stats().Tracks {
		for i, name := range l.layers {
			if ts.Name == name {
				out[i] = ts.BitrateBps
			}
		}
	}
	return out
}

// waitConnected waits for DTLS to be up, or fails when ICE fails.
func (l *egressLeg) waitConnected(ctx context.Context, pc *webrtc.PeerConnection, kick <-chan struct{}) error {
	limit := max(15*time.Second, l.e.t.Config().FailedTimeout+5*time.Second)
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		switch s := pc.ConnectionState(); s {
		case webrtc.PeerConnectionStateConnected:
			return nil
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			return fmt.Errorf("whip: connection %s before it was up (ICE %s)", s, pc.ICEConnectionState())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("whip: not connected after %v (ICE %s)", limit, pc.ICEConnectionState())
		case <-kick:
		}
	}
}

// egressSilence is how long a target that has been sending RTCP (receiver
// reports come every second) may go quiet before it counts as dead: far
// sooner than ICE's consent timeouts, so a crashed target is noticed,
// shown as reconnecting and POSTed to again within about two seconds.
const egressSilence = 2 * time.Second

// monitor watches a connected session until it breaks: ICE disconnected or
// the target silent → restart ICE where the target supports it (a strong
// ETag), else POST again at once; failed, closed, or down for too long →
// give up so run POSTs again.
func (l *egressLeg) monitor(ctx context.Context, pc *webrtc.PeerConnection, sess *client.Session,
	kick <-chan struct{}, fwdDone <-chan error, live *egressLive,
) error {
	tick := time.NewTicker(egressSilence / 8)
	defer tick.Stop()
	limit := l.e.t.Config().FailedTimeout + 5*time.Second
	var downSince, sampled time.Time
	restarted := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-fwdDone:
			if err == nil {
				err = errors.New("forwarder stopped")
			}
			return fmt.Errorf("stream %q: %w", l.e.cfg.Stream, err)
		case <-kick:
		case now := <-tick.C:
			if now.Sub(sampled) >= time.Second {
				sampled = now
				if w := l.checkTargetLimits(l.layers, l.layerBitrates()); w != "" {
					live.setWarning(w)
				}
				live.setPair(egressPair(pc))
				bps := live.sample(now)
				l.mu.Lock()
				l.bitrate = bps
				l.mu.Unlock()
			}
		}
		ice, state := pc.ICEConnectionState(), pc.ConnectionState()
		silent := live.feedback.silentFor(time.Now()) > egressSilence
		switch {
		case state == webrtc.PeerConnectionStateFailed || state == webrtc.PeerConnectionStateClosed ||
			ice == webrtc.ICEConnectionStateFailed || ice == webrtc.ICEConnectionStateClosed:
			return fmt.Errorf("whip: connection %s (ICE %s)", state, ice)
		case !silent && (ice == webrtc.ICEConnectionStateConnected || ice == webrtc.ICEConnectionStateCompleted) &&
			state == webrtc.PeerConnectionStateConnected:
			if !downSince.IsZero() {
				live.setPair(egressPair(pc))
				l.log.Info("connection recovered", "after", time.Since(downSince).Round(time.Millisecond), "ice_restart", restarted,
					"pair", live.pair)
				downSince, restarted = time.Time{}, false
				l.setState(StateConnected)
			}
		case silent || ice == webrtc.ICEConnectionStateDisconnected || state == webrtc.PeerConnectionStateDisconnected || !downSince.IsZero():
			if downSince.IsZero() {
				downSince = time.Now()
				l.log.Warn("connection lost", "ice", ice, "state", state, "rtcp_silent", silent, "ice_restart", sess.CanRestart())
				l.setState(StateReconnecting)
			}
			if !sess.CanRestart() {
				// No ICE restart here (no ETag, or MediaMTX's "*"): waiting
				// for ICE to give up only delays the new POST that will
				// bring the session back.
				return fmt.Errorf("whip: connection lost (ICE %s, RTCP silent %v) and the target takes no ICE restart", ice, silent)
			}
			if !restarted {
				restarted = true
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				err := sess.Restart(rctx)
				rcancel()
				if err != nil {
					return fmt.Errorf("ICE restart: %w", err)
				}
			}
			if time.Since(downSince) > limit {
				return fmt.Errorf("whip: connection down for %v (ICE %s)", time.Since(downSince).Round(time.Second), ice)
			}
		}
	}
}
