package hwaccel

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"text/template"

	"gopkg.in/yaml.v3"
)

// The backend files are data: adding a backend is adding a YAML file.
//
//go:embed backends/*.yaml
var backendFS embed.FS

// backendSpec is one backends/<name>-<tool>.yaml file. String fields marked
// "template" are text/template sources; their output is split into lines and
// every non-blank line becomes one argv element.
type backendSpec struct {
	Name      string `yaml:"name"`
	Tool      Tool   `yaml:"tool"`
	Preferred bool   `yaml:"preferred"` // the variant used when Config.Tool is empty
	Summary   string `yaml:"summary"`
	// DefaultDevice is Config.Device's default for this backend.
	DefaultDevice string               `yaml:"default_device"`
	Inputs        []InputKind          `yaml:"inputs"`
	Codecs        map[Codec]*codecSpec `yaml:"codecs"`
	Probe         probeSpec            `yaml:"probe"`
	Keyframes     string               `yaml:"keyframes"` // how an IDR can be had besides the GOP, for the docs
	Init          string               `yaml:"init"`      // template: argv before the input (ffmpeg)
	DecodeMJPEG   string               `yaml:"decode_mjpeg"`
	Upload        string               `yaml:"upload"` // template: once on the capture
	Scale         string               `yaml:"scale"`  // template: once per layer
	templates     map[string]*template.Template
}

type codecSpec struct {
	Encoder   string `yaml:"encoder"` // ffmpeg encoder or GStreamer element
	MaxWidth  int    `yaml:"max_width"`
	MaxHeight int    `yaml:"max_height"`
	Encode    string `yaml:"encode"` // template: encoder argv per layer
}

type probeSpec struct {
	// Devices are globs; at least one must match for the backend to be a
	// candidate (none listed: always).
	Devices []string `yaml:"devices"`
	// Filters are FFmpeg filters the pipeline needs.
	Filters []string `yaml:"filters"`
	// Elements are GStreamer elements the pipeline needs besides encoders.
	Elements []string `yaml:"elements"`
}

// toolSpec is backends/<tool>.yaml: what all backends of a tool share.
type toolSpec struct {
	Tool   Tool                 `yaml:"tool"`
	Head   string               `yaml:"head"`   // template: executable and global options
	Inputs map[InputKind]string `yaml:"inputs"` // template per input kind
	Branch string               `yaml:"branch"` // template: start of a layer's chain (gstreamer)
	// Outputs per "pipe_<container>", "rtp" and "discard" (probe).
	Outputs map[string]string `yaml:"outputs"`
	// Pay is per codec what goes before the rtp output; a codec missing here
	// cannot be sent as RTP by this tool.
	Pay       map[Codec]string `yaml:"pay"`
	templates map[string]*template.Template
}

type catalog struct {
	tools    map[Tool]*toolSpec
	backends []*backendSpec // sorted by name, then tool
}

var loadCatalog = sync.OnceValues(func() (*catalog, error) { return parseCatalog(backendFS) })

var templateFuncs = template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
	"div": func(a, b int) int { return a / b },
	// GStreamer caps call the browsers' H.264 baseline constrained-baseline.
	"gstProfile": func(p string) string {
		if p == "baseline" {
			return "constrained-baseline"
		}
		return p
	},
}

