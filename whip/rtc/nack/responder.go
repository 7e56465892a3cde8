package nack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// ResponderFactory builds nackResponders: pion's NACK responder
// without the copy. pion copies every sent packet into a pooled 1460-byte
// buffer (about 6 MB per viewer at 4096 packets, and a memcpy per packet);
// ours keeps a reference to the payload, which the hub shares read-only
// among all viewers and never changes, so history costs tens of bytes a
// packet.
//
// The contract: a payload handed to a sender on an API with this responder
// must not change afterwards (Forward's and the Pacer's payloads are the
// hub's, cut from chunks that are never reused). Senders that reuse
// payload buffers set rtc.APIOptions.PionNACK.
type ResponderFactory struct {
	size uint16 // power of two
	log  *slog.Logger
}

// NewResponderFactory keeps size packets per sender (a power of two).
func NewResponderFactory(size uint16, log *slog.Logger) *ResponderFactory {
	return &ResponderFactory{size: size, log: log}
}

func (f *ResponderFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	if f.size == 0 || f.size&(f.size-1) != 0 {
		return nil, fmt.Errorf("nack: history %d is not a power of two", f.size)
	}
	return &nackResponder{size: f.size, log: f.log, streams: map[uint32]*nackStream{}}, nil
}

// nackResponder keeps each local stream's recent packets and re-sends
// those a receiver NACKs, on the RTX stream when one is negotiated.
type nackResponder struct {
	interceptor.NoOp
	size uint16
	log  *slog.Logger

	mu      sync.Mutex
	streams map[uint32]*nackStream
}

// nackEntry is one sent packet: its header fields and shared references to
// its payload and header extensions (mid and rid for simulcast).
type nackEntry struct {
	payload []byte
	exts    []rtp.Extension
	ts      uint32
	profile uint16 // header extension profile, 0 without extensions
	seq     uint16
	marker  bool
	ok      bool
}

type nackStream struct {
	writer interceptor.RTPWriter
	ssrc   uint32
	pt     uint8
	rtx    uint32 // RTX SSRC, 0 without RTX
	rtxPT  uint8
	twccID uint8 // transport-cc extension ID, 0 if not negotiated

	mu      sync.Mutex
	ring    []nackEntry
	highest uint16
	started bool
	rtxSeq  uint16
	scratch []byte          // RTX payload: original sequence number + payload
	extBuf  []rtp.Extension // a re-send's extensions
}

func nackNegotiated(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// BindLocalStream records every packet of the stream's own SSRC.
func (n *nackResponder) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !nackNegotiated(info) {
		return writer
	}
	s := &nackStream{writer: writer, ssrc: info.SSRC, pt: info.PayloadType, ring: make([]nackEntry, n.size)}
	if info.SSRCRetransmission != 0 && info.PayloadTypeRetransmission != 0 {
		s.rtx, s.rtxPT = info.SSRCRetransmission, info.PayloadTypeRetransmission
		var b [2]byte
		_, _ = rand.Read(b[:])
		s.rtxSeq = binary.BigEndian.Uint16(b[:])
	}
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 256 {
			s.twccID = uint8(e.ID)
		}
	}
	n.mu.Lock()
	n.streams[info.SSRC] = s
	n.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == s.ssrc {
			s.add(h, payload)
		}
		return writer.Write(h, payload, a)
	})
}

