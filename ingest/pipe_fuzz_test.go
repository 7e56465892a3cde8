package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"whipgate/gateway"
)

// The pipe readers (Annex-B, IVF, OBU) read what an encoder process
// writes. Their fuzz targets feed byte streams through Ingest twice, once
// read whole and once in the read sizes the fuzzer picks, and check:
// Ingest returns (a finite stream ends it), the two reads give the same
// packets, every packet is valid RTP within the MTU with the marker on
// each frame's last packet, the stream is read to its end when no error
// is returned, the reader's buffers stay within max_frame_bytes (plus a
// read) whatever sizes the stream declares, and all it allocates is at
// most that plus a multiple of the stream's length (the reader notes
// where each NAL unit starts; VP9's payloader allocates per packet). IVF and OBU streams are also parsed by a
// reference reader that says how many frames they hold and whether they
// are malformed. Seeds are short streams of x264, x265, libvpx and libaom
// (testdata/streams).

func streamSeed(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile("testdata/streams/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// pipeSink checks the packets of one Ingest and sums them up.
type pipeSink struct {
	t                *testing.T
	packets, inFrame int
	lastSeq          uint16
	marker           bool
	h                hash.Hash64
	frames           []uint64 // each frame's packets, hashed
}

func (s *pipeSink) WriteRTP(_ int, p *rtp.Packet) {
	if p.Version != 2 || len(p.Payload) == 0 || len(p.Payload) > MTU {
		s.t.Fatalf("packet %d: version %d, %d payload bytes (MTU %d)", s.packets, p.Version, len(p.Payload), MTU)
	}
	if s.packets > 0 && p.SequenceNumber != s.lastSeq+1 {
		s.t.Fatalf("packet %d: sequence %d after %d", s.packets, p.SequenceNumber, s.lastSeq)
	}
	if s.marker {
		s.t.Fatalf("packet %d follows a marker within one frame", s.packets)
	}
	s.packets++
	s.inFrame++
	s.lastSeq, s.marker = p.SequenceNumber, p.Marker
	m := []byte{0}
	if p.Marker {
		m[0] = 1
	}
	_, _ = s.h.Write(m)
	_, _ = s.h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p.Payload))))
	_, _ = s.h.Write(p.Payload)
}

func (s *pipeSink) onFrame(string) {
	if s.inFrame > 0 && !s.marker {
		s.t.Fatalf("frame %d ends without a marker", len(s.frames))
	}
	s.frames = append(s.frames, s.h.Sum64())
	s.h.Reset()
	s.inFrame, s.marker = 0, false
}

// chunkReader returns stream in reads of the sizes cut gives, in turn.
type chunkReader struct {
	b   []byte
	cut []byte
	i   int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(r.cut) > 0 {
		c := int(r.cut[r.i%len(r.cut)])
		r.i++
		n = min(n, c*c+1)
	}
	n = copy(p, r.b[:min(n, len(r.b))])
	r.b = r.b[n:]
	return n, nil
}

// pipeFuzzBuf is the read buffer runPipe hands each reader.
var pipeFuzzBuf []byte

type pipeRun struct {
	frames []uint64
	err    error
	alloc  uint64
}

