package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Reading sizes for piped streams. The buffer holds at least one whole
// access unit plus a read, and grows (up to MaxFrameBytes) for larger ones.
const (
	pipeBufferBytes = 4 << 20
	minReadBytes    = 256 << 10
)

var startCode = []byte{0, 0, 1}

// indexStartCode is bytes.Index(b, startCode), found by looking for its
// last byte. In coded slice data a 0x01 is one byte in 256 and emulation
// prevention keeps 00 00 01 out of it, so bytes.IndexByte's vector search
// runs over ~256 bytes a call; bytes.Index looks for the first byte, 0x00,
// which slice data holds far more often (the 3-byte pattern's own vector
// search went through the benchmark's slices at 1.2 GB/s).
func indexStartCode(b []byte) int {
	for off := 2; off < len(b); {
		i := bytes.IndexByte(b[off:], 1)
		if i < 0 {
			return -1
		}
		j := off + i
		if b[j-1] == 0 && b[j-2] == 0 {
			return j - 2
		}
		off = j + 1
	}
	return -1
}

// auState is what the splitter knows about the access unit being gathered.
type auState struct {
	nals     int
	hasVCL   bool
	key      bool  // an IDR (H.264) or IRAP (H.265) picture
	have     uint8 // parameter sets present, as paramSet bits
	insertAt int   // where missing parameter sets go: after a leading AUD
}

// nalClass is how a NAL unit bears on access-unit boundaries.
type nalClass struct {
	typ        uint8
	vcl        bool // a coded slice
	firstSlice bool // first_mb_in_slice == 0 / first_slice_segment_in_pic_flag
	startsAU   bool // a non-VCL unit that may only come before the slices of its AU
	key        bool
	aud        bool
	param      uint8 // paramSet bit, or 0
}

// classify reads the NAL header at b[0:] and, for a slice, the first byte of
// the slice header after it.
func classify(h265 bool, b []byte) nalClass {
	if len(b) == 0 {
		return nalClass{}
	}
	if h265 {
		t := (b[0] >> 1) & 0x3f
		c := nalClass{typ: t}
		switch {
		case t < 32:
			c.vcl = true
			c.firstSlice = len(b) > 2 && b[2]&0x80 != 0
			c.key = t >= 16 && t <= 21
		case t == 32:
			c.startsAU, c.param = true, psVPS
		case t == 33:
			c.startsAU, c.param = true, psSPS
		case t == 34:
			c.startsAU, c.param = true, psPPS
		case t == 35:
			c.startsAU, c.aud = true, true
		case t == 39 || (t >= 41 && t <= 44) || (t >= 48 && t <= 55):
			c.startsAU = true // prefix SEI, reserved, unspecified
		}
		return c
	}
	t := b[0] & 0x1f
	c := nalClass{typ: t}
	switch {
	case t >= 1 && t <= 5:
		c.vcl = true
		// first_mb_in_slice is ue(v), and ue(v) of 0 is the single bit 1.
		c.firstSlice = len(b) > 1 && b[1]&0x80 != 0
		c.key = t == 5
	case t == 7:
		c.startsAU, c.param = true, psSPS
	case t == 8:
		c.startsAU, c.param = true, psPPS
	case t == 9:
		c.startsAU, c.aud = true, true
	case t == 6 || (t >= 14 && t <= 18):
		c.startsAU = true // SEI, prefix NAL, subset SPS, DPS, reserved
	}
	return c
}

