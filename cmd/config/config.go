// Package config is whipgate's configuration: the Config types, strict
// YAML loading, the WHIPGATE_* environment, secrets read from files,
// defaults and validation. It says what a configuration is and whether it
// is valid; package cmd runs one (Start, reload, the command line's flags).
//
// It imports the library packages whose settings Config nests (certs,
// gateway, hwaccel, ingest, whip, whep and their subpackages) and
// nothing of package cmd: cmd imports config, never the reverse
// (internal/deptest checks this). Its own code reads no HTTP request and
// starts nothing; the environment comes in only through a getenv func.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"whipgate/certs"
	"whipgate/gateway"
	"whipgate/hwaccel"
	"whipgate/ingest"
	"whipgate/whep"
	"whipgate/whip"
	"whipgate/whip/egress"
	"whipgate/whip/rtc"
	"whipgate/whip/session"
)

// Config is whipgate's whole configuration: a YAML file, then flags on top.
// The zero value of every field means its default.
type Config struct {
	// Listen is the HTTP(S) address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// PublicURL is the base URL clients see ("https://box.example:8443"),
	// used for Location headers. Default: from each request's Host.
	PublicURL string `yaml:"public_url"`
	// APIToken protects /api/v1 with a Bearer token. Required when listening
	// beyond loopback; optional on loopback.
	APIToken string `yaml:"api_token"`
	// APITokenFile is a file that holds APIToken (a systemd credential, a
	// container secret), read at cmd.Start, the trailing newline trimmed.
	// Giving both is an error.
	APITokenFile string `yaml:"api_token_file"`
	// OpenPublish allows WHIP publishing without a stream key beyond
	// loopback. On loopback publishing is open by default.
	OpenPublish bool `yaml:"open_publish"`
	// AllowOrigin is the CORS origin for WHIP/WHEP. Default "*".
	AllowOrigin string `yaml:"allow_origin"`
	// StateDir keeps state across restarts (egress created through the API,
	// certificates). Default $XDG_STATE_HOME/whipgate or ~/.local/state/whipgate.
	StateDir string `yaml:"state_dir"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json or text. Default text.
	LogFormat string `yaml:"log_format"`
	// ReadyGrace is how long an egress may be down (starting, or a brief
	// reconnect) or the encoder starting before /readyz says not ready.
	// Default 5 s.
	ReadyGrace time.Duration `yaml:"ready_grace"`
	// ShutdownGrace bounds the graceful stop. Default 2.5 s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// HTTP bounds what an HTTP client may cost and says whom the control
	// API trusts (timeouts, header size, connections, allowed hosts and
	// origins).
	HTTP HTTPConfig `yaml:"http"`
	// Limits bound sessions, offers, candidates and egresses.
	Limits LimitsConfig `yaml:"limits"`

	// TLS says where the HTTPS certificate comes from. Default: off on
	// loopback, self-signed elsewhere. tls.https_port defaults to Listen's
	// port rather than 443.
	TLS    certs.Config      `yaml:"tls"`
	WebRTC rtc.Config        `yaml:"webrtc"`
	Hub    gateway.Config    `yaml:"hub"`
	WHEP   whep.Config       `yaml:"whep"`
	WHIP   whip.ServerConfig `yaml:"whip"`
	// Streams configures named streams: tokens, takeover. A configured
	// stream stays listed even while nothing publishes it.
	Streams map[string]StreamConfig `yaml:"streams"`
	// Encoder runs a supervised encoder pipeline (capture → hardware
	// convert → encode main + preview) and publishes it. Default none.
	Encoder *EncoderConfig `yaml:"hwaccel"`
	// Egress publishes streams to WHIP targets (Sora, any WHIP ingest) from
	// boot on. Egress created through the API are added to these. In a
	// file an entry may give token_file instead of token: Load reads
	// it (see fileConfig), so the key is not in egress.Config, which the
	// API's JSON shares.
	Egress []egress.Config `yaml:"-"`
	// TestSource is the built-in synthetic stream. On by default when no
	// config file is given.
	TestSource *TestSourceConfig `yaml:"test_source"`
}

// LimitsConfig is every limit but the HTTP server's: the session
// registry's (whip/session.Limits) and the egress count.
type LimitsConfig struct {
	session.Limits `yaml:",inline"`
	// MaxEgress caps the egresses, configured and API-created. Default 32.
	MaxEgress int `yaml:"max_egress"`
}

// StreamConfig is one stream's settings.
type StreamConfig struct {
	// PublishToken is the WHIP stream key (Bearer token).
	PublishToken string `yaml:"publish_token"`
	// PublishTokenFile is a file that holds PublishToken, read at cmd.Start.
	PublishTokenFile string `yaml:"publish_token_file"`
	// ViewToken is the Bearer token WHEP viewers need. Default none.
	ViewToken string `yaml:"view_token"`
	// ViewTokenFile is a file that holds ViewToken, read at cmd.Start.
	ViewTokenFile string `yaml:"view_token_file"`
	// Takeover lets a new WHIP publisher replace a live one instead of
	// getting 409.
	Takeover bool `yaml:"takeover"`
}

// TestSourceConfig configures the built-in test pattern.
type TestSourceConfig struct {
	// Enabled turns it on. Default true when the section is present.
	Enabled                 *bool `yaml:"enabled"`
	ingest.TestSourceConfig `yaml:",inline"`
}

// EncoderConfig is the hwaccel pipeline plus the stream it publishes.
type EncoderConfig struct {
	// Stream is the stream name. Default "box".
	Stream         string `yaml:"stream"`
	hwaccel.Config `yaml:",inline"`
}

// On reports whether the test source runs.
func (t *TestSourceConfig) On() bool { return t != nil && (t.Enabled == nil || *t.Enabled) }

// Load reads a YAML file strictly: an unknown key is an error that
// names the key and its line. An egress entry's token_file is read here.
func Load(path string) (Config, error) {
	c, tokenFiles, err := decodeFile(path)
	if err != nil {
		return c, err
	}
	var errs []error
	for i, f := range tokenFiles {
		if f == "" {
			continue
		}
		if c.Egress[i].Token != "" {
			errs = append(errs, fmt.Errorf("config %s: egress[%d]: token and token_file are both set; give one", path, i))
			continue
		}
		if c.Egress[i].Token, err = readSecretFile(f); err != nil {
			errs = append(errs, fmt.Errorf("config %s: egress[%d]: token_file: %w", path, i, err))
		}
	}
	return c, errors.Join(errs...)
}

// fileConfig is Config as a file spells it: egress entries may have a
// token_file.
type fileConfig struct {
	Config `yaml:",inline"`
	Egress []struct {
		egress.Config `yaml:",inline"`
		TokenFile     string `yaml:"token_file"`
	} `yaml:"egress"`
}

// DecodeFile reads a YAML file strictly, as Load does, but leaves each
// egress entry's token_file unread (its token stays as the file gives it).
// hwaccel probe uses it instead of Load: the probe needs no egress secret,
// and may run where it cannot read one.
func DecodeFile(path string) (Config, error) {
	c, _, err := decodeFile(path)
	return c, err
}

// decodeFile reads a YAML file strictly; tokenFiles[i] is egress entry
// i's token_file.
func decodeFile(path string) (c Config, tokenFiles []string, _ error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, nil, fmt.Errorf("read config: %w", err)
	}
	var f fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return c, nil, fmt.Errorf("config %s: %w", path, err)
	}
	c = f.Config
	for _, e := range f.Egress {
		c.Egress = append(c.Egress, e.Config)
		tokenFiles = append(tokenFiles, e.TokenFile)
	}
	return c, tokenFiles, nil
}

// readSecretFile reads a token from a file, such as a systemd credential
// or a container secret. The trailing newline that editors and echo add is
// not part of it; an empty file is an error, since an empty token would
// leave a stream or the API open.
func readSecretFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(raw), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ReadSecretFiles reads api_token_file and the streams' token files into
// their values. cmd.Start calls it once, on its own copy of the config
// (reload on the next one); the *_file settings stay, so that the welcome
// text can point at the file instead of printing the secret.
func (c *Config) ReadSecretFiles() error {
	var errs []error
	read := func(what string, value *string, file string) {
		if file == "" {
			return
		}
		if *value != "" {
			errs = append(errs, fmt.Errorf("%s and %s_file are both set; give one", what, what))
			return
		}
		var err error
		if *value, err = readSecretFile(file); err != nil {
			errs = append(errs, fmt.Errorf("%s_file: %w", what, err))
		}
	}
	read("api_token", &c.APIToken, c.APITokenFile)
	// The map is the caller's too: change a copy.
	streams := maps.Clone(c.Streams)
	for _, name := range slices.Sorted(maps.Keys(streams)) {
		sc := streams[name]
		read("streams."+name+".publish_token", &sc.PublishToken, sc.PublishTokenFile)
		read("streams."+name+".view_token", &sc.ViewToken, sc.ViewTokenFile)
		streams[name] = sc
	}
	c.Streams = streams
	return errors.Join(errs...)
}

// Default is what runs with no config file: loopback, the test stream.
func Default() Config {
	return Config{TestSource: &TestSourceConfig{}}
}

// ApplyDefaults fills every zero setting with its default, as each field's
// doc says. getenv is asked only for where the state directory goes
// (XDG_STATE_HOME, HOME); the WHIPGATE_* variables are ApplyEnv's.
func (c *Config) ApplyDefaults(getenv func(string) string) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.WebRTC.UDPListen == "" {
		host, _, _ := net.SplitHostPort(c.Listen)
		c.WebRTC.UDPListen = net.JoinHostPort(host, "8189")
	}
	if c.TLS.Mode == "" {
		c.TLS.Mode = certs.DefaultMode(c.Listen)
	}
	// The certs Manager redirects plain HTTP to https_port and expects
	// TLS-ALPN-01 challenges there, so it must be the port we serve HTTPS on,
	// not 443 whenever Listen says otherwise.
	if host, port, err := net.SplitHostPort(c.Listen); err == nil {
		if n, err := strconv.Atoi(port); err == nil && n > 0 && c.TLS.HTTPSPort == 0 {
			c.TLS.HTTPSPort = n
		}
		// The ACME HTTP-01 listener binds where the server does, not on
		// every interface of a box that listens on one.
		if c.TLS.ListenHost == "" {
			c.TLS.ListenHost = host
		}
	}
	c.HTTP.applyDefaults()
	c.Limits.ApplyDefaults()
	def(&c.Limits.MaxEgress, 32)
	def(&c.ReadyGrace, 5*time.Second)
	def(&c.ShutdownGrace, 2500*time.Millisecond)
	if c.StateDir == "" {
		c.StateDir = certs.StateDir(getenv)
		if c.StateDir == "" {
			c.StateDir = ".whipgate-state"
		}
	}
	c.TLS = c.TLS.WithStateDir(c.StateDir)
	if c.WHEP.AllowOrigin == "" {
		c.WHEP.AllowOrigin = c.AllowOrigin
	}
	if c.WHEP.PublicURL == "" {
		c.WHEP.PublicURL = c.PublicURL
	}
	if c.WHIP.AllowOrigin == "" {
		c.WHIP.AllowOrigin = c.AllowOrigin
	}
	if c.WHIP.PublicURL == "" {
		c.WHIP.PublicURL = c.PublicURL
	}
	if e := c.Encoder; e != nil && e.Stream == "" {
		e.Stream = "box"
	}
	if t := c.TestSource; t != nil && t.Stream == "" {
		t.Stream = "test"
	}
}

// Validate checks the configuration after defaults.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Egress) > c.Limits.MaxEgress {
		errs = append(errs, fmt.Errorf("egress: %d entries, more than limits.max_egress (%d)", len(c.Egress), c.Limits.MaxEgress))
	}
	if err := c.WebRTC.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("webrtc: %w", err))
	}
	// cmd's newLogger would fall back to info and text without a word: a
	// typo in WHIPGATE_LOG_LEVEL must not hide the debug log someone asked
	// for.
	var level slog.Level
	if c.LogLevel != "" && level.UnmarshalText([]byte(c.LogLevel)) != nil {
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	if !IsLoopback(c.Listen) && c.APIToken == "" {
		errs = append(errs, fmt.Errorf("listening on %s beyond loopback needs api_token (or api_token_file, WHIPGATE_API_TOKEN, -api-token) to protect the control API", c.Listen))
	}
	for name := range c.Streams {
		if err := gateway.ValidStreamName(name); err != nil {
			errs = append(errs, fmt.Errorf("streams: %w", err))
		}
	}
	ids := map[string]bool{}
	for i, e := range c.Egress {
		if err := e.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("egress[%d]: %w", i, err))
		}
		id := e.EffectiveID()
		if ids[id] {
			errs = append(errs, fmt.Errorf("egress[%d]: id %q used twice (set id)", i, id))
		}
		ids[id] = true
	}
	if e := c.Encoder; e != nil {
		if err := gateway.ValidStreamName(e.Stream); err != nil {
			errs = append(errs, fmt.Errorf("hwaccel: %w", err))
		}
		if err := e.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hwaccel: %w", err))
		}
		if t := c.TestSource; t.On() && t.Stream == e.Stream {
			errs = append(errs, fmt.Errorf("hwaccel and test_source both publish stream %q", e.Stream))
		}
	}
	if t := c.TestSource; t.On() {
		if err := gateway.ValidStreamName(t.Stream); err != nil {
			errs = append(errs, fmt.Errorf("test_source: %w", err))
		}
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("test_source: %w", err))
		}
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether a listen address is on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
