package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"whipgate/whip/egress"
)

// The egress-recovery scenario (issue 16: "egress back ≤ 3 s after a
// killed target returns"): the server under test publishes the bench
// stream to a second whipgate, the target, over a WHIP egress. Once the
// egress has been up for the warm-up (so that the target's RTCP has been
// heard: its silence is how a crash shows), the bench kills the target
// with SIGKILL, starts it again on the same ports after -target-down, and
// measures from the server's control API (GET /api/v1/egress/{id}) and
// from a viewer on the restarted target:
//
//	kill ──detect──▶ not connected shown
//	     ──down────▶ restart ──start──▶ target serving ──connected──▶ egress connected again
//	                                                    ──picture────▶ a viewer there has a whole keyframe

// recoveryLimit bounds each wait of the scenario: what has not happened
// by then is reported as not happening (null).
const recoveryLimit = 30 * time.Second

// egressPoll is how often the scenario reads the egress's state.
const egressPoll = 20 * time.Millisecond

// egressID is the id of the bench's egress.
const egressID = "bench"

// RecoveryResult is one egress-recovery run: what the JSON line holds.
// Times are in milliseconds; null when it did not happen within 30 s.
type RecoveryResult struct {
	Scenario    string  `json:"scenario"`
	BitrateMbps float64 `json:"bitrate_mbps"`
	FPS         int     `json:"fps"`
	GOPSeconds  float64 `json:"gop_s"`
	// UpSeconds is how long the egress ran before the kill (the
	// warm-up); DownSeconds how long the target was down, kill to
	// restart.
	UpSeconds   float64 `json:"up_s"`
	DownSeconds float64 `json:"down_s"`
	// DetectMs: the kill → the API shows the egress in another state
	// than connected (the server's own time of the change).
	DetectMs *float64 `json:"detect_ms"`
	// StartMs: the restart → the target serves (prints its URL).
	StartMs float64 `json:"target_start_ms"`
	// ConnectedMs: the target serving → the egress connected again (the
	// server's connected_since). The goal is ≤ 3000.
	ConnectedMs *float64 `json:"connected_ms"`
	// PictureMs: the target serving → a viewer there, trying from then
	// on, has a whole keyframe.
	PictureMs *float64 `json:"picture_ms"`
	// States are the egress states the API showed from the kill on, in
	// order; Retries and LastError its figures at the end.
	States    []string `json:"states"`
	Retries   int      `json:"retries"`
	LastError string   `json:"last_error,omitempty"`
}

// recoveries makes the egress-recovery runs and prints them.
func (b *bench) recoveries(ctx context.Context, stdout io.Writer) error {
	var results []RecoveryResult
	for i := range b.opt.Repeat {
		fmt.Fprintf(b.logs, "bench: run %d/%d: egress recovery, %.0f Mbps, target down %v\n",
			i+1, b.opt.Repeat, float64(b.opt.Bitrate)/1e6, b.opt.TargetDown)
		r, err := b.recovery(ctx)
		if err != nil {
			return errors.Join(err, writeReport(stdout, results, writeRecoveryTable))
		}
		results = append(results, r)
	}
	return writeReport(stdout, results, writeRecoveryTable)
}

// recovery is one egress-recovery run.
func (b *bench) recovery(ctx context.Context) (res RecoveryResult, err error) {
	opt := b.opt
	res = RecoveryResult{Scenario: scenarioEgressRecovery, BitrateMbps: float64(opt.Bitrate) / 1e6, FPS: opt.FPS, GOPSeconds: opt.GOP.Seconds()}
	dir, err := runDir()
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	// The target comes back on the same ports: its URL, and the
	// address the egress's ICE session had, are the ones it had.
	addrs, err := freeAddrs()
	if err != nil {
		return res, err
	}
	startTarget := func() (*server, error) {
		return startServer(ctx, "target", b.bin, dir+"/target", opt.ServerConfig, addrs, b.logs, b.show)
	}
	target, err := startTarget()
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, target.Close()) }()
	srv, err := startServer(ctx, "server", b.bin, dir+"/server", opt.ServerConfig, listenAddrs{}, b.logs, b.show)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.Close()) }()

	table := newFrameTable(opt.FPS, opt.Warmup+opt.TargetDown+3*recoveryLimit)
	pub, err := publish(ctx, b.peer(rolePublisher, 0), srv.url+"/whip/"+streamName, b.log)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, pub.Close(context.WithoutCancel(ctx))) }()
	sendCtx, stopSend := context.WithCancel(ctx)
	var sending sync.WaitGroup
	sending.Go(func() {
		_ = pub.send(sendCtx, sendOptions{plan: newPlan(opt.Bitrate, opt.FPS, opt.GOP, opt.KeyframeFactor), answerPLI: !opt.IgnorePLI}, table)
	})
	defer func() { stopSend(); sending.Wait() }()

	// The egress is up and delivers before the kill.
	before, err := b.startEgress(ctx, srv, target, table)
	if err != nil {
		return res, err
	}
	err = awaitPicture(ctx, before)
	if cerr := before.Close(context.WithoutCancel(ctx)); err != nil || cerr != nil {
		return res, fmt.Errorf("bench: the target's viewer before the kill: %w", errors.Join(err, cerr))
	}
	up := time.Now()
	if err := pause(ctx, opt.Warmup); err != nil {
		return res, err
	}
	if st, err := egressStatus(ctx, srv.url, egressID); err != nil || st.State != egress.StateConnected {
		return res, fmt.Errorf("bench: the egress is %q before the kill, want connected (%v)", st.State, err)
	}

	if err := target.kill(); err != nil {
		return res, fmt.Errorf("bench: kill the target: %w", err)
	}
	killed := time.Now()
	res.UpSeconds = round2(killed.Sub(up).Seconds())
	w := egressWatch{base: srv.url, killed: killed}
	if err := w.until(ctx, killed.Add(opt.TargetDown)); err != nil {
		return res, err
	}
	restarted := time.Now()
	res.DownSeconds = round2(restarted.Sub(killed).Seconds())
	if target, err = startTarget(); err != nil {
		return res, fmt.Errorf("bench: restart the target: %w", err)
	}
	serving := time.Now()
	res.StartMs = ms(serving.Sub(restarted))

	// A viewer tries the target from now on, while the state is watched.
	var picture time.Time
	var viewing sync.WaitGroup
	viewing.Go(func() {
		_, watch := b.egress(target)
		v, err := b.watchOnceThere(ctx, watch, table, recoveryLimit)
		if err != nil {
			b.log.Warn("no viewer on the restarted target", "err", err)
			return
		}
		if awaitPicture(ctx, v) == nil {
			picture = time.Unix(0, v.tally.joinedAt)
		}
		_ = v.Close(context.WithoutCancel(ctx))
	})
	werr := w.until(ctx, serving.Add(recoveryLimit))
	viewing.Wait()
	if werr != nil {
		return res, werr
	}
	if !w.detected.IsZero() {
		res.DetectMs = ptr(ms(w.detected.Sub(killed)))
	}
	if !w.connected.IsZero() {
		res.ConnectedMs = ptr(ms(w.connected.Sub(serving)))
	}
	if !picture.IsZero() {
		res.PictureMs = ptr(ms(picture.Sub(serving)))
	}
	res.States, res.Retries, res.LastError = w.states, w.last.Retries, w.last.LastError
	return res, errors.Join(srv.alive(), target.alive())
}

