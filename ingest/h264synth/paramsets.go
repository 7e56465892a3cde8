package h264synth

// NAL unit headers: forbidden_zero_bit, nal_ref_idc, nal_unit_type.
const (
	nalSPS = 3<<5 | 7
	nalPPS = 3<<5 | 8
	nalIDR = 3<<5 | 5
	nalP   = 2<<5 | 1
)

const (
	profileBaseline = 66
	// constraintFlags sets constraint_set0, 1 and 2: the stream obeys the
	// Baseline, Main and Extended constraints, which makes it Constrained
	// Baseline and gives the profile-level-id 42e0xx that browsers offer.
	constraintFlags   = 0xe0
	log2MaxFrameNum   = 4 // frame_num counts modulo 16
	maxFrameNum       = 1 << log2MaxFrameNum
	pocTypeFrameOrder = 2 // output order is decoding order
)

// writeSPS writes seq_parameter_set_rbsp() (spec 7.3.2.1.1, E.1.1).
func writeSPS(w *bitWriter, width, height, fps, levelIDC int) {
	mbW, mbH := (width+15)/16, (height+15)/16
	w.u(8, profileBaseline)
	w.u(8, constraintFlags)
	w.u(8, uint32(levelIDC))
	w.ue(0) // seq_parameter_set_id
	w.ue(log2MaxFrameNum - 4)
	w.ue(pocTypeFrameOrder)
	w.ue(1)       // max_num_ref_frames
	w.flag(false) // gaps_in_frame_num_value_allowed_flag
	w.ue(uint32(mbW - 1))
	w.ue(uint32(mbH - 1))
	w.flag(true) // frame_mbs_only_flag
	w.flag(true) // direct_8x8_inference_flag
	// Cropping is in units of two samples for 4:2:0 frames (Table 6-1, 7-19).
	cropRight, cropBottom := (16*mbW-width)/2, (16*mbH-height)/2
	w.flag(cropRight != 0 || cropBottom != 0)
	if cropRight != 0 || cropBottom != 0 {
		w.ue(0) // frame_crop_left_offset
		w.ue(uint32(cropRight))
		w.ue(0) // frame_crop_top_offset
		w.ue(uint32(cropBottom))
	}

	w.flag(true)  // vui_parameters_present_flag
	w.flag(false) // aspect_ratio_info_present_flag
	w.flag(false) // overscan_info_present_flag
	w.flag(false) // video_signal_type_present_flag
	w.flag(false) // chroma_loc_info_present_flag
	w.flag(true)  // timing_info_present_flag
	w.u(32, 1)    // num_units_in_tick
	w.u(32, uint32(2*fps))
	w.flag(true)  // fixed_frame_rate_flag
	w.flag(false) // nal_hrd_parameters_present_flag
	w.flag(false) // vcl_hrd_parameters_present_flag
	w.flag(false) // pic_struct_present_flag
	// The bitstream restriction lets a decoder output each picture as soon as
	// it is decoded instead of guessing a reorder depth.
	w.flag(true) // bitstream_restriction_flag
	w.flag(true) // motion_vectors_over_pic_boundaries_flag
	w.ue(0)      // max_bytes_per_pic_denom
	w.ue(0)      // max_bits_per_mb_denom
	w.ue(15)     // log2_max_mv_length_horizontal
	w.ue(15)     // log2_max_mv_length_vertical
	w.ue(0)      // max_num_reorder_frames
	w.ue(1)      // max_dec_frame_buffering
	w.trailing()
}

// writePPS writes pic_parameter_set_rbsp() (spec 7.3.2.2).
func writePPS(w *bitWriter) {
	w.ue(0)       // pic_parameter_set_id
	w.ue(0)       // seq_parameter_set_id
	w.flag(false) // entropy_coding_mode_flag: CAVLC
	w.flag(false) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)       // num_slice_groups_minus1
	w.ue(0)       // num_ref_idx_l0_default_active_minus1
	w.ue(0)       // num_ref_idx_l1_default_active_minus1
	w.flag(false) // weighted_pred_flag
	w.u(2, 0)     // weighted_bipred_idc
	w.se(sliceQP - 26)
	w.se(0) // pic_init_qs_minus26
	w.se(chromaQPOffset)
	w.flag(true)  // deblocking_filter_control_present_flag
	w.flag(false) // constrained_intra_pred_flag
	w.flag(false) // redundant_pic_cnt_present_flag
	w.trailing()
}
