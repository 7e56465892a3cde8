package hwaccel

import (
	"fmt"
	"time"
)

const maxLayers = 4

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Backend == "" {
		c.Backend = BackendSoftware
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.GstLaunch == "" {
		c.GstLaunch = "gst-launch-1.0"
	}
	if c.GstInspect == "" {
		c.GstInspect = "gst-inspect-1.0"
	}
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
	if in.Kind == "" {
		in.Kind = InputTestSrc
	}
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
	if in.Width == 0 {
		in.Width = 1280
	}
	if in.Height == 0 {
		in.Height = 720
	}
	if in.FPS == 0 {
		in.FPS = 30
	}
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
	if l.MaxBitrateKbps == 0 {
		l.MaxBitrateKbps = l.BitrateKbps
	}
	if l.GOP == 0 {
		l.GOP = in.FPS
	}
	if l.MaxFrameBytes == 0 {
		l.MaxFrameBytes = 2_000_000
	}
	if l.VBVKbits == 0 {
		l.VBVKbits = min(max(l.MaxBitrateKbps/2, 1), l.MaxFrameBytes*8/1000)
	}
	if l.Profile == "" {
		switch l.Codec {
		case H264:
			l.Profile = "baseline"
		case H265:
			l.Profile = "main"
		}
	}
	if l.Transport == "" {
		l.Transport = TransportPipe
	}
	if l.Container == "" {
		l.Container = defaultContainer(l.Codec)
		if l.Transport == TransportRTP {
			l.Container = ContainerRTP
		}
	}
	if l.Transport == TransportRTP && l.Port != 0 {
		if l.RTCPPort == 0 {
			l.RTCPPort = l.Port + 1
		}
		if l.FeedbackPort == 0 {
			l.FeedbackPort = l.Port + 5
		}
	}
	if l.PayloadType == 0 {
		l.PayloadType = 96 + i
	}
	return l
}

func (w WatchdogConfig) withDefaults() WatchdogConfig {
	if w.FirstFrame == 0 {
		w.FirstFrame = 10 * time.Second
	}
	if w.Stall == 0 {
		w.Stall = 2 * time.Second
	}
	if w.LowFPS == 0 {
		w.LowFPS = 0.9
	}
	if w.LowFPSFor == 0 {
		w.LowFPSFor = 10 * time.Second
	}
	return w
}

func (r RestartConfig) withDefaults() RestartConfig {
	if r.BackoffMin == 0 {
		r.BackoffMin = 500 * time.Millisecond
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = 30 * time.Second
	}
	if r.HealthyAfter == 0 {
		r.HealthyAfter = 60 * time.Second
	}
	if r.FallbackAfter == 0 {
		r.FallbackAfter = 3
	}
	if r.FallbackWindow == 0 {
		r.FallbackWindow = 60 * time.Second
	}
	if r.StopGrace == 0 {
		r.StopGrace = 3 * time.Second
	}
	return r
}

func even(n int) int { return n &^ 1 }
