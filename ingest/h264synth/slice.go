package h264synth

// Slice types; the values above 4 also say that every slice of the picture
// has this type (spec Table 7-6).
const (
	sliceTypeP = 5
	sliceTypeI = 7
)

// writeSlice writes slice_layer_without_partitioning_rbsp() for the whole
// picture cur. For an IDR every macroblock is intra coded; otherwise the
// macroblocks equal to ref are P_Skip and the others are intra coded.
//
// P_Skip copies the co-located macroblock only because every motion vector
// in the stream is zero: intra neighbours have refIdx −1 and skipped ones a
// zero vector, so the predicted vector is always zero (spec 8.4.1.1).
func writeSlice(w *bitWriter, cur, ref *picture, idr bool, frameNum, idrPicID uint32) {
	w.ue(0) // first_mb_in_slice
	if idr {
		w.ue(sliceTypeI)
	} else {
		w.ue(sliceTypeP)
	}
	w.ue(0) // pic_parameter_set_id
	w.u(log2MaxFrameNum, frameNum)
	if idr {
		w.ue(idrPicID)
	} else {
		w.flag(false) // num_ref_idx_active_override_flag
		w.flag(false) // ref_pic_list_modification_flag_l0
	}
	// dec_ref_pic_marking(): every picture is a reference, the sliding
	// window keeps the last one.
	if idr {
		w.flag(false) // no_output_of_prior_pics_flag
		w.flag(false) // long_term_reference_flag
	} else {
		w.flag(false) // adaptive_ref_pic_marking_mode_flag
	}
	w.se(0) // slice_qp_delta
	// Deblocking off: it would blur the macroblock edges, and the encoder
	// would have to model it to predict from the reconstruction.
	w.ue(1) // disable_deblocking_filter_idc

	mbTypeOffset := 0
	if !idr {
		mbTypeOffset = 5
	}
	skipRun := uint32(0)
	for y := range cur.h {
		for x := range cur.w {
			i := y*cur.w + x
			if !idr && cur.mb[i] == ref.mb[i] {
				skipRun++
				continue
			}
			if !idr {
				w.ue(skipRun) // mb_skip_run
				skipRun = 0
			}
			// Neighbours come from cur: every macroblock before this one is
			// already reconstructed exactly as rendered.
			var n neighbours
			if x > 0 {
				n.left, n.hasLeft = cur.mb[i-1], true
			}
			if y > 0 {
				n.top, n.hasTop = cur.mb[i-cur.w], true
			}
			writeIntra16x16(w, chooseIntra16x16(cur.mb[i], n, mbTypeOffset), mbTypeOffset)
		}
	}
	if skipRun > 0 {
		w.ue(skipRun)
	}
	w.trailing()
}
