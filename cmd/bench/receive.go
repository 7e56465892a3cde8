package bench

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"whipgate/whip/rtc"
	"whipgate/whip/rtc/nack"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The "cheap viewers" take RTP header parsing only; a pion
// receiver also costs its buffers, two goroutine hops, its interceptors
// and a copy per packet — about 3 µs a packet, more than the server spends
// sending it, on the cores the server is measured on. So by default a
// viewer reads its media beneath pion (-receive direct): its socket reader
// decrypts each SRTP packet with the session's keys (rtc.ClientSRTP),
// unwraps RTX, asks for losses itself (nack.LossLog) as Chrome does
// (libwebrtc's NackRequester: looks every 20 ms, asks again once a round
// trip has passed since the last request, the round trip ICE measures)
// and tallies the packet on the spot. pion keeps ICE, DTLS and RTCP.
// -receive pion is the bench before this (pion's generator asks again
// every 100 ms).

// rtxPayloadType is the RTX payload type the bench registers (apt=102).
const rtxPayloadType = 103

// directReceive is one viewer's media path beneath pion. The viewer's
// socket reader calls take; the NACK loop and Close run on their own.
type directReceive struct {
	srtp   *rtc.ClientSRTP
	wire   *wireClock
	losses *nack.LossLog

	mu     sync.Mutex // the tally, media SSRC and closed
	tally  *tally
	media  uint32 // the media stream's SSRC, once seen (0: not yet)
	closed bool

	taken, rtx, undecryptable atomic.Uint64
}

func newDirectReceive(wire *wireClock) *directReceive {
	// 8192 packets (0.8 s at 100 Mbps), as the pion viewers' generator had.
	return &directReceive{srtp: rtc.NewClientSRTP(), wire: wire, losses: nack.NewLossLog(8192)}
}

// datagram sees a datagram the viewer's socket received at kernel time t
// (unix ns); true when it was media and is done with: pion must not get it.
// Before the handshake's secrets are known pion gets everything.
func (r *directReceive) datagram(b []byte, t int64) bool {
	if !rtc.IsRTP(b) {
		r.srtp.Inspect(b)
		return false
	}
	p, err := r.srtp.DecryptRTP(b)
	if errors.Is(err, rtc.ErrSRTPKeysUnknown) {
		return false
	}
	if err != nil {
		r.undecryptable.Add(1) // pion would drop it too
		return true
	}
	switch p[1] & 0x7f {
	case h264PayloadType:
		r.losses.Add(binary.BigEndian.Uint16(p[2:4]))
	case rtxPayloadType:
		// RFC 4588: the original sequence number leads the payload. The
		// header moves two bytes up over it and takes the original's
		// number, payload type and SSRC.
		var h rtp.Header
		hl, err := h.Unmarshal(p)
		if err != nil {
			r.undecryptable.Add(1)
			return true
		}
		if len(p) < hl+2 || r.mediaSSRC() == 0 {
			return true
		}
		osn := binary.BigEndian.Uint16(p[hl:])
		copy(p[2:2+hl], p[:hl])
		p = p[2:]
		p[1] = p[1]&0x80 | h264PayloadType
		binary.BigEndian.PutUint16(p[2:4], osn)
		binary.BigEndian.PutUint32(p[8:12], r.mediaSSRC())
		r.losses.Recovered(osn)
		r.rtx.Add(1)
	default:
		return true
	}
	r.wire.record(p, t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true
	}
	if p[1]&0x7f == h264PayloadType && r.media == 0 {
		r.media = binary.BigEndian.Uint32(p[8:12])
	}
	r.tally.packet(p)
	r.taken.Add(1)
	return true
}

func (r *directReceive) mediaSSRC() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.media
}

// packet tallies a packet that came through pion (before the keys were
// known), under the same lock as the direct path's.
func (r *directReceive) packet(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.tally.packet(b)
	}
}

// close stops the tallying: the tally may be read once it returns.
func (r *directReceive) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// rttLooks is how many NACK looks pass between two looks at the round
// trip: a second's (ICE measures it every 2 s).
const rttLooks = int(time.Second / nack.Interval)

// askLoop sends NACKs for the media stream's losses through pc until done
// is closed.
func (r *directReceive) askLoop(pc *webrtc.PeerConnection, done <-chan struct{}, log *slog.Logger) {
	sender := rand.Uint32()
	t := time.NewTicker(nack.Interval)
	defer t.Stop()
	var seqs []uint16
	for looks := 0; ; looks++ {
		if looks%rttLooks == 0 {
			if rtt, ok := rtc.PeerRTT(pc); ok {
				r.losses.SetRTT(rtt)
			}
		}
		select {
		case <-done:
			return
		case now := <-t.C:
			media := r.mediaSSRC()
			if media == 0 {
				continue
			}
			if seqs = r.losses.Due(now, seqs[:0]); len(seqs) == 0 {
				continue
			}
			nack := &rtcp.TransportLayerNack{SenderSSRC: sender, MediaSSRC: media, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
			if err := pc.WriteRTCP([]rtcp.Packet{nack}); err != nil {
				log.Debug("bench: sending NACK failed", "err", err)
			}
		}
	}
}
