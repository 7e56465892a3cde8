package h264synth

import "math/bits"

// bitWriter appends bits MSB first to a byte slice that is reused across
// pictures.
type bitWriter struct {
	buf  []byte
	acc  uint64 // pending bits, right-aligned
	nacc uint   // number of pending bits in acc, always < 8 between calls
}

func (w *bitWriter) reset() {
	w.buf = w.buf[:0]
	w.acc, w.nacc = 0, 0
}

// u writes the n (≤ 32) low bits of v.
func (w *bitWriter) u(n uint, v uint32) {
	w.acc = w.acc<<n | uint64(v)&(1<<n-1)
	w.nacc += n
	for w.nacc >= 8 {
		w.nacc -= 8
		w.buf = append(w.buf, byte(w.acc>>w.nacc))
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.u(1, 1)
	} else {
		w.u(1, 0)
	}
}

// ue writes an unsigned Exp-Golomb code (spec 9.1).
func (w *bitWriter) ue(v uint32) {
	x := uint64(v) + 1
	n := uint(bits.Len64(x))
	// n-1 zeros then the n bits of x; split so that each call stays ≤ 32 bits.
	w.u(n-1, 0)
	w.u(n, uint32(x))
}

// se writes a signed Exp-Golomb code (spec 9.1.1).
func (w *bitWriter) se(v int32) {
	if v > 0 {
		w.ue(uint32(2*v - 1))
	} else {
		w.ue(uint32(-2 * v))
	}
}

// trailing writes rbsp_trailing_bits: a one, then zeros to the byte boundary.
func (w *bitWriter) trailing() {
	w.u(1, 1)
	if w.nacc > 0 {
		w.u(8-w.nacc, 0)
	}
}

// ueBits is the length in bits of ue(v).
func ueBits(v uint32) int {
	return 2*bits.Len64(uint64(v)+1) - 1
}

// appendNAL appends a NAL unit with the given header byte to dst, inserting
// emulation_prevention_three_byte where the RBSP would otherwise contain a
// start code prefix (spec 7.4.1).
func appendNAL(dst []byte, header byte, rbsp []byte) []byte {
	dst = append(dst, header)
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}
