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

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // the track reader
}

// watch starts a viewer of url. It returns once the WHEP answer is
// applied; media arrives on the viewer's own goroutine from then on. Each
// viewer has its own API, for its own gate.
func watch(ctx context.Context, peers peerConfig, url string, table *frameTable) (_ *viewer, err error) {
	g, wire := newGate(), newWireClock(h264PayloadType)
	api, err := newAPI(peers, g, wire)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("bench: viewer peer connection: %w", err)
	}
	v := &viewer{pc: pc, gate: g, tally: newTally(table, unixNow)}
	v.tally.wire = wire
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
		v.tally.packet(buf[:n])
	}
}

// Close hangs up and waits for the reader; the tally may be read after.
// Idempotent.
func (v *viewer) Close(ctx context.Context) error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	err := hangUp(ctx, v.resource)
	v.resource = ""
	if cerr := v.pc.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	v.wg.Wait()
	return err
}
