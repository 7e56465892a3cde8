package h264synth

import "fmt"

// Config describes the stream. The zero value is a 1280x720, 30 fps stream
// with an IDR picture every 2 s.
type Config struct {
	// Width is the picture width in pixels: even, 64 to 8192. Sizes that are
	// not a multiple of 16 are cropped in the SPS. Default 1280.
	Width int `yaml:"width"`
	// Height is the picture height in pixels: even, 64 to 8192. Default 720.
	Height int `yaml:"height"`
	// FPS is the frame rate in frames per second, 1 to 240. Default 30.
	FPS int `yaml:"fps"`
	// GOP is the number of frames from one IDR picture to the next.
	// Default 2 s worth: 2 × FPS.
	GOP int `yaml:"gop"`
	// Label is text drawn above the frame counter, such as "main" or
	// "preview", when the picture has room for it; letters, digits and
	// " -.:/_" are drawn, other characters show as '?'. Default none.
	Label string `yaml:"label"`
}

const (
	minSide = 64
	maxSide = 8192
	maxFPS  = 240
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Width == 0 {
		c.Width = 1280
	}
	if c.Height == 0 {
		c.Height = 720
	}
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.GOP == 0 {
		c.GOP = 2 * c.FPS
	}
	return c
}

// Validate reports whether c, with defaults applied, describes a stream
// this package can encode. It does not check the H.264 level limits; New
// does.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, d := range []struct {
		name string
		v    int
	}{{"width", c.Width}, {"height", c.Height}} {
		if d.v < minSide || d.v > maxSide || d.v%2 != 0 {
			return fmt.Errorf("h264synth: %s %d: want an even number from %d to %d", d.name, d.v, minSide, maxSide)
		}
	}
	if c.FPS < 1 || c.FPS > maxFPS {
		return fmt.Errorf("h264synth: fps %d: want 1 to %d", c.FPS, maxFPS)
	}
	if c.GOP < 1 {
		return fmt.Errorf("h264synth: gop %d: want at least 1", c.GOP)
	}
	return nil
}
