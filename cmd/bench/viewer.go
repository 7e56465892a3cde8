package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"
)

// viewer is a cheap WHEP viewer: it reads RTP from its video track into
// one reused buffer and keeps a tally; nothing is depacketized or decoded.
// Its socket is gated (see gate), so its own pion buffers do not drop.
type viewer struct {
	pc       *webrtc.PeerConnection
	resource string
	tally    *tally
	gate     *gate
	direct   *directReceive // nil: media through pion

	mu     sync.Mutex
	closed bool
	done   chan struct{}  // closed by Close: stops the NACK loop
	wg     sync.WaitGroup // the track reader and the NACK loop
}

// watch starts a viewer of url. It returns once the WHEP answer is
// applied; media arrives on the viewer's own goroutine from then on. Each
// viewer has its own API, for its own gate.
func watch(ctx context.Context, peers peerConfig, url string, table *frameTable) (_ *viewer, err error) {
	g, wire := newGate(), newWireClock(h264PayloadType)
	var direct *directReceive
	if peers.direct {
		direct = newDirectReceive(wire)
	}
	api, err := newAPI(peers, g, wire, direct)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("bench: viewer peer connection: %w", err)
	}
	v := &viewer{pc: pc, gate: g, tally: newTally(table, unixNow), direct: direct, done: make(chan struct{})}
	v.tally.wire = wire
	if direct != nil {
		direct.tally = v.tally
		v.wg.Go(func() { direct.askLoop(pc, v.done, peers.log) })
	}
	defer func() {
		if err != nil {
			_ = v.Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return nil, fmt.Errorf("bench: viewer transceiver: %w", err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.closed {
			v.wg.Go(func() { v.read(tr) })
		}
	})
	resource, posted, err := signal(ctx, pc, url)
	v.resource = resource
	if err != nil {
		return nil, fmt.Errorf("bench: watch: %w", err)
	}
	v.tally.postedAt = posted.UnixNano()
	return v, nil
}

func (v *viewer) read(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1600)
	v.gate.StartReader()
	defer v.gate.StopReader()
	for {
		v.gate.Reading()
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		v.gate.Delivered()
		if v.direct != nil {
			v.direct.packet(buf[:n])
		} else {
			v.tally.packet(buf[:n])
		}
	}
}

// Close hangs up and waits for the reader; the tally may be read after.
// Idempotent.
func (v *viewer) Close(ctx context.Context) error {
	v.mu.Lock()
	if !v.closed {
		close(v.done)
	}
	v.closed = true
	v.mu.Unlock()
	err := hangUp(ctx, v.resource)
	v.resource = ""
	if cerr := v.pc.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if v.direct != nil {
		v.direct.close() // the socket reader may outlive pc.Close
	}
	v.wg.Wait()
	return err
}