// runPipe ingests stream with a new reader for cfg.
func runPipe(t *testing.T, cfg PipeConfig, stream, cut []byte) pipeRun {
	t.Helper()
	sink := &pipeSink{t: t, h: fnv.New64a()}
	cfg.OnFrame = sink.onFrame
	p, err := NewPipeReader(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Codec == gateway.VP9 { // its picture IDs start at random
		p.pk.vp9 = codecs.VP9Payloader{InitialPictureIDFn: func() uint16 { return 0 }}
	}
	// The read buffer of the last run, bytes and all, at the size a new
	// reader allocates: a fresh 4 MiB per run would make the fuzzer slow,
	// and a reader that read stale bytes would now give runs that differ.
	if pipeFuzzBuf == nil {
		pipeFuzzBuf = make([]byte, pipeBufferBytes)
	}
	p.buf = pipeFuzzBuf[:pipeBufferBytes:pipeBufferBytes]
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = p.Ingest(context.Background(), &chunkReader{b: stream, cut: cut}, sink, 0)
	runtime.ReadMemStats(&after)
	if sink.inFrame > 0 {
		t.Fatalf("%d packets after the last frame", sink.inFrame)
	}
	if p.Frames() != uint64(len(sink.frames)) {
		t.Fatalf("Frames() = %d, OnFrame ran %d times", p.Frames(), len(sink.frames))
	}
	if err == nil && p.Bytes() != uint64(len(stream)) {
		t.Fatalf("Ingest returned nil having read %d of %d bytes", p.Bytes(), len(stream))
	}
	limit := orDefault(cfg.MaxFrameBytes, defaultMaxFrameBytes)
	if c := cap(p.buf); c > max(pipeBufferBytes, limit+minReadBytes) {
		t.Fatalf("a %d-byte stream left a %d-byte buffer (max_frame_bytes %d)", len(stream), c, limit)
	}
	return pipeRun{frames: sink.frames, err: err, alloc: after.TotalAlloc - before.TotalAlloc}
}

// checkPipe runs stream whole and cut, and checks what both have to agree
// on. exact says the two must also fail alike (the Annex-B reader checks
// max_frame_bytes when its buffer fills, which depends on read sizes).
func checkPipe(t *testing.T, cfg PipeConfig, stream, cut []byte, exact bool) pipeRun {
	t.Helper()
	whole := runPipe(t, cfg, stream, nil)
	part := runPipe(t, cfg, stream, cut)
	if exact || (whole.err == nil && part.err == nil) {
		if (whole.err == nil) != (part.err == nil) || len(whole.frames) != len(part.frames) {
			t.Fatalf("read whole: %d frames, %v; in pieces: %d frames, %v", len(whole.frames), whole.err, len(part.frames), part.err)
		}
	}
	for i := range min(len(whole.frames), len(part.frames)) {
		if whole.frames[i] != part.frames[i] {
			t.Fatalf("frame %d differs between reading whole and in pieces", i)
		}
	}
	limit := orDefault(cfg.MaxFrameBytes, defaultMaxFrameBytes)
	bound := uint64(4*(limit+pipeBufferBytes+minReadBytes) + 64*len(stream) + 1<<20)
	if whole.alloc > bound {
		t.Fatalf("a %d-byte stream allocated %d bytes, over %d (max_frame_bytes %d)", len(stream), whole.alloc, bound, limit)
	}
	return whole
}

func FuzzPipeAnnexB(f *testing.F) {
	f.Add(false, uint16(0), streamSeed(f, "x264.h264"), []byte{})
	f.Add(false, uint16(3), streamSeed(f, "x264.h264"), []byte{1, 7, 200})
	f.Add(true, uint16(0), streamSeed(f, "x265.hevc"), []byte{3})
	f.Add(true, uint16(9), streamSeed(f, "x265.hevc"), []byte{0, 2, 13})
	f.Add(false, uint16(40000), streamSeed(f, "x264.h264"), []byte{0xff, 90, 250})
	// Slices of one picture (first_mb_in_slice > 0): one access unit that
	// outgrows the read buffer.
	f.Add(false, uint16(40000), []byte{0, 0, 1, 0x65, 0x00, 0x11}, []byte{0xff, 255})
	f.Add(true, uint16(0), []byte{0, 0, 1, 0x65, 0x00, 0x11}, []byte{0xff, 255}) // over max_frame_bytes
	f.Add(false, uint16(0), []byte{0x42, 0x00}, []byte{0xff, 255})               // no start code at all
	f.Fuzz(func(t *testing.T, h265 bool, maxFrame uint16, stream, cut []byte) {
		cfg := PipeConfig{Codec: gateway.H264, MaxFrameBytes: 1<<10 + int(maxFrame)*128}
		if h265 {
			cfg.Codec = gateway.H265
		}
		// A cut starting 0xff repeats the stream past the read buffer, so
		// that it is compacted and grown.
		if len(cut) > 0 && cut[0] == 0xff && len(stream) > 0 {
			stream = bytes.Repeat(stream, (pipeBufferBytes+minReadBytes)/len(stream)+2)
		}
		checkPipe(t, cfg, stream, cut, false)
	})
}

func FuzzPipeIVF(f *testing.F) {
	f.Add(uint8(0), uint16(0), streamSeed(f, "vp8.ivf"), []byte{})
	f.Add(uint8(1), uint16(2), streamSeed(f, "vp9.ivf"), []byte{5, 1})
	f.Add(uint8(2), uint16(100), streamSeed(f, "av1.ivf"), []byte{11})
	// A frame header that declares 4 GiB.
	huge := append(streamSeed(f, "vp8.ivf")[:32], 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0)
	f.Add(uint8(0), uint16(0), huge, []byte{})
	f.Fuzz(func(t *testing.T, which uint8, maxFrame uint16, stream, cut []byte) {
		codec := []gateway.Codec{gateway.VP8, gateway.VP9, gateway.AV1}[int(which)%3]
		cfg := PipeConfig{Codec: codec, Container: IVF, MaxFrameBytes: 1<<10 + int(maxFrame)*16}
		if maxFrame == 0 {
			cfg.MaxFrameBytes = 0 // the default, 32 MiB
		}
		run := checkPipe(t, cfg, stream, cut, true)
		frames, bad := refIVF(stream, codec, orDefault(cfg.MaxFrameBytes, defaultMaxFrameBytes))
		if len(run.frames) != frames || (run.err != nil) != bad {
			t.Fatalf("read %d frames, %v; the reference reads %d frames, malformed %v", len(run.frames), run.err, frames, bad)
		}
	})
}

func FuzzPipeOBU(f *testing.F) {
	f.Add(uint16(0), streamSeed(f, "av1.obu"), []byte{})
	f.Add(uint16(7), streamSeed(f, "av1.obu"), []byte{2, 9})
	f.Add(uint16(0), []byte{0x12, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0x4f, 0x7e, 0x7f, 0x00, 0x68, 0x0f}, []byte{})
	f.Fuzz(func(t *testing.T, maxFrame uint16, stream, cut []byte) {
		cfg := PipeConfig{Codec: gateway.AV1, Container: OBU, MaxFrameBytes: 1<<10 + int(maxFrame)*16}
		run := checkPipe(t, cfg, stream, cut, true)
		frames, bad := refOBU(stream, cfg.MaxFrameBytes)
		if len(run.frames) != frames || (run.err != nil) != bad {
			t.Fatalf("read %d frames, %v; the reference reads %d frames, malformed %v", len(run.frames), run.err, frames, bad)
		}
	})
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// refIVF counts the non-empty frames of an IVF stream for codec and says
// whether it is malformed: short, not IVF, another codec, no time base, a
// frame over limit or cut short.
func refIVF(b []byte, codec gateway.Codec, limit int) (frames int, bad bool) {
	if len(b) == 0 {
		return 0, false
	}
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return 0, true
	}
	off := max32(int(binary.LittleEndian.Uint16(b[6:])))
	if off > len(b) || ivfFourCC[string(b[8:12])] != codec ||
		binary.LittleEndian.Uint32(b[16:]) == 0 || binary.LittleEndian.Uint32(b[20:]) == 0 {
		return 0, true
	}
	for off < len(b) {
		if len(b)-off < 12 {
			return frames, true
		}
		size := uint64(binary.LittleEndian.Uint32(b[off:]))
		if size > uint64(limit) || size > uint64(len(b)-off-12) {
			return frames, true
		}
		if size > 0 {
			frames++
		}
		off += 12 + int(size)
	}
	return frames, false
}

func max32(n int) int {
	if n < 32 {
		return 32
	}
	return n
}

// refOBU counts the temporal units with media of a low-overhead AV1
// stream and says whether it is malformed: a forbidden bit, an OBU without
// obu_size, a cut-short OBU, or a temporal unit over limit.
func refOBU(b []byte, limit int) (frames int, bad bool) {
	tu, media := 0, false
	flush := func() {
		if media {
			frames++
		}
		tu, media = 0, false
	}
	for off := 0; ; {
		if off == len(b) {
			flush()
			return frames, false
		}
		h := b[off]
		off++
		if h&0x80 != 0 || h&0x02 == 0 {
			return frames, true
		}
		switch typ := (h >> 3) & 0x0f; typ {
		case obuTemporalDelimiter:
			flush()
		case obuPadding:
		default:
			media = true
		}
		tu++
		if h&0x04 != 0 {
			if off == len(b) {
				return frames, true
			}
			off++
			tu++
		}
		var size uint64
		for i := 0; ; i++ {
			if i == maxLEB128Bytes || off == len(b) {
				return frames, true
			}
			c := b[off]
			off++
			tu++
			size |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				break
			}
		}
		if size > uint64(limit) || uint64(tu)+size > uint64(limit) || size > uint64(len(b)-off) {
			return frames, true
		}
		off += int(size)
		tu += int(size)
	}
}
