package hwaccel

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Validate reports the first problem with c, after defaults: control
// characters in any string, unknown names, impossible sizes, codecs or
// transports a backend cannot produce (for example H.264 wider than 4096
// on nvenc, vaapi or qsv), clashing ports. Every backend in Fallback is
// checked as well.
func (c Config) Validate() error {
	_, err := c.candidates()
	return err
}

// checkControlChars refuses a control character (a byte below 0x20, or
// 0x7f) in any string of c, naming the field by its YAML path: every
// string may reach an encoder's argv, and in a GStreamer pipeline
// description or a device path a newline or an escape changes what runs
// or hides it in the log. It walks the struct, so a field added later is
// covered too.
func checkControlChars(c Config) error {
	return walkStrings(reflect.ValueOf(c), "", func(path, s string) error {
		if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return fmt.Errorf("hwaccel: %s %q: control character %#02x at byte %d; only printable characters are allowed", path, s, s[i], i)
		}
		return nil
	})
}

// walkStrings calls f with every string in v (structs, slices, arrays,
// maps and pointers followed) and its YAML path, such as
// "fallback[0].layers[1].profile".
func walkStrings(v reflect.Value, path string, f func(path, s string) error) error {
	switch v.Kind() {
	case reflect.String:
		return f(path, v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walkStrings(v.Elem(), path, f)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i), f); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			p := fmt.Sprintf("%s[%q]", path, fmt.Sprint(k.Interface()))
			if err := walkStrings(k, p, f); err != nil {
				return err
			}
			if err := walkStrings(v.MapIndex(k), p, f); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if path != "" {
				name = path + "." + name
			}
			if err := walkStrings(v.Field(i), name, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateGeneric checks what does not depend on the backend; c has defaults.
func (c Config) validateGeneric() error {
	in := c.Input
	switch in.Kind {
	case InputV4L2, InputDeckLink, InputTestSrc:
	default:
		return fmt.Errorf("hwaccel: input kind %q: want v4l2, decklink or testsrc", in.Kind)
	}
	switch in.Format {
	case YUYV422, UYVY422, NV12:
	case MJPEG:
		if in.Kind != InputV4L2 {
			return fmt.Errorf("hwaccel: input format mjpeg is only for v4l2, not %s", in.Kind)
		}
	default:
		return fmt.Errorf("hwaccel: input format %q: want yuyv422, uyvy422, nv12 or mjpeg", in.Format)
	}
	if in.Kind == InputDeckLink && in.Format != UYVY422 {
		return fmt.Errorf("hwaccel: decklink input format %q: only uyvy422 (8-bit YUV) is supported; 10-bit v210 needs a GPU unpack no template has", in.Format)
	}
	if in.Width <= 0 || in.Height <= 0 || in.Width%2 != 0 || in.Height%2 != 0 {
		return fmt.Errorf("hwaccel: input size %dx%d: want positive even numbers", in.Width, in.Height)
	}
	if in.FPS <= 0 || in.FPS > 240 {
		return fmt.Errorf("hwaccel: input fps %d: want 1..240", in.FPS)
	}
	if in.DeviceNumber < 0 {
		return fmt.Errorf("hwaccel: input device_number %d: want >= 0", in.DeviceNumber)
	}
	if len(c.Layers) > maxLayers {
		return fmt.Errorf("hwaccel: %d layers: at most %d", len(c.Layers), maxLayers)
	}
	names := map[string]bool{}
	ports := map[int]string{}
	for i, l := range c.Layers {
		if err := l.validate(in); err != nil {
			return fmt.Errorf("hwaccel: layer %d (%s): %w", i, l.Name, err)
		}
		if names[l.Name] {
			return fmt.Errorf("hwaccel: layer name %q used twice", l.Name)
		}
		names[l.Name] = true
		if l.Transport != TransportRTP {
			continue
		}
		for _, p := range []struct {
			port int
			what string
		}{{l.Port, "port"}, {l.RTCPPort, "rtcp_port"}, {l.FeedbackPort, "feedback_port"}} {
			if other, dup := ports[p.port]; dup {
				return fmt.Errorf("hwaccel: layer %s %s %d is already %s", l.Name, p.what, p.port, other)
			}
			ports[p.port] = fmt.Sprintf("layer %s %s", l.Name, p.what)
		}
	}
	if c.Restart.BackoffMin < 0 || c.Restart.BackoffMax < c.Restart.BackoffMin {
		return fmt.Errorf("hwaccel: restart backoff %v..%v: want 0 < min <= max", c.Restart.BackoffMin, c.Restart.BackoffMax)
	}
	if c.Restart.FallbackAfter < 0 {
		return errors.New("hwaccel: restart fallback_after must not be negative")
	}
	if !(c.Watchdog.LowFPS >= 0 && c.Watchdog.LowFPS <= 1) { // NaN too
		return fmt.Errorf("hwaccel: watchdog low_fps %v: want a fraction in 0..1", c.Watchdog.LowFPS)
	}
	return nil
}

func (l LayerConfig) validate(in InputConfig) error {
	if !l.Codec.valid() {
		return fmt.Errorf("codec %q: want h264, h265, av1, vp8 or vp9", l.Codec)
	}
	if l.Width <= 0 || l.Height <= 0 || l.Width%2 != 0 || l.Height%2 != 0 {
		return fmt.Errorf("size %dx%d: want positive even numbers", l.Width, l.Height)
	}
	if l.Width > in.Width || l.Height > in.Height {
		return fmt.Errorf("size %dx%d is larger than the input %dx%d", l.Width, l.Height, in.Width, in.Height)
	}
	if l.BitrateKbps <= 0 || l.MaxBitrateKbps < l.BitrateKbps {
		return fmt.Errorf("bitrate %d kbps, max %d kbps: want 0 < bitrate <= max", l.BitrateKbps, l.MaxBitrateKbps)
	}
	if l.GOP <= 0 {
		return fmt.Errorf("gop %d: want a positive number of frames", l.GOP)
	}
	if l.MaxFrameBytes <= 0 || l.VBVKbits <= 0 {
		return fmt.Errorf("max_frame_bytes %d, vbv_kbits %d: want positive", l.MaxFrameBytes, l.VBVKbits)
	}
	if l.VBVKbits*1000/8 > l.MaxFrameBytes {
		return fmt.Errorf("vbv_kbits %d allows %d-byte frames, more than max_frame_bytes %d", l.VBVKbits, l.VBVKbits*1000/8, l.MaxFrameBytes)
	}
	if l.PayloadType < 96 || l.PayloadType > 127 {
		return fmt.Errorf("payload_type %d: want a dynamic type 96..127", l.PayloadType)
	}
	switch l.Transport {
	case TransportPipe:
		if !containerFits(l.Container, l.Codec) {
			return fmt.Errorf("container %q cannot carry %s on a pipe (annexb: h264/h265, ivf: vp8/vp9/av1, obu: av1)", l.Container, l.Codec)
		}
	case TransportRTP:
		if l.Container != ContainerRTP {
			return fmt.Errorf("container %q with the rtp transport: leave it empty or rtp", l.Container)
		}
		for _, p := range []int{l.Port, l.RTCPPort, l.FeedbackPort} {
			if p <= 0 || p > 65535 {
				return fmt.Errorf("rtp ports %d/%d/%d: port is required and all must be 1..65535", l.Port, l.RTCPPort, l.FeedbackPort)
			}
		}
	default:
		return fmt.Errorf("transport %q: want pipe or rtp", l.Transport)
	}
	return nil
}
