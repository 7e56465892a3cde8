// Package h264synth encodes a synthetic, moving test pattern as H.264 in
// pure Go. It is the picture behind whipgate's built-in test stream: colour
// bars, a block that moves one macroblock per frame, a large decimal frame
// counter, a binary frame counter and an optional label.
//
// The bitstream is Constrained Baseline (profile-level-id 42e0xx), CAVLC, one
// slice per picture, pic_order_cnt_type 2, one reference frame and no
// B-frames, so every browser decoder accepts it. It is not a general encoder:
// every macroblock of the picture is a single flat colour, so an IDR codes each
// macroblock as Intra16x16 with at most one DC coefficient per plane, and a P
// picture skips unchanged macroblocks and intra-codes the changed ones the same
// way. The deblocking filter is disabled, which keeps the decoder's
// reconstruction equal to the rendered pattern, bit for bit.
package h264synth
