package rtc

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// A publisher's RTX (RFC 4588) read beneath pion.
//
// pion reads a track's repair stream on a goroutine of its own, unwraps
// each packet and hands it to the track reader through a channel of 50,
// dropping what does not fit. A keyframe of 1,390 packets that lost 5 %
// on the way is ~70 repairs arriving at once, while the track reader is
// busy with the keyframe itself: the bench measured most packets lost for
// good (three requests unanswered) to be repairs that reached the socket,
// decrypted, and were dropped there.
//
// So when a media SSRC and its RTX SSRC (a=ssrc-group:FID) are both read
// our way, the media stream's track reader reads the RTX stream itself:
// its reader in pion's chain (repairReader, outermost) takes the next
// repair whenever one is queued, before the next media packet, through the
// RTX stream's own interceptor chain, and unwraps it in the caller's
// buffer. No goroutine, no channel, no limit below the queue's own (the
// read gate bounds what is in flight). pion's repair goroutine gets a
// reader that returns nothing until the stream ends (parkedReader).
//
// What each interceptor sees stays as on pion's path, and as libwebrtc
// has it:
//   - RTCP receiver reports count a repair on the RTX SSRC, not on the
//     media SSRC. libwebrtc does the same (RtpVideoStreamReceiver2 skips
//     the receive statistics of a recovered packet; RtxReceiveStream
//     counts it on the RTX SSRC). Counting it on the media SSRC instead
//     (pushing unwrapped repairs into the media stream's queue would) makes
//     the media SSRC's fraction lost the loss left after repair, which
//     hides the path's loss from the publisher's loss-based rate control
//     and its stats, and every retransmission, a round trip late with an
//     old timestamp, would add to the interarrival jitter. The cost of
//     our way: the media SSRC's reports show loss that repair made good,
//     which is what a browser publisher expects to read there.
//   - TWCC feedback covers the repairs (their transport-wide sequence
//     numbers), as the publisher's congestion control needs.
//   - The NACK generator learns of a repair from the track reader, by the
//     RTX attributes the unwrapped packet carries (Ingest.ReadTrack), which
//     also counts it (Repair.Recovered).
//   - SRTP replay protection runs per SSRC as before: the socket reader
//     decrypts a repair with its RTX SSRC's state.

// repairSSRC is an RTX SSRC an offer declares: the media SSRC it repairs
// and the media payload type of each RTX payload type of its section.
type repairSSRC struct {
	media uint32
	apt   map[uint8]uint8
}

// repairStream is an RTX stream its media's repairReader reads: the top of
// its interceptor chain, which ends in q.
type repairStream struct {
	chain interceptor.RTPReader
	q     *ingestQueue
	apt   map[uint8]uint8
}

// repairReader is the outermost reader of a media stream read our way
// whose RTX stream is read our way too. One goroutine reads it: the
// track's reader.
type repairReader struct {
	ssrc  uint32
	media interceptor.RTPReader // the media stream's chain, ending in q
	q     *ingestQueue
	rtx   atomic.Pointer[repairStream] // nil until the RTX stream binds, and once it ends

	pt     uint8 // the payload type of the last media packet read
	seenPT bool
}

// Read returns the next repair, unwrapped, if one is queued, else the next
// media packet, waiting for either.
func (r *repairReader) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	for {
		if x := r.rtx.Load(); x != nil && x.q.pending() {
			n, attrs, err := r.repair(x, b)
			switch {
			case err == nil && n > 0:
				return n, attrs, nil
			case errors.Is(err, io.EOF):
				r.rtx.CompareAndSwap(x, nil) // the RTX stream ended: media alone from now
			case errors.Is(err, io.ErrShortBuffer):
				return 0, nil, err // as the media stream's own read would
			}
			continue // a probe, or a packet an interceptor refused
		}
		if r.q.pending() {
			n, a, err := r.media.Read(b, a)
			if err == nil && n >= 2 {
				r.pt, r.seenPT = b[1]&0x7f, true
			}
			return n, a, err
		}
		<-r.q.wake // a push to either queue, or a close
	}
}

