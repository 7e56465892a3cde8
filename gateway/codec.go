package gateway

import (
	"fmt"
	"strings"
)

// Kind says whether a track carries audio or video.
type Kind uint8

const (
	KindVideo Kind = iota
	KindAudio
)

func (k Kind) String() string {
	if k == KindAudio {
		return "audio"
	}
	return "video"
}

// Codec is an RTP media type in the form WebRTC uses ("video/H264").
type Codec string

// The codecs the hub forwards. Their strings equal pion's MimeType* constants.
const (
	H264 Codec = "video/H264"
	H265 Codec = "video/H265"
	AV1  Codec = "video/AV1"
	VP8  Codec = "video/VP8"
	VP9  Codec = "video/VP9"
	Opus Codec = "audio/opus"
)

var codecs = []Codec{H264, H265, AV1, VP8, VP9, Opus}

// ParseCodec accepts a MIME type or a bare codec name in any letter case
// ("video/h264", "H265", "opus", "hevc"). A MIME type's kind must be the
// codec's: "audio/h264" is no codec.
func ParseCodec(s string) (Codec, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	kind, hasKind := "", false
	if i := strings.IndexByte(name, '/'); i >= 0 {
		kind, name, hasKind = name[:i], name[i+1:], true
	}
	switch name {
	case "hevc":
		name = "h265"
	case "avc":
		name = "h264"
	}
	for _, c := range codecs {
		if strings.EqualFold(c.Name(), name) && (!hasKind || kind == c.Kind().String()) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedCodec, s)
}

// Name is the codec name without the kind ("H264", "opus").
func (c Codec) Name() string {
	s := string(c)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Kind reports whether the codec is audio or video.
func (c Codec) Kind() Kind {
	if strings.HasPrefix(string(c), "audio/") {
		return KindAudio
	}
	return KindVideo
}

// ClockRate is the RTP clock rate WebRTC uses for the codec.
func (c Codec) ClockRate() uint32 {
	if c == Opus {
		return 48000
	}
	return 90000
}

// IsKeyframe reports whether an RTP payload of codec c carries the start of
// something a decoder can begin with: an IDR or parameter sets (H.264), an
// IRAP picture or parameter sets (H.265), a new coded video sequence or a
// sequence header (AV1), or the first partition of a key frame (VP8, VP9).
// Every audio packet counts, since Opus frames decode on their own.
func IsKeyframe(c Codec, payload []byte) bool {
	switch c {
	case H264:
		return h264Key(payload)
	case H265:
		return h265Key(payload)
	case AV1:
		return av1Key(payload)
	case VP8:
		return vp8Key(payload)
	case VP9:
		return vp9Key(payload)
	case Opus:
		return true
	}
	return false
}

func h264KeyNAL(t byte) bool { return t == 5 || t == 7 }

func h264Key(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return h264KeyNAL(t)
	case t == 24: // STAP-A: 2-byte sizes
		for off := 1; off+2 < len(p); {
			n := int(p[off])<<8 | int(p[off+1])
			if n == 0 || off+2+n > len(p) { // empty or cut short: malformed
				return false
			}
			if h264KeyNAL(p[off+2] & 0x1f) {
				return true
			}
			off += 2 + n
		}
	case t == 28: // FU-A: only the first fragment tells
		return len(p) >= 2 && p[1]&0x80 != 0 && h264KeyNAL(p[1]&0x1f)
	}
	return false
}

// h265KeyNAL: IRAP pictures (BLA, IDR, CRA: 16..21) and VPS/SPS/PPS (32..34).
func h265KeyNAL(t byte) bool { return (t >= 16 && t <= 21) || (t >= 32 && t <= 34) }

func h265Key(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch t := (p[0] >> 1) & 0x3f; {
	case t < 48:
		return h265KeyNAL(t)
	case t == 48: // aggregation packet: 2-byte sizes, no DONL in WebRTC (SRST)
		for off := 2; off+2 < len(p); {
			n := int(p[off])<<8 | int(p[off+1])
			if n < 2 || off+2+n > len(p) { // no whole NAL header, or cut short: malformed
				return false
			}
			if h265KeyNAL((p[off+2] >> 1) & 0x3f) {
				return true
			}
			off += 2 + n
		}
	case t == 49: // fragmentation unit
		return len(p) >= 3 && p[2]&0x80 != 0 && h265KeyNAL(p[2]&0x3f)
	}
	return false
}

func av1Key(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	agg := p[0]
	if agg&0x08 != 0 { // N: first packet of a coded video sequence
		return true
	}
	if agg&0x80 != 0 { // Z: first element continues an OBU from the last packet
		return false
	}
	off := 1
	// W (bits 5-4) counts the OBU elements; every element but the last
	// has a LEB128 length, and W=0 means all have one. So the first has a
	// length unless W=1, and an element that is empty or runs past the
	// packet is malformed.
	if agg&0x30 != 0x10 {
		var n uint64
		for i := 0; ; i++ {
			if i == 8 || off >= len(p) {
				return false
			}
			b := p[off]
			off++
			n |= uint64(b&0x7f) << (7 * i)
			if b&0x80 == 0 {
				break
			}
		}
		if n == 0 || n > uint64(len(p)-off) {
			return false
		}
	}
	if off >= len(p) {
		return false
	}
	return (p[off]>>3)&0x0f == 1 // OBU_SEQUENCE_HEADER
}

func vp8Key(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	// S=1 and partition 0 start a frame; the reserved bit 0x08 is ignored
	// (RFC 7741 §4.2: receivers must).
	if b0&0x10 == 0 || b0&0x07 != 0 {
		return false
	}
	off := 1
	if b0&0x80 != 0 { // X: extension byte
		if len(p) < 2 {
			return false
		}
		x := p[1]
		off = 2
		if x&0x80 != 0 { // I: picture ID, 7 or 15 bits
			if off >= len(p) {
				return false
			}
			if p[off]&0x80 != 0 {
				off++
			}
			off++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			off++
		}
		if x&0x30 != 0 { // T or K
			off++
		}
	}
	return off < len(p) && p[off]&0x01 == 0 // P bit of the frame tag: 0 = key frame
}

func vp9Key(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	// P=0: not inter-picture predicted; B=1: start of a frame.
	return b0&0x40 == 0 && b0&0x08 != 0
}
