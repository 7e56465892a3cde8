package hwaccel

import (
	"reflect"
	"strings"
	"testing"
)

// Strings that reach an encoder's argv refuse control characters; the
// error names the field by its YAML path.
func TestValidateRefusesControlCharacters(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"device newline", Config{Backend: "vaapi", Device: "/dev/dri/renderD128\n"}, `hwaccel: device "/dev/dri/renderD128\n": control character 0x0a at byte 19`},
		{"input device", Config{Input: InputConfig{Kind: InputV4L2, Device: "/dev/video0\x00"}}, `hwaccel: input.device "/dev/video0\x00": control character 0x00`},
		{"input mode escape", Config{Input: InputConfig{Kind: InputDeckLink, Mode: "8k60\x1b[2J"}}, `hwaccel: input.mode "8k60\x1b[2J": control character 0x1b`},
		{"delete", Config{FFmpeg: "ffmpeg\x7f"}, `hwaccel: ffmpeg "ffmpeg\x7f": control character 0x7f`},
		{"tab", Config{GstLaunch: "gst-launch-1.0\t"}, `hwaccel: gst_launch "gst-launch-1.0\t": control character 0x09`},
		{"gst inspect", Config{GstInspect: "\rgst-inspect-1.0"}, `hwaccel: gst_inspect "\rgst-inspect-1.0": control character 0x0d at byte 0`},
		{"layer name", Config{Layers: []LayerConfig{{}, {Name: "pre\nview"}}}, `hwaccel: layers[1].name "pre\nview"`},
		{"layer profile", Config{Layers: []LayerConfig{{Profile: "high\x0b"}}}, `hwaccel: layers[0].profile "high\v"`},
		{"custom command", Config{Backend: "custom", Custom: CustomConfig{Command: []string{"enc", "-o", "pipe:3\n"}}}, `hwaccel: custom.command[2] "pipe:3\n"`},
		{"fallback backend", Config{Fallback: []FallbackConfig{{Backend: "vaapi\n"}}}, `hwaccel: fallback[0].backend "vaapi\n"`},
		{"fallback layer", Config{Fallback: []FallbackConfig{{Backend: "vaapi", Layers: []LayerConfig{{Name: "x\x01"}}}}}, `hwaccel: fallback[0].layers[0].name "x\x01"`},
		{"codec", Config{Layers: []LayerConfig{{Codec: "h264\n"}}}, `hwaccel: layers[0].codec "h264\n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, tc.cfg, tc.want)
			if _, err := BuildBackend(tc.cfg, BackendSoftware, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("BuildBackend() = %v, want an error containing %s", err, tc.want)
			}
		})
	}
	// Printable text, UTF-8 included, passes.
	ok := Config{Input: InputConfig{Kind: InputDeckLink, Device: "DeckLink 8K Pro (1) – Büro", Mode: "hp30"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate() of printable strings = %v, want nil", err)
	}
}

// Every string field of Config, found by reflection, is checked: a field
// added later cannot slip past.
func TestValidateChecksEveryString(t *testing.T) {
	base := Config{
		Layers:   []LayerConfig{{}},
		Fallback: []FallbackConfig{{Backend: "vaapi", Layers: []LayerConfig{{}}}},
		Custom:   CustomConfig{Command: []string{"enc"}},
	}
	var paths []string
	var visit func(v reflect.Value, path string)
	visit = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.String:
			paths = append(paths, path)
		case reflect.Slice:
			for i := range v.Len() {
				visit(v.Index(i), path+"["+string(rune('0'+i))+"]")
			}
		case reflect.Struct:
			for i := range v.NumField() {
				name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
				if path != "" {
					name = path + "." + name
				}
				visit(v.Field(i), name)
			}
		}
	}
	visit(reflect.ValueOf(base), "")
	if len(paths) < 20 {
		t.Fatalf("found only %d string fields: %v", len(paths), paths)
	}
	for _, path := range paths {
		cfg := cloneConfig(base)
		set(reflect.ValueOf(&cfg).Elem(), path, "bad\x1b")
		err := cfg.Validate()
		if want := "hwaccel: " + path + ` "bad\x1b": control character`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s with an escape: Validate() = %v, want an error containing %s", path, err, want)
		}
	}
}

func cloneConfig(c Config) Config {
	c.Layers = append([]LayerConfig(nil), c.Layers...)
	c.Fallback = append([]FallbackConfig(nil), c.Fallback...)
	for i := range c.Fallback {
		c.Fallback[i].Layers = append([]LayerConfig(nil), c.Fallback[i].Layers...)
	}
	c.Custom.Command = append([]string(nil), c.Custom.Command...)
	return c
}

// set stores s in the string at path ("fallback[0].layers[0].name").
func set(v reflect.Value, path, s string) {
	for part := range strings.SplitSeq(path, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
				v = v.Field(i)
				break
			}
		}
		if indexed {
			v = v.Index(int(idx[0] - '0'))
		}
	}
	v.SetString(s)
}
