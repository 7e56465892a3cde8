package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// publisher is the bench's WHIP publisher: one H.264 track of synthetic
// frames, written by a single goroutine on the frame schedule.
type publisher struct {
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	resource string
	log      *slog.Logger
	wg       sync.WaitGroup // the RTCP reader

	keyWanted atomic.Bool // a PLI or FIR arrived since the last keyframe
	sendStats
}

// sendStats are what a stream's sender (the WHIP publisher, or the box's
// encoder feed) counts for the report.
type sendStats struct {
	plis, nacks atomic.Uint64 // the server's keyframe requests and NACKed packets

	// Written by the sending goroutine only.
	late, writeErrs int
	keyframes       int
}

// publish connects a WHIP publisher to url and waits until media can flow.
func publish(ctx context.Context, peers peerConfig, url string, log *slog.Logger) (_ *publisher, err error) {
	api, err := newAPI(peers, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("bench: publisher peer connection: %w", err)
	}
	p := &publisher{pc: pc, log: log}
	defer func() {
		if err != nil {
			_ = p.Close(context.WithoutCancel(ctx))
		}
	}()
	p.track, err = webrtc.NewTrackLocalStaticRTP(h264, "video", "bench")
	if err != nil {
		return nil, fmt.Errorf("bench: publisher track: %w", err)
	}
	tr, err := pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, fmt.Errorf("bench: publisher transceiver: %w", err)
	}
	sender := tr.Sender()
	p.wg.Go(func() { p.readRTCP(sender) })
	states := stateChanges(pc)
	if p.resource, _, err = signal(ctx, pc, url); err != nil {
		return nil, fmt.Errorf("bench: publish: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := waitConnected(cctx, pc, states); err != nil {
		return nil, fmt.Errorf("bench: publisher never connected: %w", err)
	}
	return p, nil
}

// readRTCP turns keyframe requests into a flag for the sender and counts
// the server's NACKs (ingest loss). It ends when the PeerConnection closes.
func (p *publisher) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.keyWanted.Store(true)
			case *rtcp.TransportLayerNack:
				for _, pair := range pkt.Nacks {
					p.nacks.Add(uint64(len(pair.PacketList())))
				}
			}
		}
	}
}

// sendOptions say how frames go out.
type sendOptions struct {
	plan  plan
	paced bool // spread each frame's packets over the frame interval
	// answerPLI makes the next frame a keyframe after a PLI or FIR, as a
	// hardware encoder does, and restarts the GOP there.
	answerPLI bool
}

// send writes frames on schedule until ctx ends or the table is full,
// recording each in table. Burst mode writes a frame's packets back to
// back at its due time; paced mode spreads them evenly over the frame
// interval.
func (p *publisher) send(ctx context.Context, opt sendOptions, table *frameTable) error {
	z := newPacketizer(opt.plan)
	var pkt rtp.Packet
	seq := uint16(rand.Uint32())
	tsStart := rand.Uint32()
	wantKey := func() bool { return p.keyWanted.Swap(false) && opt.answerPLI }
	return frameLoop(ctx, opt.plan, table, &p.sendStats, wantKey, func(n int, due time.Time, key bool) error {
		payloads := z.frame(uint64(n), key)
		rec := &table.frames[n]
		rec.key.Store(key)
		rec.packets.Store(int32(len(payloads)))
		now := time.Now()
		stamp(payloads, uint64(n), now.UnixNano())
		rec.sentFirst.Store(now.UnixNano())
		ts := tsStart + tsOf(uint64(n), opt.plan.fps)
		if opt.paced {
			step := opt.plan.interval / time.Duration(len(payloads))
			for i := 0; i < len(payloads); {
				now := time.Now()
				for ; i < len(payloads) && !due.Add(time.Duration(i)*step).After(now); i++ {
					if err := p.write(&pkt, payloads[i], seq, ts, i == len(payloads)-1); err != nil {
						return err
					}
					seq++
				}
				if i < len(payloads) {
					time.Sleep(time.Until(due.Add(time.Duration(i) * step)))
				}
			}
		} else {
			for i, b := range payloads {
				if err := p.write(&pkt, b, seq, ts, i == len(payloads)-1); err != nil {
					return err
				}
				seq++
			}
		}
		rec.sentLast.Store(time.Now().UnixNano())
		return nil
	})
}

// frameLoop calls frame for each frame of table when it is due, until
// ctx ends or the table is full, and counts in st the keyframes and the
// frames that started more than a frame interval late (the sender could
// not keep up, which skews every figure). A frame is a keyframe at the
// start of each GOP and, when wantKey (nil: never) says so, out of turn,
// restarting the GOP there, as a hardware encoder answers a PLI.
func frameLoop(ctx context.Context, p plan, table *frameTable, st *sendStats, wantKey func() bool,
	frame func(n int, due time.Time, key bool) error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	gopPos := 0
	for n := range table.frames {
		due := start.Add(p.due(n))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		} else if -wait > p.interval {
			st.late++
		}
		key := gopPos == 0
		if wantKey != nil && wantKey() {
			key = true
		}
		if key {
			gopPos = 0
			st.keyframes++
		}
		if err := frame(n, due, key); err != nil {
			return err
		}
		gopPos = (gopPos + 1) % p.gopFrames
	}
	return nil
}

func (p *publisher) stats() *sendStats { return &p.sendStats }

func (p *publisher) write(pkt *rtp.Packet, payload []byte, seq uint16, ts uint32, marker bool) error {
	pkt.Header = rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: marker}
	pkt.Payload = payload
	err := p.track.WriteRTP(pkt)
	if errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("bench: publisher closed: %w", err)
	}
	if err != nil {
		p.writeErrs++
	}
	return nil
}

// Close hangs up and waits for the RTCP reader. Idempotent.
func (p *publisher) Close(ctx context.Context) error {
	err := hangUp(ctx, p.resource)
	p.resource = ""
	if cerr := p.pc.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	p.wg.Wait()
	return err
}