func parseCatalog(fsys fs.FS) (*catalog, error) {
	files, err := fs.Glob(fsys, "backends/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("hwaccel: list backends: %w", err)
	}
	c := &catalog{tools: map[Tool]*toolSpec{}}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("hwaccel: read %s: %w", f, err)
		}
		base := strings.TrimSuffix(path.Base(f), ".yaml")
		if base == string(ToolFFmpeg) || base == string(ToolGStreamer) {
			t := &toolSpec{}
			if err := decodeStrict(b, t); err != nil {
				return nil, fmt.Errorf("hwaccel: parse %s: %w", f, err)
			}
			if err := t.compile(base); err != nil {
				return nil, err
			}
			c.tools[t.Tool] = t
			continue
		}
		s := &backendSpec{}
		if err := decodeStrict(b, s); err != nil {
			return nil, fmt.Errorf("hwaccel: parse %s: %w", f, err)
		}
		if err := s.compile(base); err != nil {
			return nil, err
		}
		c.backends = append(c.backends, s)
	}
	slices.SortFunc(c.backends, func(a, b *backendSpec) int {
		return strings.Compare(a.Name+"/"+string(a.Tool), b.Name+"/"+string(b.Tool))
	})
	for _, s := range c.backends {
		if c.tools[s.Tool] == nil {
			return nil, fmt.Errorf("hwaccel: backend %s: unknown tool %q", s.Name, s.Tool)
		}
	}
	return c, nil
}

func decodeStrict(b []byte, v any) error {
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	return d.Decode(v)
}

func compileAll(file string, srcs map[string]string) (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(srcs))
	for name, src := range srcs {
		t, err := template.New(file + ":" + name).Funcs(templateFuncs).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("hwaccel: backend file %s: %w", file, err)
		}
		out[name] = t
	}
	return out, nil
}

func (t *toolSpec) compile(file string) error {
	srcs := map[string]string{"head": t.Head, "branch": t.Branch}
	for k, v := range t.Inputs {
		srcs["input/"+string(k)] = v
	}
	for k, v := range t.Outputs {
		switch k {
		case "pipe_annexb", "pipe_ivf", "pipe_obu", "rtp", "discard":
		default:
			return fmt.Errorf("hwaccel: backend file %s: unknown output %q", file, k)
		}
		srcs["output/"+k] = v
	}
	for k, v := range t.Pay {
		srcs["pay/"+string(k)] = v
	}
	var err error
	t.templates, err = compileAll(file, srcs)
	return err
}

func (s *backendSpec) compile(file string) error {
	if s.Name == "" || s.Tool == "" {
		return fmt.Errorf("hwaccel: backend file %s: name and tool are required", file)
	}
	srcs := map[string]string{"init": s.Init, "decode_mjpeg": s.DecodeMJPEG, "upload": s.Upload, "scale": s.Scale}
	for k, v := range s.Codecs {
		if v == nil || v.Encoder == "" || v.MaxWidth <= 0 || v.MaxHeight <= 0 {
			return fmt.Errorf("hwaccel: backend file %s: codec %s needs encoder, max_width and max_height", file, k)
		}
		srcs["encode/"+string(k)] = v.Encode
	}
	var err error
	s.templates, err = compileAll(file, srcs)
	return err
}

// backend finds a backend variant; tool "" picks the preferred one.
func (c *catalog) backend(name string, tool Tool) (*backendSpec, error) {
	var first *backendSpec
	found := false
	for _, s := range c.backends {
		if s.Name != name {
			continue
		}
		found = true
		if tool == "" && s.Preferred || s.Tool == tool {
			return s, nil
		}
		if first == nil {
			first = s
		}
	}
	if !found {
		return nil, fmt.Errorf("hwaccel: unknown backend %q (have %s)", name, strings.Join(c.names(), ", "))
	}
	if tool == "" {
		return first, nil
	}
	return nil, fmt.Errorf("hwaccel: backend %s has no %s variant", name, tool)
}

func (c *catalog) names() []string {
	var out []string
	for _, s := range c.backends {
		if !slices.Contains(out, s.Name) {
			out = append(out, s.Name)
		}
	}
	return append(out, BackendCustom)
}

// renderLines executes a template and returns its non-blank lines, trimmed,
// as argv elements.
func renderLines(t *template.Template, data any) ([]string, error) {
	if t == nil {
		return nil, nil
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name(), err)
	}
	var out []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, nil
}

// renderString executes a template into one string (lines concatenated),
// for filter graph pieces.
func renderString(t *template.Template, data any) (string, error) {
	lines, err := renderLines(t, data)
	return strings.Join(lines, ""), err
}
