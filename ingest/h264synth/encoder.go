package h264synth

import (
	"fmt"
	"sync/atomic"
)

// Encoder produces the access units of the test pattern, one per call to
// Next. Next must not be called concurrently; RequestKeyframe may be called
// from any goroutine.
type Encoder struct {
	width, height int
	fps, gop      int
	levelIDC      int
	lay           layout
	cur, ref      picture // the picture being coded and the decoder's last one

	frame    uint64 // number of the next frame, shown by the counters
	gopPos   int    // position of the next frame in its GOP; 0 is an IDR
	frameNum uint32 // frame_num of the next picture
	idrPicID uint32 // idr_pic_id of the next IDR picture

	keyRequested atomic.Bool

	sps, pps []byte // NAL units, written once
	bw       bitWriter
	slice    []byte
	nalus    [][]byte
}

// worstMBBits bounds the size of one coded macroblock in a P slice:
// mb_skip_run, mb_type, chroma mode, mb_qp_delta and three DC levels with
// 12-bit escape suffixes.
const worstMBBits = 1 + 7 + 3 + 1 + 3*(6+15+1+12+1)

// New returns an encoder for cfg; zero fields of cfg take their defaults.
func New(cfg Config) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	mbW, mbH := (cfg.Width+15)/16, (cfg.Height+15)/16
	e := &Encoder{
		width:  cfg.Width,
		height: cfg.Height,
		fps:    cfg.FPS,
		gop:    cfg.GOP,
		lay:    newLayout(mbW, mbH, cfg.Width/16, cfg.Height/16, cfg.Label),
		cur:    newPicture(mbW, mbH),
		ref:    newPicture(mbW, mbH),
		nalus:  make([][]byte, 0, 3),
	}

	// The level must admit the bit rate too. Bound it by coding the first IDR
	// now: between IDRs only the moving parts of the pattern can change.
	e.lay.render(&e.cur, 0)
	writeSlice(&e.bw, &e.cur, &e.ref, true, 0, 0)
	idrBits := 8*len(e.bw.buf) + e.lay.dynamicMBs()*worstMBBits
	pBits := 64 + e.lay.dynamicMBs()*worstMBBits
	kbps := (idrBits + (cfg.GOP-1)*pBits) * cfg.FPS / cfg.GOP / 1000
	level, err := chooseLevel(mbW, mbH, cfg.FPS, kbps)
	if err != nil {
		return nil, fmt.Errorf("%w (%dx%d)", err, cfg.Width, cfg.Height)
	}
	e.levelIDC = level

	e.bw.reset()
	writeSPS(&e.bw, cfg.Width, cfg.Height, cfg.FPS, level)
	e.sps = appendNAL(nil, nalSPS, e.bw.buf)
	e.bw.reset()
	writePPS(&e.bw)
	e.pps = appendNAL(nil, nalPPS, e.bw.buf)
	return e, nil
}

// Next encodes the next frame and returns its access unit as NAL units
// without start codes; a keyframe is SPS, PPS and an IDR slice, any other
// frame is one P slice. The returned slices belong to the encoder: they must
// not be modified and stay valid only until the next call to Next.
func (e *Encoder) Next() (nalus [][]byte, keyframe bool) {
	// Swap first: a request must be consumed even when the GOP would give a
	// keyframe anyway.
	keyframe = e.keyRequested.Swap(false) || e.gopPos == 0
	if keyframe {
		e.gopPos, e.frameNum = 0, 0
	}

	e.lay.render(&e.cur, e.frame)
	e.bw.reset()
	writeSlice(&e.bw, &e.cur, &e.ref, keyframe, e.frameNum, e.idrPicID)
	header := byte(nalP)
	if keyframe {
		header = nalIDR
		e.idrPicID = (e.idrPicID + 1) % 65536
	}
	e.slice = appendNAL(e.slice[:0], header, e.bw.buf)

	e.nalus = e.nalus[:0]
	if keyframe {
		e.nalus = append(e.nalus, e.sps, e.pps)
	}
	e.nalus = append(e.nalus, e.slice)

	e.cur, e.ref = e.ref, e.cur
	e.frame++
	e.gopPos = (e.gopPos + 1) % e.gop
	e.frameNum = (e.frameNum + 1) % maxFrameNum
	return e.nalus, keyframe
}

// RequestKeyframe makes the next frame an IDR picture, for a receiver that
// lost packets or just joined; the GOP then counts from that frame.
func (e *Encoder) RequestKeyframe() { e.keyRequested.Store(true) }

// FrameRate returns the frame rate in frames per second; the caller paces
// Next at this rate.
func (e *Encoder) FrameRate() int { return e.fps }

// Width returns the decoded picture width in pixels.
func (e *Encoder) Width() int { return e.width }

// Height returns the decoded picture height in pixels.
func (e *Encoder) Height() int { return e.height }

// ProfileLevelID returns the RFC 6184 profile-level-id of the stream, such
// as "42e01f" for Constrained Baseline level 3.1.
func (e *Encoder) ProfileLevelID() string {
	return fmt.Sprintf("%02x%02x%02x", profileBaseline, constraintFlags, e.levelIDC)
}