// readAnnexB splits the byte stream into access units: a new one starts
// where, after a slice, comes a unit that must precede its AU's slices (AUD,
// SPS, PPS, VPS, prefix SEI) or the first slice of a new picture. Each AU is
// packetized straight from the read buffer; nothing is copied per NAL unit.
func (p *PipeReader) readAnnexB(r io.Reader, w TrackWriter, track int) error {
	h265 := p.cfg.Codec.Name() == "H265"
	need := 2 // bytes after a start code needed to classify the unit
	if h265 {
		need = 3
	}
	if len(p.buf) < pipeBufferBytes {
		p.buf = make([]byte, pipeBufferBytes)
	}
	buf := p.buf
	p.nals = p.nals[:0] // a last call may have ended within an AU
	var (
		end  int     // bytes held
		scan int     // where the next start code search begins
		au   = -1    // start of the access unit being gathered; -1 before the first start code
		nal  = -1    // header of the last unit seen
		st   auState // of the access unit being gathered
		eof  bool
	)
	for {
		for {
			i := indexStartCode(buf[scan:end])
			if i < 0 {
				scan = max(scan, end-2)
				break
			}
			sc := scan + i
			h := sc + 3
			if end-h < need && !eof {
				scan = sc
				break
			}
			if end-h < need { // a stub after the last start code: drop it
				end = sc
				break
			}
			// A four-byte start code's leading zero is not part of the last unit.
			b := sc
			if nal >= 0 && sc-1 > nal && buf[sc-1] == 0 {
				b = sc - 1
			}
			if nal >= 0 {
				p.endNAL(&st, buf[nal:b], b-au)
			}
			c := classify(h265, buf[h:])
			if au < 0 {
				au = b
			} else if st.hasVCL && (c.startsAU || (c.vcl && c.firstSlice)) {
				p.emitAU(w, track, buf[au:b], &st, h265)
				au, st, p.nals = b, auState{}, p.nals[:0]
			}
			st.nals++
			if c.vcl {
				st.hasVCL = true
				st.key = st.key || c.key
			}
			nal = h
			scan = h + 1
		}
		if eof {
			if nal >= 0 {
				p.endNAL(&st, buf[nal:end], end-au)
				p.emitAU(w, track, buf[au:end], &st, h265)
			}
			return nil
		}

		// Make room: drop what is done, then grow if one AU fills the buffer.
		if len(buf)-end < minReadBytes {
			from := au
			if au < 0 {
				from = scan
			}
			if from > 0 {
				n := copy(buf, buf[from:end])
				end = n
				scan -= from
				if au >= 0 {
					au = 0
				}
				if nal >= 0 {
					nal -= from
				}
			}
		}
		if len(buf)-end < minReadBytes {
			if end >= p.cfg.MaxFrameBytes {
				return fmt.Errorf("access unit over %d bytes; is this really an Annex-B %s stream?", p.cfg.MaxFrameBytes, p.cfg.Codec.Name())
			}
			nb := make([]byte, min(2*len(buf), p.cfg.MaxFrameBytes+minReadBytes))
			copy(nb, buf[:end])
			buf, p.buf = nb, nb
		}
		n, err := r.Read(buf[end:])
		end += n
		if errors.Is(err, io.EOF) {
			eof = true
		} else if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

// endNAL notes a unit once its end is known: where it starts in its access
// unit, so the AU is not scanned again; parameter sets are cached, and a
// leading AUD moves the point where missing ones would be put back.
func (p *PipeReader) endNAL(st *auState, nal []byte, endInAU int) {
	p.nals = append(p.nals, endInAU-len(nal))
	if len(nal) == 0 {
		return
	}
	c := classify(p.cfg.Codec.Name() == "H265", nal)
	switch {
	case c.param != 0:
		st.have |= c.param
		p.ps.store(c.param, nal)
	case c.aud && st.nals == 1:
		st.insertAt = endInAU
	}
}

// emitAU writes one access unit, whose units endNAL noted: each ends
// where the next one's start code begins (the packetizer drops the zeros
// of a four-byte one), the last at the AU's end. A keyframe that lacks
// parameter sets gets the cached ones, so a viewer can start decoding
// there.
func (p *PipeReader) emitAU(w TrackWriter, track int, au []byte, st *auState, h265 bool) {
	if !st.hasVCL {
		return // parameter sets or SEI without a picture: nothing to show
	}
	var missing uint8
	if st.key {
		missing = p.ps.missing(st.have, h265)
	}
	p.pk.begin(w, track, p.clock.next(time.Now()))
	for k, start := range p.nals {
		if missing != 0 && start >= st.insertAt {
			p.ps.add(&p.pk, missing)
			missing = 0
		}
		end := len(au)
		if k+1 < len(p.nals) {
			end = p.nals[k+1] - len(startCode)
		}
		p.pk.addNAL(au, start, end)
	}
	p.pk.end()
	p.frameWritten()
}