// awaitPicture waits until v has a whole keyframe, for up to recoveryLimit.
func awaitPicture(ctx context.Context, v *viewer) error {
	t := time.NewTimer(recoveryLimit)
	defer t.Stop()
	select {
	case <-v.tally.joined:
		return nil
	case <-t.C:
		return fmt.Errorf("no whole keyframe in %v", recoveryLimit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// egressWatch follows the bench egress's state from a kill on.
type egressWatch struct {
	base   string
	killed time.Time

	states    []string    // each state seen, once per change
	last      egressState // the last read
	detected  time.Time   // the server's time the egress left connected, after the kill
	connected time.Time   // the server's time it was connected again
}

// until reads the state every egressPoll until the egress is connected
// again after the kill, or until the deadline.
func (w *egressWatch) until(ctx context.Context, deadline time.Time) error {
	for w.connected.IsZero() && time.Now().Before(deadline) {
		st, err := egressStatus(ctx, w.base, egressID)
		if err != nil {
			return err
		}
		w.see(st, time.Now())
		if err := pause(ctx, egressPoll); err != nil {
			return err
		}
	}
	return nil
}

// see books one read of the state at now.
func (w *egressWatch) see(st egressState, now time.Time) {
	w.last = st
	if n := len(w.states); n == 0 || w.states[n-1] != st.State {
		w.states = append(w.states, st.State)
	}
	since := now
	if st.Since != nil {
		since = *st.Since
	}
	if st.State != egress.StateConnected && w.detected.IsZero() {
		w.detected = since
	}
	// Connected again: a session that came up after the kill (the API
	// may still show the old one as connected for a while).
	if st.State == egress.StateConnected && st.ConnectedSince != nil && st.ConnectedSince.After(w.killed) {
		w.connected = *st.ConnectedSince
	}
}

// egressState is the part of GET /api/v1/egress/{id} the scenario reads.
type egressState struct {
	State          string     `json:"state"`
	Since          *time.Time `json:"since"`
	ConnectedSince *time.Time `json:"connected_since"`
	Retries        int        `json:"retries"`
	LastError      string     `json:"last_error"`
}

func egressStatus(ctx context.Context, base, id string) (egressState, error) {
	var st egressState
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := base + "/api/v1/egress/" + id
	resp, body, err := call(ctx, http.MethodGet, url, "", nil, 1<<20)
	if err != nil {
		return st, fmt.Errorf("bench: egress state: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bench: egress state: GET %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("bench: egress state: %w", err)
	}
	return st, nil
}

// freeAddrs are a loopback TCP and UDP port free a moment ago, for a
// server that must come back on the same ones.
func freeAddrs() (listenAddrs, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return listenAddrs{}, fmt.Errorf("bench: a free port: %w", err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return listenAddrs{}, fmt.Errorf("bench: a free port: %w", err)
	}
	defer u.Close()
	return listenAddrs{http: l.Addr().String(), udp: u.LocalAddr().String()}, nil
}

func ms(d time.Duration) float64 { return round2(float64(d) / 1e6) }

// writeRecoveryTable prints one row per egress-recovery run.
func writeRecoveryTable(w io.Writer, results []RecoveryResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tMbps\tup s\tdown s\tdetect ms\ttarget start ms\tconnected ms\tpicture ms\tretries\tstates\t")
	for i, r := range results {
		fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%s\t%.0f\t%s\t%s\t%d\t%s\t\n", i+1, r.BitrateMbps, r.UpSeconds, r.DownSeconds,
			opt(r.DetectMs, 0), r.StartMs, opt(r.ConnectedMs, 0), opt(r.PictureMs, 0), r.Retries, strings.Join(r.States, ">"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "(detect: kill → not connected shown; connected, picture: target serving again → egress connected, a viewer there has a whole keyframe; - : not within "+strconv.Itoa(int(recoveryLimit.Seconds()))+" s)")
	return err
}
