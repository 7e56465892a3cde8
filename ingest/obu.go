package ingest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	obuTemporalDelimiter = 2
	obuPadding           = 15
	maxLEB128Bytes       = 8
)

// readOBU reads an AV1 low-overhead bitstream (every OBU carries obu_size)
// and splits it into temporal units at each temporal delimiter. The
// payloader drops the delimiters themselves.
func (p *PipeReader) readOBU(r io.Reader, w TrackWriter, track int) error {
	br := bufio.NewReaderSize(r, minReadBytes)
	tu := p.buf[:0]
	defer func() { p.buf = tu[:0] }()
	media := false // the TU holds more than delimiters and padding
	flush := func() {
		if media {
			p.frame(w, track, tu, p.clock.next(time.Now()))
		}
		tu, media = tu[:0], false
	}
	for {
		h, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			flush()
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h&0x80 != 0 {
			return fmt.Errorf("obu header %#02x has the forbidden bit set; is this an AV1 OBU stream?", h)
		}
		if h&0x02 == 0 {
			return fmt.Errorf("obu header %#02x has no obu_size; want a low-overhead stream (ffmpeg -f obu)", h)
		}
		typ := (h >> 3) & 0x0f
		if typ == obuTemporalDelimiter {
			flush()
		} else if typ != obuPadding {
			media = true
		}
		tu = append(tu, h)
		if h&0x04 != 0 { // extension header
			x, err := br.ReadByte()
			if err != nil {
				return fmt.Errorf("obu extension: %w", unexpected(err))
			}
			tu = append(tu, x)
		}
		var size uint64
		for i := 0; ; i++ {
			if i == maxLEB128Bytes {
				return errors.New("obu_size longer than 8 bytes")
			}
			b, err := br.ReadByte()
			if err != nil {
				return fmt.Errorf("obu_size: %w", unexpected(err))
			}
			tu = append(tu, b)
			size |= uint64(b&0x7f) << (7 * i)
			if b&0x80 == 0 {
				break
			}
		}
		if size > uint64(p.cfg.MaxFrameBytes) || len(tu)+int(size) > p.cfg.MaxFrameBytes {
			return fmt.Errorf("temporal unit over max_frame_bytes %d", p.cfg.MaxFrameBytes)
		}
		n := len(tu)
		tu = grow(tu, int(size))
		if _, err := io.ReadFull(br, tu[n:]); err != nil {
			return fmt.Errorf("obu payload: %w", unexpected(err))
		}
	}
}

// grow extends b by n bytes, reusing its capacity when it can.
func grow(b []byte, n int) []byte {
	if len(b)+n <= cap(b) {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n, pipeBufferBytes))
	copy(nb, b)
	return nb
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
