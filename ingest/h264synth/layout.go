package h264synth

import (
	"strconv"
	"strings"
)

// rect is a rectangle in macroblocks.
type rect struct{ x, y, w, h int }

const (
	maxCounterDigits = 6
	maxBinaryBits    = 16
	maxLabelLen      = 32
)

// layout places the parts of the pattern on the macroblock grid. From top to
// bottom: colour bars, the track of the moving square, then a grey panel with
// the label, the decimal frame counter and the binary frame counter. Parts
// that do not fit a small picture are left out, the label first, then the
// decimal counter; the bars, the moving square and the binary counter are
// always there, so every size moves and counts. Everything is placed on the
// macroblocks that are fully visible; the ones that cropping cuts continue the
// colours next to them.
type layout struct {
	bg picture // everything that never changes: bars, panel, label, empty track

	track     rect // the moving square runs along this strip, one macroblock per frame
	counter   rect // decimal frame counter, zero padded to digits
	digits    int  // 0 if the picture is too small for a counter
	digitSize int  // macroblocks per font pixel of the counter
	binary    rect // binary frame counter, most significant bit first
	bits      int
	bitSize   int // macroblocks per bit, square; bits are bitSize apart
}

// newLayout lays out a picture of w×h macroblocks of which the top-left
// visW×visH are fully visible.
func newLayout(w, h, visW, visH int, label string) layout {
	s := max(1, min(visW/40, visH/22))
	l := layout{bg: newPicture(w, h), digitSize: s, bitSize: s}
	if r := []rune(strings.TrimSpace(label)); len(r) > maxLabelLen {
		label = string(r[:maxLabelLen])
	} else {
		label = string(r)
	}

	// Rows: bars (at least one), track, gap, counter, gap, binary counter.
	// A tight picture gives up the gaps, then half the track height, then
	// the counter.
	trackH, gap := 2*s, 1
	l.digits = min(maxCounterDigits, (visW-2+s)/((glyphW+1)*s))
	spare := func() int { return visH - 1 - trackH - s - glyphH*s - 2*gap }
	if spare() < 0 {
		gap = 0
	}
	if spare() < 0 {
		trackH = s
	}
	counterH := glyphH*s + 2*gap
	if l.digits < 1 || spare() < 0 {
		l.digits, counterH, trackH, gap = 0, 0, 2*s, 1
		if visH-1-trackH-s < 0 {
			trackH = s
		}
	}
	rem := visH - 1 - trackH - counterH - s

	labelH, labelScale := 0, 0
	if n := len([]rune(label)); n > 0 {
		for ls := s; ls >= 1; ls-- {
			if textWidth(n, ls) <= visW-2 && rem >= glyphH*ls+1 {
				labelH, labelScale = glyphH*ls+1, ls
				break
			}
		}
	}

	barsH := visH - s - trackH - counterH - labelH
	for i, c := range barColors {
		x0 := i * visW / len(barColors)
		x1 := (i + 1) * visW / len(barColors)
		if i == len(barColors)-1 {
			x1 = w
		}
		l.bg.fill(x0, 0, x1-x0, barsH, c)
	}
	l.track = rect{0, barsH, visW, trackH}
	l.bg.fill(0, barsH, w, trackH, black)
	panelY := barsH + trackH
	l.bg.fill(0, panelY, w, h-panelY, panelGrey)

	if labelH > 0 {
		n := len([]rune(label))
		l.bg.text((visW-textWidth(n, labelScale))/2, panelY+1, labelScale, label, labelColor)
	}
	if l.digits > 0 {
		cw := textWidth(l.digits, s)
		l.counter = rect{(visW - cw) / 2, panelY + labelH + gap, cw, glyphH * s}
	}
	l.bits = min(maxBinaryBits, (visW/s+1)/2)
	bw := (2*l.bits - 1) * s
	l.binary = rect{(visW - bw) / 2, visH - s, bw, s}
	return l
}

// render draws the pattern of frame number frame into dst.
func (l *layout) render(dst *picture, frame uint64) {
	copy(dst.mb, l.bg.mb)

	t := l.track
	x := int(frame % uint64(t.w))
	for i := range t.h {
		dst.fill((x+i)%t.w, t.y, 1, t.h, white)
	}

	if l.digits > 0 {
		var buf [20]byte
		n := strconv.AppendUint(buf[:0], frame, 10)
		if len(n) > l.digits {
			n = n[len(n)-l.digits:]
		}
		var txt [maxCounterDigits]byte
		for i := range l.digits {
			txt[i] = '0'
		}
		copy(txt[l.digits-len(n):l.digits], n)
		dst.textBytes(l.counter.x, l.counter.y, l.digitSize, txt[:l.digits], white)
	}

	for i := range l.bits {
		c := black
		if frame>>(l.bits-1-i)&1 != 0 {
			c = white
		}
		dst.fill(l.binary.x+2*i*l.bitSize, l.binary.y, l.bitSize, l.bitSize, c)
	}
}

// dynamicMBs is the number of macroblocks render may change between frames.
func (l *layout) dynamicMBs() int {
	return l.track.w*l.track.h + l.counter.w*l.counter.h + l.binary.w*l.binary.h
}
