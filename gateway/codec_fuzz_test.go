package gateway

import (
	"encoding/binary"
	"strings"
	"testing"

	pioncodecs "github.com/pion/rtp/codecs"
)

// FuzzIsKeyframe checks each codec's keyframe detector against a reference
// written from the payload formats' RFCs. Whatever it calls a keyframe
// holds, in full, what its rule looks for: an IDR or SPS NAL unit (H.264,
// RFC 6184), an IRAP picture or parameter set (H.265, RFC 7798), a
// sequence header OBU as the first element or the N bit (AV1 RTP
// payload), the start of a VP8 key frame (RFC 7741, checked with pion's
// depacketizer), the first packet of a VP9 picture without inter
// prediction (RFC 9628, pion reads the same bits). A well-formed payload
// that holds one is called a keyframe. Opus is always one, anything else
// never. The seeds are what pion's payloaders make of key and inter
// frames, and the cases of the unit tests.
func FuzzIsKeyframe(f *testing.F) {
	const mtu = 1200
	add := func(c Codec, payloads ...[]byte) {
		for i, p := range payloads {
			if i < 4 || i == len(payloads)-1 {
				f.Add(uint8(codecIndex(c)), p)
			}
		}
	}
	var h264 pioncodecs.H264Payloader
	add(H264, h264.Payload(mtu, annexB(nal(0x09, 2), filled([]byte{0x67, 0x42, 0xc0, 0x1f}, 12), filled([]byte{0x68, 0xce}, 4), filled([]byte{0x65, 0x88}, 3000)))...)
	add(H264, h264.Payload(mtu, annexB(filled([]byte{0x41, 0x9a}, 2000)))...)
	add(H264, stapA(nal(0x06, 5), nal(0x65, 30)), []byte{0x78, 0x00, 0x00, 0x67}, []byte{0x7c, 0x85, 0xb8})
	var h265 pioncodecs.H265Payloader
	add(H265, h265.Payload(mtu, annexB(filled([]byte{32 << 1, 0x01, 0x0c}, 24), filled([]byte{33 << 1, 0x01, 0x01}, 40),
		filled([]byte{34 << 1, 0x01, 0xc1}, 8), filled([]byte{19 << 1, 0x01, 0xaf}, 3000)))...)
	add(H265, h265.Payload(mtu, annexB(filled([]byte{1 << 1, 0x01, 0xd0}, 2000)))...)
	add(H265, h265AP(h265NAL(39, 10), h265NAL(32, 24)), []byte{48 << 1, 0x01, 0x00, 0x00, 0x40, 0x01})
	var av1 pioncodecs.AV1Payloader
	seq := filled([]byte{obuSequenceHeader | 0x02, 14, 0x00, 0x00, 0x00, 0x24, 0x4f, 0x7e, 0x7f}, 16)
	add(AV1, av1.Payload(mtu, append(append([]byte{obuTemporalDelimiter | 0x02, 0}, seq...), filled([]byte{obuFrame | 0x02, 0xb8, 0x17}, 3003)...))...)
	add(AV1, []byte{av1W(1) | av1AggN, obuFrame}, []byte{0x00, 0x80, 0x80})
	for _, pid := range []bool{false, true} {
		vp8 := pioncodecs.VP8Payloader{EnablePictureID: pid}
		add(VP8, vp8.Payload(mtu, filled([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, 3000))...)
		add(VP8, vp8.Payload(mtu, filled([]byte{0x51, 0x02, 0x00}, 2000))...)
	}
	add(VP8, []byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40, 0x50})
	add(VP9, []byte{0x8b, 0x80, 0x01, 0x18}, []byte{0x98, 0x80, 0x01}, []byte{0xc9, 0x80, 0x02}, []byte{0x85, 0x80, 0x01})
	add(Opus, []byte{0xfc, 0xff, 0xfe})

	f.Fuzz(func(t *testing.T, which uint8, p []byte) {
		c := Codec("video/MPV")
		if int(which) < len(codecs) {
			c = codecs[which]
		}
		got := IsKeyframe(c, p)
		var key, wellFormed bool
		switch c {
		case H264:
			key, wellFormed = refH264(p)
		case H265:
			key, wellFormed = refH265(p)
		case AV1:
			key, wellFormed = refAV1(p)
		case VP8:
			var v pioncodecs.VP8Packet
			payload, err := v.Unmarshal(p)
			key, wellFormed = err == nil && v.S == 1 && v.PID == 0 && len(payload) > 0 && payload[0]&0x01 == 0, true
		case VP9:
			var v pioncodecs.VP9Packet
			if _, err := v.Unmarshal(p); err == nil {
				key, wellFormed = !v.P && v.B, true
			} else {
				key, wellFormed = got, false // the descriptor is not checked, only its first byte
			}
		case Opus:
			key, wellFormed = true, true
		}
		if got && !key {
			t.Fatalf("IsKeyframe(%s, % x) = true, but the payload holds no whole keyframe start", c, p)
		}
		if !got && key && wellFormed {
			t.Fatalf("IsKeyframe(%s, % x) = false for a well-formed keyframe start", c, p)
		}
	})
}

