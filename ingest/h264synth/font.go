package h264synth

// glyph is a 3×5 character: five rows top to bottom, the three low bits of
// each row are its pixels, left pixel in bit 2.
type glyph [5]uint8

const (
	glyphW = 3
	glyphH = 5
)

// glyphFor returns the bitmap of c, folding lower case to upper case; a
// character without a bitmap is drawn as '?'.
func glyphFor(c rune) glyph {
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	switch {
	case c >= '0' && c <= '9':
		return digitGlyphs[c-'0']
	case c >= 'A' && c <= 'Z':
		return letterGlyphs[c-'A']
	}
	switch c {
	case ' ':
		return glyph{}
	case '-':
		return glyph{0b000, 0b000, 0b111, 0b000, 0b000}
	case '.':
		return glyph{0b000, 0b000, 0b000, 0b000, 0b010}
	case ':':
		return glyph{0b000, 0b010, 0b000, 0b010, 0b000}
	case '/':
		return glyph{0b001, 0b001, 0b010, 0b100, 0b100}
	case '_':
		return glyph{0b000, 0b000, 0b000, 0b000, 0b111}
	}
	return glyph{0b111, 0b001, 0b010, 0b000, 0b010}
}

var digitGlyphs = [10]glyph{
	{0b111, 0b101, 0b101, 0b101, 0b111},
	{0b010, 0b110, 0b010, 0b010, 0b111},
	{0b111, 0b001, 0b111, 0b100, 0b111},
	{0b111, 0b001, 0b111, 0b001, 0b111},
	{0b101, 0b101, 0b111, 0b001, 0b001},
	{0b111, 0b100, 0b111, 0b001, 0b111},
	{0b111, 0b100, 0b111, 0b101, 0b111},
	{0b111, 0b001, 0b010, 0b010, 0b010},
	{0b111, 0b101, 0b111, 0b101, 0b111},
	{0b111, 0b101, 0b111, 0b001, 0b111},
}

var letterGlyphs = [26]glyph{
	{0b010, 0b101, 0b111, 0b101, 0b101}, // A
	{0b110, 0b101, 0b110, 0b101, 0b110}, // B
	{0b011, 0b100, 0b100, 0b100, 0b011}, // C
	{0b110, 0b101, 0b101, 0b101, 0b110}, // D
	{0b111, 0b100, 0b110, 0b100, 0b111}, // E
	{0b111, 0b100, 0b110, 0b100, 0b100}, // F
	{0b011, 0b100, 0b101, 0b101, 0b011}, // G
	{0b101, 0b101, 0b111, 0b101, 0b101}, // H
	{0b111, 0b010, 0b010, 0b010, 0b111}, // I
	{0b001, 0b001, 0b001, 0b101, 0b010}, // J
	{0b101, 0b101, 0b110, 0b101, 0b101}, // K
	{0b100, 0b100, 0b100, 0b100, 0b111}, // L
	{0b101, 0b111, 0b111, 0b101, 0b101}, // M
	{0b110, 0b101, 0b101, 0b101, 0b101}, // N
	{0b010, 0b101, 0b101, 0b101, 0b010}, // O
	{0b110, 0b101, 0b110, 0b100, 0b100}, // P
	{0b010, 0b101, 0b101, 0b110, 0b011}, // Q
	{0b110, 0b101, 0b110, 0b101, 0b101}, // R
	{0b011, 0b100, 0b010, 0b001, 0b110}, // S
	{0b111, 0b010, 0b010, 0b010, 0b010}, // T
	{0b101, 0b101, 0b101, 0b101, 0b111}, // U
	{0b101, 0b101, 0b101, 0b101, 0b010}, // V
	{0b101, 0b101, 0b111, 0b111, 0b101}, // W
	{0b101, 0b101, 0b010, 0b101, 0b101}, // X
	{0b101, 0b101, 0b010, 0b010, 0b010}, // Y
	{0b111, 0b001, 0b010, 0b100, 0b111}, // Z
}
