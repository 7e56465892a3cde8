// Package ingest holds whipgate's local sources. Each turns media from this
// machine into RTP and writes it into a gateway stream:
//
//   - TestSource: the built-in moving H.264 test pattern in two layers,
//     "main" and "preview", paced in real time.
//   - PipeReader: an elementary stream read from a pipe or a command's
//     stdout (H.264 or H.265 Annex-B, IVF with VP8, VP9 or AV1, or an AV1
//     low-overhead OBU stream). This is the path for the 8K main stream.
//   - RTPReceiver and RTPSource: RTP over UDP from an encoder process
//     (ffmpeg -f rtp, GStreamer udpsink), with RTCP receiver reports and
//     PLI back to the sender so that GStreamer encoders produce an IDR on
//     demand. Only the encoder's address is heard: the first sender (or
//     the configured source) is locked in until it falls silent.
//
// The per-layer pieces (PipeReader.Ingest, RTPReceiver.Run) write into any
// TrackWriter at a given track index, so one publication can mix transports,
// such as the main layer from a pipe and the preview over RTP. They keep
// their RTP sequence numbers and timestamps continuous across restarts of the
// encoder behind them, so the hub's subscribers see one stream.
package ingest
