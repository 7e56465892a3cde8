package h264synth

// color is one macroblock's colour in 8-bit Y'CbCr (BT.601, limited range).
type color struct{ y, cb, cr uint8 }

// 75 % colour bars (ITU-R BT.801 values) and the panel colours.
var (
	barColors = [...]color{
		{180, 128, 128}, // white
		{162, 44, 142},  // yellow
		{131, 156, 44},  // cyan
		{112, 72, 58},   // green
		{84, 184, 198},  // magenta
		{65, 100, 212},  // red
		{35, 212, 114},  // blue
	}
	black      = color{16, 128, 128}
	white      = color{235, 128, 128}
	panelGrey  = color{48, 128, 128}
	labelColor = color{210, 16, 146} // 100 % yellow
)

// picture is a frame at macroblock resolution: every macroblock is one flat
// colour.
type picture struct {
	w, h int // in macroblocks
	mb   []color
}

func newPicture(w, h int) picture {
	return picture{w: w, h: h, mb: make([]color, w*h)}
}

// fill paints the rectangle, clipped to the picture.
func (p *picture) fill(x, y, w, h int, c color) {
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+w, p.w), min(y+h, p.h)
	for yy := y0; yy < y1; yy++ {
		row := p.mb[yy*p.w : (yy+1)*p.w]
		for xx := x0; xx < x1; xx++ {
			row[xx] = c
		}
	}
}

// text draws s with its top-left corner at (x, y), each font pixel scale×scale
// macroblocks; only the set pixels are painted.
func (p *picture) text(x, y, scale int, s string, fg color) {
	for _, c := range s {
		p.glyph(x, y, scale, glyphFor(c), fg)
		x += (glyphW + 1) * scale
	}
}

// textBytes is text for ASCII held in a byte slice, which the frame counter
// uses to stay free of allocations.
func (p *picture) textBytes(x, y, scale int, s []byte, fg color) {
	for _, c := range s {
		p.glyph(x, y, scale, glyphFor(rune(c)), fg)
		x += (glyphW + 1) * scale
	}
}

func (p *picture) glyph(x, y, scale int, g glyph, fg color) {
	for gy, row := range g {
		for gx := range glyphW {
			if row&(1<<(glyphW-1-gx)) != 0 {
				p.fill(x+gx*scale, y+gy*scale, scale, scale, fg)
			}
		}
	}
}

// textWidth is the width in macroblocks of n characters drawn by text.
func textWidth(n, scale int) int {
	if n == 0 {
		return 0
	}
	return ((glyphW+1)*n - 1) * scale
}
