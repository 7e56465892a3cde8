package hwaccel

import (
	"fmt"
	"time"
)

const maxLayers = 4

// orDefault sets *p to v when *p is the zero value.
func orDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	orDefault(&c.Backend, BackendSoftware)
	orDefault(&c.FFmpeg, "ffmpeg")
	orDefault(&c.GstLaunch, "gst-launch-1.0")
	orDefault(&c.GstInspect, "gst-inspect-1.0")
	c.Input = c.Input.withDefaults()
	if len(c.Layers) == 0 {
		c.Layers = make([]LayerConfig, 2)
	} else {
		c.Layers = append([]LayerConfig(nil), c.Layers...)
	}
	for i := range c.Layers {
		c.Layers[i] = c.Layers[i].withDefaults(i, c.Input)
	}
	c.Fallback = append([]FallbackConfig(nil), c.Fallback...)
	for i, fb := range c.Fallback {
		fb.Layers = append([]LayerConfig(nil), fb.Layers...)
		for j := range fb.Layers {
			fb.Layers[j] = fb.Layers[j].withDefaults(j, c.Input)
		}
		c.Fallback[i] = fb
	}
	c.Watchdog = c.Watchdog.withDefaults()
	c.Restart = c.Restart.withDefaults()
	return c
}

func (in InputConfig) withDefaults() InputConfig {
	orDefault(&in.Kind, InputTestSrc)
	if in.Format == "" {
		switch in.Kind {
		case InputV4L2:
			in.Format = YUYV422
		case InputDeckLink:
			in.Format = UYVY422
		default:
			in.Format = NV12
		}
	}
	if in.Device == "" {
		switch in.Kind {
		case InputV4L2:
			in.Device = "/dev/video0"
		case InputDeckLink:
			in.Device = "DeckLink 8K Pro (1)"
		}
	}
	orDefault(&in.Width, 1280)
	orDefault(&in.Height, 720)
	orDefault(&in.FPS, 30)
	return in
}

func (l LayerConfig) withDefaults(i int, in InputConfig) LayerConfig {
	if l.Name == "" {
		switch i {
		case 0:
			l.Name = "main"
		case 1:
			l.Name = "preview"
		default:
			l.Name = fmt.Sprintf("layer%d", i+1)
		}
	}
	if l.Width == 0 && l.Height == 0 {
		l.Width, l.Height = in.Width, in.Height
		if i > 0 {
			l.Width, l.Height = even(in.Width/4), even(in.Height/4)
		}
	}
	if l.Codec == "" {
		l.Codec = H264
		if l.Width > 4096 {
			l.Codec = H265
		}
	}
	if l.BitrateKbps == 0 && l.Width > 0 && l.Height > 0 && in.FPS > 0 {
		bpp := 0.05
		if l.Codec == H264 || l.Codec == VP8 {
			bpp = 0.07
		}
		l.BitrateKbps = max(50, int(float64(l.Width*l.Height*in.FPS)*bpp/1000))
	}
	orDefault(&l.MaxBitrateKbps, l.BitrateKbps)
	orDefault(&l.GOP, in.FPS)
	orDefault(&l.MaxFrameBytes, 2_000_000)
	orDefault(&l.VBVKbits, min(max(l.MaxBitrateKbps/2, 1), l.MaxFrameBytes*8/1000))
	if l.Profile == "" {
		switch l.Codec {
		case H264:
			l.Profile = "baseline"
		case H265:
			l.Profile = "main"
		}
	}
	orDefault(&l.Transport, TransportPipe)
	if l.Container == "" {
		l.Container = defaultContainer(l.Codec)
		if l.Transport == TransportRTP {
			l.Container = ContainerRTP
		}
	}
	if l.Transport == TransportRTP && l.Port != 0 {
		orDefault(&l.RTCPPort, l.Port+1)
		orDefault(&l.FeedbackPort, l.Port+5)
	}
	orDefault(&l.PayloadType, 96+i)
	return l
}

func (w WatchdogConfig) withDefaults() WatchdogConfig {
	orDefault(&w.FirstFrame, 10*time.Second)
	orDefault(&w.Stall, 2*time.Second)
	orDefault(&w.LowFPS, 0.9)
	orDefault(&w.LowFPSFor, 10*time.Second)
	return w
}

func (r RestartConfig) withDefaults() RestartConfig {
	orDefault(&r.BackoffMin, 500*time.Millisecond)
	orDefault(&r.BackoffMax, 30*time.Second)
	orDefault(&r.HealthyAfter, 60*time.Second)
	orDefault(&r.FallbackAfter, 3)
	orDefault(&r.FallbackWindow, 60*time.Second)
	orDefault(&r.StopGrace, 3*time.Second)
	return r
}

func even(n int) int { return n &^ 1 }
