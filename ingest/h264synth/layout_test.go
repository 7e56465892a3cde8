package h264synth

import (
	"bytes"
	"testing"
)

// TestLayoutFitsEverySize lays out a grid of sizes and checks that the parts
// sit on visible macroblocks without overlapping, and that the decimal
// counter is there whenever the picture has room for it.
func TestLayoutFitsEverySize(t *testing.T) {
	for width := minSide; width <= 1920; width += 34 {
		for height := minSide; height <= 1080; height += 26 {
			visW, visH := width/16, height/16
			l := newLayout((width+15)/16, (height+15)/16, visW, visH, "preview")
			parts := map[string]rect{"track": l.track, "binary": l.binary}
			if l.digits > 0 {
				parts["counter"] = l.counter
			} else if width >= 80 && height >= 128 {
				t.Errorf("%dx%d: no decimal counter", width, height)
			}
			if l.track.h < 1 || l.bits < 2 {
				t.Errorf("%dx%d: track height %d, %d bits", width, height, l.track.h, l.bits)
			}
			for name, r := range parts {
				if r.w < 1 || r.h < 1 || r.x < 0 || r.y < 1 || r.x+r.w > visW || r.y+r.h > visH {
					t.Errorf("%dx%d: %s %+v outside the visible %dx%d macroblocks", width, height, name, r, visW, visH)
				}
				for other, o := range parts {
					if other != name && r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
						t.Errorf("%dx%d: %s %+v overlaps %s %+v", width, height, name, r, other, o)
					}
				}
			}
		}
	}
}

func TestAnnexB(t *testing.T) {
	nalus := [][]byte{{0x67, 1}, {0x68, 2, 3}}
	want := []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 3}
	if got := AppendAnnexB([]byte{9}, nalus); !bytes.Equal(got, append([]byte{9}, want...)) {
		t.Errorf("AppendAnnexB = % x, want 09 % x", got, want)
	}
	var buf bytes.Buffer
	if err := WriteAnnexB(&buf, nalus); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteAnnexB = % x, %v; want % x", buf.Bytes(), err, want)
	}
}
