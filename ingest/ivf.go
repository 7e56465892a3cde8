package ingest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"whipgate/gateway"
)

const (
	ivfFileHeaderBytes  = 32
	ivfFrameHeaderBytes = 12
)

var ivfFourCC = map[string]gateway.Codec{"VP80": gateway.VP8, "VP90": gateway.VP9, "AV01": gateway.AV1}

// readIVF reads an IVF stream: a 32-byte file header with the codec and the
// time base, then frames each behind a 12-byte header with size and pts.
// Frames are timed by pts in the file's time base.
func (p *PipeReader) readIVF(r io.Reader, w TrackWriter, track int) error {
	br := bufio.NewReaderSize(r, minReadBytes)
	var hdr [ivfFileHeaderBytes]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // the encoder wrote nothing
		}
		return fmt.Errorf("ivf header: %w", err)
	}
	if string(hdr[0:4]) != "DKIF" {
		return fmt.Errorf("not an IVF stream (starts % x)", hdr[0:4])
	}
	if n := int(binary.LittleEndian.Uint16(hdr[6:8])); n > ivfFileHeaderBytes {
		if _, err := br.Discard(n - ivfFileHeaderBytes); err != nil {
			return fmt.Errorf("ivf header: %w", err)
		}
	}
	fourcc := string(hdr[8:12])
	if c, ok := ivfFourCC[fourcc]; !ok || c != p.cfg.Codec {
		return fmt.Errorf("ivf fourcc %q does not carry %s", fourcc, p.cfg.Codec.Name())
	}
	// The time base is num/den seconds; IVF stores the denominator first.
	den := binary.LittleEndian.Uint32(hdr[16:20])
	num := binary.LittleEndian.Uint32(hdr[20:24])
	if den == 0 || num == 0 {
		return fmt.Errorf("ivf time base %d/%d", num, den)
	}
	p.log.Debug("ivf stream", "fourcc", fourcc,
		"width", binary.LittleEndian.Uint16(hdr[12:14]), "height", binary.LittleEndian.Uint16(hdr[14:16]),
		"timebase", fmt.Sprintf("%d/%d", num, den))

	var fh [ivfFrameHeaderBytes]byte
	for {
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("ivf frame header: %w", err)
		}
		size := int(binary.LittleEndian.Uint32(fh[0:4]))
		pts := int64(binary.LittleEndian.Uint64(fh[4:12]))
		if size > p.cfg.MaxFrameBytes {
			return fmt.Errorf("ivf frame of %d bytes is over max_frame_bytes %d", size, p.cfg.MaxFrameBytes)
		}
		if cap(p.buf) < size {
			p.buf = make([]byte, max(size, pipeBufferBytes))
		}
		frame := p.buf[:size]
		if _, err := io.ReadFull(br, frame); err != nil {
			return fmt.Errorf("ivf frame: %w", err)
		}
		if size == 0 {
			continue
		}
		p.frame(w, track, frame, p.clock.pts(time.Now(), pts, num, den))
	}
}