// repair reads the next packet of x through its chain and unwraps it in
// b: its length, 0 for a packet to skip (padding only, or a payload type
// with no media payload type known).
func (r *repairReader) repair(x *repairStream, b []byte) (int, interceptor.Attributes, error) {
	n, _, err := x.chain.Read(b, nil)
	if err != nil || n < 12 {
		return 0, nil, err
	}
	rtxPT, rtxSeq := b[1]&0x7f, binary.BigEndian.Uint16(b[2:4])
	rtxSSRC := binary.BigEndian.Uint32(b[8:12])
	pt, ok := x.apt[rtxPT]
	if !ok {
		// No apt for it in the offer: the track's payload type, as pion
		// takes it.
		if pt, ok = r.pt, r.seenPT; !ok {
			return 0, nil, nil
		}
	}
	m, ok := unwrapRTX(b[:n], r.ssrc, pt)
	if !ok {
		return 0, nil, nil
	}
	// A map of its own: the chain's holds the RTX header, parsed.
	attrs := interceptor.Attributes{
		webrtc.AttributeRtxPayloadType:    rtxPT,
		webrtc.AttributeRtxSequenceNumber: rtxSeq,
		webrtc.AttributeRtxSsrc:           rtxSSRC,
	}
	return m, attrs, nil
}

// unwrapRTX turns the RTX packet p (RFC 4588, 4) back into the packet it
// repairs, in place: the original sequence number, the payload's first
// two bytes, becomes the sequence number, ssrc and pt the media stream's,
// and the rest of the payload (padding included) moves up two bytes. It
// returns the packet's length; false for a packet without an original
// sequence number (padding only: a bandwidth probe) or a malformed one.
func unwrapRTX(p []byte, ssrc uint32, pt uint8) (int, bool) {
	if len(p) < 12 {
		return 0, false
	}
	h := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 {
		if len(p) < h+4 {
			return 0, false
		}
		h += 4 + 4*int(binary.BigEndian.Uint16(p[h+2:h+4]))
	}
	end := len(p)
	if p[0]&0x20 != 0 {
		end -= int(p[len(p)-1])
	}
	if end-h < 2 {
		return 0, false
	}
	p[1] = p[1]&0x80 | pt&0x7f
	p[2], p[3] = p[h], p[h+1]
	binary.BigEndian.PutUint32(p[8:12], ssrc)
	copy(p[h:], p[h+2:])
	return len(p) - 2, true
}

// parkedReader is what pion's repair-stream goroutine reads for an RTX
// stream that a repairReader reads: nothing, until the stream ends.
type parkedReader struct{ q *ingestQueue }

func (p parkedReader) Read([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
	<-p.q.done
	return 0, nil, io.EOF
}

// bindRepair is the outermost reader of stream ssrc: a repairReader for a
// media stream read our way that has an RTX stream, parkedReader for that
// RTX stream once it binds (after its media stream, as pion binds them)
// if it is read our way too, r itself otherwise.
func (d *directIngest) bindRepair(ssrc uint32, r interceptor.RTPReader) interceptor.RTPReader {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[ssrc]
	if q == nil {
		return r // pion's way
	}
	if rs, ok := d.repairOf[ssrc]; ok {
		m := d.repairs[rs.media]
		if m == nil {
			return r // its media is pion's: pion's repair goroutine reads our queue
		}
		m.rtx.Store(&repairStream{chain: r, q: q, apt: rs.apt})
		q.link(m.q)
		return parkedReader{q}
	}
	for _, rs := range d.repairOf {
		if rs.media == ssrc {
			m := &repairReader{ssrc: ssrc, media: r, q: q}
			d.repairs[ssrc] = m
			return m
		}
	}
	return r
}

func (d *directIngest) unbindRepair(ssrc uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.repairs, ssrc)
}

// repairInterceptor puts a directIngest's repairReaders outermost in an
// API's interceptor chain, above reports and TWCC (see NewAPI). It is its
// own factory: it keeps nothing per PeerConnection.
type repairInterceptor struct {
	interceptor.NoOp
	d *directIngest
}

func (i *repairInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return i, nil }

func (i *repairInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return i.d.bindRepair(info.SSRC, r)
}

func (i *repairInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) {
	i.d.unbindRepair(info.SSRC)
}
