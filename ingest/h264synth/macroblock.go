package h264synth

// Prediction modes (spec Table 7-11 and 7-16).
const (
	lumaVertical   = 0
	lumaHorizontal = 1
	lumaDC         = 2

	chromaDC         = 0
	chromaHorizontal = 1
	chromaVertical   = 2
)

// The picture is coded at QP 28 with chroma_qp_index_offset −6 (chroma QP
// 22): at exactly these QPs one step of the single luma DC level of an
// Intra16x16 macroblock, and of the single chroma DC level, adds exactly 1 to
// every sample after the decoder's inverse transforms (spec 8.5.10, 8.5.11,
// 8.5.12: (((L·16·16) + 2) >> 2 + 32) >> 6 = L for luma and
// ((L·16·16 << 3) >> 5 + 32) >> 6 = L for chroma). So any flat colour is
// reached exactly from any flat prediction, and the reconstruction never
// drifts from the rendered pattern.
const (
	sliceQP            = 28
	chromaQPOffset     = -6
	maxResidualSamples = 255
)

// mbCoding is how one intra macroblock is coded.
type mbCoding struct {
	lumaMode, chromaMode int
	dy, dcb, dcr         int // DC levels, equal to the sample differences
	bits                 int
}

// neighbours holds the colours left of and above the macroblock being coded;
// hasLeft and hasTop are false at the picture edge.
type neighbours struct {
	left, top       color
	hasLeft, hasTop bool
}

// chooseIntra16x16 picks the prediction modes that code c in the fewest
// bits. Only modes whose prediction is flat are considered: with flat
// neighbours that is every luma mode but plane, and chroma DC only when it
// does not mix two different neighbour colours across its 4×4 blocks.
func chooseIntra16x16(c color, n neighbours, mbTypeOffset int) mbCoding {
	best := mbCoding{bits: 1 << 30}
	for lm := lumaVertical; lm <= lumaDC; lm++ {
		py, ok := lumaPred(lm, n)
		if !ok {
			continue
		}
		dy := int(c.y) - py
		lumaBits := dcLevelBits(dy, false)
		for cm := chromaDC; cm <= chromaVertical; cm++ {
			pcb, pcr, ok := chromaPred(cm, n)
			if !ok {
				continue
			}
			dcb, dcr := int(c.cb)-pcb, int(c.cr)-pcr
			bits := lumaBits + ueBits(uint32(cm)) + 1 // + mb_qp_delta se(0)
			cbp := 0
			if dcb != 0 || dcr != 0 {
				cbp = 1
				bits += dcLevelBits(dcb, true) + dcLevelBits(dcr, true)
			}
			bits += ueBits(uint32(mbTypeOffset + 1 + lm + 4*cbp))
			if bits < best.bits {
				best = mbCoding{lm, cm, dy, dcb, dcr, bits}
			}
		}
	}
	return best
}

func lumaPred(mode int, n neighbours) (int, bool) {
	switch mode {
	case lumaVertical:
		return int(n.top.y), n.hasTop
	case lumaHorizontal:
		return int(n.left.y), n.hasLeft
	}
	switch {
	case n.hasTop && n.hasLeft:
		return (int(n.top.y) + int(n.left.y) + 1) >> 1, true
	case n.hasTop:
		return int(n.top.y), true
	case n.hasLeft:
		return int(n.left.y), true
	}
	return 128, true
}

func chromaPred(mode int, n neighbours) (cb, cr int, ok bool) {
	switch mode {
	case chromaVertical:
		return int(n.top.cb), int(n.top.cr), n.hasTop
	case chromaHorizontal:
		return int(n.left.cb), int(n.left.cr), n.hasLeft
	}
	switch {
	case n.hasTop && n.hasLeft:
		// The 4×4 blocks at (4,0) and (0,4) predict from the top and left only
		// (spec 8.3.4.1–3), so DC is flat only if both agree.
		if n.top.cb != n.left.cb || n.top.cr != n.left.cr {
			return 0, 0, false
		}
		return int(n.top.cb), int(n.top.cr), true
	case n.hasTop:
		return int(n.top.cb), int(n.top.cr), true
	case n.hasLeft:
		return int(n.left.cb), int(n.left.cr), true
	}
	return 128, 128, true
}

// writeIntra16x16 writes macroblock_layer() for an Intra16x16 macroblock whose
// residual is at most one DC level per plane. mbTypeOffset is 0 in I slices
// and 5 in P slices (spec Table 7-13).
func writeIntra16x16(w *bitWriter, m mbCoding, mbTypeOffset int) {
	cbp := 0
	if m.dcb != 0 || m.dcr != 0 {
		cbp = 1
	}
	w.ue(uint32(mbTypeOffset + 1 + m.lumaMode + 4*cbp)) // I_16x16_<mode>_<cbp>_0
	w.ue(uint32(m.chromaMode))                          // intra_chroma_pred_mode
	w.se(0)                                             // mb_qp_delta
	writeDCLevel(w, m.dy, false)                        // Intra16x16DCLevel; no AC
	if cbp != 0 {
		writeDCLevel(w, m.dcb, true) // Cb DC
		writeDCLevel(w, m.dcr, true) // Cr DC
	}
}

// writeDCLevel writes residual_block_cavlc() for a DC block whose only
// non-zero coefficient, if any, is the first in scan order. Luma DC blocks
// here always have nC 0: every neighbouring 4×4 block is in a skipped
// macroblock or in an Intra16x16 macroblock without AC coefficients (spec
// 9.2.1). Chroma DC blocks have nC −1.
func writeDCLevel(w *bitWriter, level int, chroma bool) {
	switch {
	case level == 0:
		if chroma {
			w.u(2, 0b01) // coeff_token TrailingOnes 0, TotalCoeff 0 (Table 9-5, nC −1)
		} else {
			w.u(1, 0b1) // (Table 9-5, 0 ≤ nC < 2)
		}
		return
	case level == 1 || level == -1:
		if chroma {
			w.u(1, 0b1) // TrailingOnes 1, TotalCoeff 1
		} else {
			w.u(2, 0b01)
		}
		w.flag(level < 0) // trailing_ones_sign_flag
	default:
		if chroma {
			w.u(6, 0b000111) // TrailingOnes 0, TotalCoeff 1
		} else {
			w.u(6, 0b000101)
		}
		prefix, suffixLen, suffix := levelCode(level)
		w.u(uint(prefix), 0)
		w.u(1, 1)
		w.u(uint(suffixLen), uint32(suffix))
	}
	w.u(1, 0b1) // total_zeros 0 (Tables 9-7 and 9-9a, tzVlcIndex 1); no run_before
}

// levelCode returns level_prefix and level_suffix for the first level of a
// block with TrailingOnes 0 and suffixLength 0 (spec 9.2.2.1), |level| ≥ 2.
func levelCode(level int) (prefix, suffixLen, suffix int) {
	code := 2*level - 2
	if level < 0 {
		code = -2*level - 1
	}
	code -= 2 // the decoder adds 2 to the first level when TrailingOnes < 3
	switch {
	case code < 14:
		return code, 0, 0
	case code < 30:
		return 14, 4, code - 14
	}
	return 15, 12, code - 30
}

// dcLevelBits is the size in bits of what writeDCLevel writes.
func dcLevelBits(level int, chroma bool) int {
	switch {
	case level == 0:
		if chroma {
			return 2
		}
		return 1
	case level == 1 || level == -1:
		if chroma {
			return 1 + 1 + 1
		}
		return 2 + 1 + 1
	}
	prefix, suffixLen, _ := levelCode(level)
	return 6 + prefix + 1 + suffixLen + 1
}