func codecIndex(c Codec) int {
	for i, x := range codecs {
		if x == c {
			return i
		}
	}
	return len(codecs)
}

// refUnits splits the NAL units of an aggregation packet from off on, each
// behind a 16-bit size; ok is false at a unit that is empty or runs past
// the end, or shorter than hdr (its NAL header).
func refUnits(p []byte, off, hdr int) (units [][]byte, ok bool) {
	for off < len(p) {
		if off+2 > len(p) {
			return units, false
		}
		n := int(binary.BigEndian.Uint16(p[off:]))
		if n < hdr || off+2+n > len(p) {
			return units, false
		}
		units = append(units, p[off+2:off+2+n])
		off += 2 + n
	}
	return units, true
}

func refH264(p []byte) (key, wellFormed bool) {
	isKey := func(h byte) bool { return h&0x1f == 5 || h&0x1f == 7 }
	if len(p) == 0 {
		return false, false
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return isKey(p[0]), true
	case t == 24: // STAP-A
		units, ok := refUnits(p, 1, 1)
		for _, u := range units {
			if isKey(u[0]) {
				return true, ok
			}
		}
		return false, ok
	case t == 28: // FU-A: the start bit and the type in the FU header
		if len(p) < 2 {
			return false, false
		}
		return p[1]&0x80 != 0 && isKey(p[1]), true
	}
	return false, true
}

func refH265(p []byte) (key, wellFormed bool) {
	isKey := func(t byte) bool { return t >= 16 && t <= 21 || t >= 32 && t <= 34 }
	if len(p) < 2 {
		return false, false
	}
	switch t := (p[0] >> 1) & 0x3f; {
	case t < 48:
		return isKey(t), true
	case t == 48: // aggregation packet
		units, ok := refUnits(p, 2, 2)
		for _, u := range units {
			if isKey((u[0] >> 1) & 0x3f) {
				return true, ok
			}
		}
		return false, ok
	case t == 49: // fragmentation unit
		if len(p) < 3 {
			return false, false
		}
		return p[2]&0x80 != 0 && isKey(p[2]&0x3f), true
	}
	return false, true
}

func refAV1(p []byte) (key, wellFormed bool) {
	if len(p) < 2 {
		return false, false
	}
	agg := p[0]
	if agg&0x08 != 0 { // N: the start of a coded video sequence
		return true, true
	}
	if agg&0x80 != 0 { // Z: the first element continues an OBU
		return false, true
	}
	elem := p[1:]
	if agg&0x30 != 0x10 { // W != 1: the first element has a LEB128 length
		var n uint64
		k := 0
		for ; ; k++ {
			if k == 8 || 1+k >= len(p) {
				return false, false
			}
			n |= uint64(p[1+k]&0x7f) << (7 * k)
			if p[1+k]&0x80 == 0 {
				break
			}
		}
		start := 2 + k
		if n == 0 || n > uint64(len(p)-start) {
			return false, false
		}
		elem = p[start : start+int(n)]
	}
	return (elem[0]>>3)&0x0f == 1, true
}

// FuzzParseCodec checks ParseCodec: what it returns is one of the hub's
// codecs, parses to itself by its MIME type and its name, and is of the
// kind the input names, if it names one.
func FuzzParseCodec(f *testing.F) {
	for _, s := range []string{"video/H264", "h264", "AVC", "HEVC", "video/hevc", "av1", "vp8", " VP9 ", "audio/opus", "OPUS", "", "mpeg2", "audio/aac", "video/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCodec(s)
		if err != nil {
			return
		}
		if codecIndex(c) == len(codecs) {
			t.Fatalf("ParseCodec(%q) = %q, not a codec of the hub", s, c)
		}
		for _, again := range []string{string(c), c.Name(), strings.ToLower(string(c))} {
			if got, err := ParseCodec(again); err != nil || got != c {
				t.Fatalf("ParseCodec(%q) = %q, %v; want %q", again, got, err, c)
			}
		}
		if kind, _, ok := strings.Cut(strings.TrimSpace(s), "/"); ok && !strings.EqualFold(kind, c.Kind().String()) {
			t.Fatalf("ParseCodec(%q) = %q, a codec of another kind", s, c)
		}
	})
}