func (s *nackStream) add(h *rtp.Header, payload []byte) {
	e := nackEntry{payload: payload, ts: h.Timestamp, seq: h.SequenceNumber, marker: h.Marker, ok: true}
	if h.Extension && (h.ExtensionProfile == rtp.ExtensionProfileOneByte || h.ExtensionProfile == rtp.ExtensionProfileTwoByte) {
		e.exts, e.profile = h.Extensions, h.ExtensionProfile
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	size := uint16(len(s.ring))
	seq := h.SequenceNumber
	if s.started {
		diff := seq - s.highest
		if diff == 0 || diff >= 1<<15 {
			// A duplicate or a late packet: the latest write of a sequence
			// number is what a NACK should get.
			if s.highest-seq < size {
				s.ring[seq%size] = e
			}
			return
		}
		// Forget the skipped sequence numbers, and drop their references,
		// so a NACK never finds a packet a lap older.
		for i, k := s.highest+1, 0; i != seq && k < int(size); i, k = i+1, k+1 {
			s.ring[i%size] = nackEntry{}
		}
	}
	s.started, s.highest = true, seq
	s.ring[seq%size] = e
}

// get returns the packet with sequence number seq, if still held.
func (s *nackStream) get(seq uint16) (nackEntry, bool) {
	size := uint16(len(s.ring))
	if !s.started || s.highest-seq >= size {
		return nackEntry{}, false
	}
	e := s.ring[seq%size]
	return e, e.ok && e.seq == seq
}

// BindRTCPReader answers NACKs as the RTCP passes by. It re-sends in the
// reader's goroutine (the sender's RTCP loop): pion starts a goroutine per
// NACK, which nothing waits for.
func (n *nackResponder) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, attr, err := reader.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if attr == nil {
			attr = make(interceptor.Attributes)
		}
		pkts, err := attr.GetRTCPPackets(b[:i])
		if err != nil {
			return 0, nil, err
		}
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				n.resend(nack)
			}
		}
		return i, attr, nil
	})
}

func (n *nackResponder) resend(nack *rtcp.TransportLayerNack) {
	n.mu.Lock()
	s := n.streams[nack.MediaSSRC]
	n.mu.Unlock()
	if s == nil {
		return
	}
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			if err := s.resend(seq); err != nil {
				n.log.Debug("nack: re-send failed", "ssrc", s.ssrc, "seq", seq, "err", err)
			}
			return true
		})
	}
}

// resend writes one packet again. The lock is held across the write so
// the RTX sequence numbers leave in order and the scratch buffers are ours.
func (s *nackStream) resend(seq uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(seq)
	if !ok {
		return nil // too old: the receiver will ask for a keyframe
	}
	h := rtp.Header{Version: 2, PayloadType: s.pt, SSRC: s.ssrc, SequenceNumber: e.seq, Timestamp: e.ts, Marker: e.marker}
	// The transport-wide sequence number stays behind: repeating it would
	// make the bandwidth estimator count one packet twice.
	if len(e.exts) > 0 {
		// A copy: the references are shared with whoever wrote the packet.
		s.extBuf = append(s.extBuf[:0], e.exts...)
		h.Extension, h.ExtensionProfile, h.Extensions = true, e.profile, s.extBuf
		if s.twccID != 0 {
			_ = h.DelExtension(s.twccID) // absent is fine
		}
		if len(h.Extensions) == 0 {
			h.Extension, h.ExtensionProfile, h.Extensions = false, 0, nil
		}
	}
	payload := e.payload
	if s.rtx != 0 {
		// RFC 4588: the original sequence number, then the payload.
		s.scratch = binary.BigEndian.AppendUint16(s.scratch[:0], e.seq)
		s.scratch = append(s.scratch, e.payload...)
		payload = s.scratch
		h.PayloadType, h.SSRC, h.SequenceNumber = s.rtxPT, s.rtx, s.rtxSeq
		s.rtxSeq++
	}
	_, err := s.writer.Write(&h, payload, interceptor.Attributes{})
	return err
}

// UnbindLocalStream forgets the stream, releasing its payload references.
func (n *nackResponder) UnbindLocalStream(info *interceptor.StreamInfo) {
	n.mu.Lock()
	delete(n.streams, info.SSRC)
	n.mu.Unlock()
}

// Close forgets all streams; idempotent.
func (n *nackResponder) Close() error {
	n.mu.Lock()
	n.streams = map[uint32]*nackStream{}
	n.mu.Unlock()
	return nil
}
