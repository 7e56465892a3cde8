package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"whipgate/certs"
	"whipgate/cmd/config/configtest"
	"whipgate/gateway"
	"whipgate/hwaccel"
	"whipgate/ingest"
	"whipgate/whip/egress"
	"whipgate/whip/rtc"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "every section",
			yaml: "listen: 0.0.0.0:8443\napi_token: tok\nshutdown_grace: 4s\n" +
				"tls: {mode: self-signed, names: [box.lan]}\n" +
				"webrtc: {udp_listen: 0.0.0.0:9000, public_ips: [203.0.113.7]}\n" +
				"streams:\n  box: {publish_token: key, view_token: watch, takeover: true}\n" +
				"egress:\n  - {id: sora, stream: box, url: https://example.com/whip, token: t}\n" +
				"test_source: {stream: bars}\n",
			check: func(t *testing.T, c Config) {
				if c.Listen != "0.0.0.0:8443" || c.APIToken != "tok" || c.ShutdownGrace != 4*time.Second {
					t.Errorf("got listen %q, api_token %q, shutdown_grace %v; want 0.0.0.0:8443, tok, 4s", c.Listen, c.APIToken, c.ShutdownGrace)
				}
				if c.TLS.Mode != "self-signed" || !reflect.DeepEqual(c.TLS.Names, []string{"box.lan"}) {
					t.Errorf("got tls %+v, want mode self-signed, names [box.lan]", c.TLS)
				}
				if c.WebRTC.UDPListen != "0.0.0.0:9000" || !reflect.DeepEqual(c.WebRTC.PublicIPs, []string{"203.0.113.7"}) {
					t.Errorf("got webrtc %+v", c.WebRTC)
				}
				if got, want := c.Streams["box"], (StreamConfig{PublishToken: "key", ViewToken: "watch", Takeover: true}); got != want {
					t.Errorf("got stream box %+v, want %+v", got, want)
				}
				if len(c.Egress) != 1 || c.Egress[0].ID != "sora" || c.Egress[0].Token != "t" {
					t.Errorf("got egress %+v, want one entry sora with token t", c.Egress)
				}
				if !c.TestSource.On() || c.TestSource.Stream != "bars" {
					t.Errorf("got test_source %+v, want on with stream bars", c.TestSource)
				}
			},
		},
		{
			// A config file says what runs: without test_source there is none,
			// unlike the embedded default.
			name: "no test source unless the file has one",
			yaml: "listen: 127.0.0.1:9999\n",
			check: func(t *testing.T, c Config) {
				if c.TestSource.On() {
					t.Errorf("got test source on, want off")
				}
			},
		},
		{
			name: "test source switched off",
			yaml: "test_source: {enabled: false}\n",
			check: func(t *testing.T, c Config) {
				if c.TestSource == nil || c.TestSource.On() {
					t.Errorf("got test_source %+v, want present and off", c.TestSource)
				}
			},
		},
		{
			name:  "empty file",
			yaml:  "",
			check: func(t *testing.T, c Config) {},
		},
		{name: "unknown top-level key names key and line", yaml: "listen: 127.0.0.1:8080\n\nlisten_adress: x\n", wantErr: "line 3: field listen_adress not found"},
		{name: "unknown nested key names key and line", yaml: "tls:\n  mode: off\n  modus: acme\n", wantErr: "line 3: field modus not found"},
		{name: "unknown key in a stream", yaml: "streams:\n  box:\n    publish_tokn: x\n", wantErr: "line 3: field publish_tokn not found"},
		{name: "unknown key in an egress entry", yaml: "egress:\n  - stream: box\n    urll: x\n", wantErr: "line 3: field urll not found"},
		{name: "wrong type", yaml: "shutdown_grace: soon\n", wantErr: "line 1: cannot unmarshal"},
		{name: "not YAML", yaml: "listen: [\n", wantErr: "config "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(configtest.WriteFile(t, "whipgate.yaml", tc.yaml))
			configtest.CheckErr(t, err, tc.wantErr)
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	configtest.CheckErr(t, err, "read config")
}

// The shipped examples are what operators copy: each must load strictly and
// validate.
func TestExamplesLoadAndValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("got examples %v (%v), want some", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyDefaults(configtest.Env(nil))
			if c.APIToken == "" && !IsLoopback(c.Listen) {
				c.APIToken = "set-by-the-operator"
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("got %v, want a valid config", err)
			}
		})
	}
}

func TestApplyDefaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     Config
		getenv map[string]string
		check  func(t *testing.T, c Config)
	}{
		{
			name:   "empty config",
			getenv: map[string]string{"XDG_STATE_HOME": "/state"},
			check: func(t *testing.T, c Config) {
				for _, f := range []struct{ what, got, want string }{
					{"listen", c.Listen, "127.0.0.1:8080"},
					{"webrtc.udp_listen", c.WebRTC.UDPListen, "127.0.0.1:8189"},
					{"tls.mode", c.TLS.Mode, certs.ModeOff},
					{"tls.listen_host", c.TLS.ListenHost, "127.0.0.1"},
					{"state_dir", c.StateDir, "/state/whipgate"},
				} {
					if f.got != f.want {
						t.Errorf("got %s %q, want %q", f.what, f.got, f.want)
					}
				}
				if c.TLS.HTTPSPort != 8080 {
					t.Errorf("got tls.https_port %d, want 8080 (the listen port)", c.TLS.HTTPSPort)
				}
				if c.ShutdownGrace != 2500*time.Millisecond {
					t.Errorf("got shutdown_grace %v, want 2.5s", c.ShutdownGrace)
				}
			},
		},
		{
			name: "beyond loopback: self-signed, UDP on the listen host",
			in:   Config{Listen: "0.0.0.0:8443", StateDir: "/s"},
			check: func(t *testing.T, c Config) {
				if c.TLS.Mode != certs.ModeSelfSigned || c.WebRTC.UDPListen != "0.0.0.0:8189" || c.TLS.HTTPSPort != 8443 {
					t.Errorf("got tls.mode %q, udp %q, https_port %d; want self-signed, 0.0.0.0:8189, 8443", c.TLS.Mode, c.WebRTC.UDPListen, c.TLS.HTTPSPort)
				}
				if c.TLS.Dir != filepath.Join("/s", "self-signed") {
					t.Errorf("got tls.dir %q, want it under the state dir", c.TLS.Dir)
				}
			},
		},
		{
			name: "set values stay",
			in: Config{Listen: "127.0.0.1:1", ShutdownGrace: time.Second, StateDir: "/x",
				TLS:    certs.Config{Mode: certs.ModeManual, HTTPSPort: 443, ListenHost: "::1"},
				WebRTC: rtc.Config{UDPListen: "127.0.0.1:2"}},
			check: func(t *testing.T, c Config) {
				if c.Listen != "127.0.0.1:1" || c.ShutdownGrace != time.Second || c.StateDir != "/x" || c.TLS.Mode != certs.ModeManual ||
					c.TLS.HTTPSPort != 443 || c.TLS.ListenHost != "::1" || c.WebRTC.UDPListen != "127.0.0.1:2" {
					t.Errorf("defaults replaced set values: %+v", c)
				}
			},
		},
		{
			name:   "state dir under HOME without XDG_STATE_HOME",
			getenv: map[string]string{"HOME": "/home/op"},
			check: func(t *testing.T, c Config) {
				if want := "/home/op/.local/state/whipgate"; c.StateDir != want {
					t.Errorf("got state_dir %q, want %q", c.StateDir, want)
				}
			},
		},
		{
			name: "state dir in the working directory without HOME",
			check: func(t *testing.T, c Config) {
				if c.StateDir != ".whipgate-state" {
					t.Errorf("got state_dir %q, want .whipgate-state", c.StateDir)
				}
			},
		},
		{
			name: "origin and public URL reach WHIP and WHEP",
			in:   Config{AllowOrigin: "https://ops.lan", PublicURL: "https://box:8443"},
			check: func(t *testing.T, c Config) {
				for _, got := range []string{c.WHEP.AllowOrigin, c.WHIP.AllowOrigin} {
					if got != "https://ops.lan" {
						t.Errorf("got allow_origin %q, want https://ops.lan", got)
					}
				}
				for _, got := range []string{c.WHEP.PublicURL, c.WHIP.PublicURL} {
					if got != "https://box:8443" {
						t.Errorf("got public_url %q, want https://box:8443", got)
					}
				}
			},
		},
		{
			name: "source stream names",
			in:   Config{Encoder: &EncoderConfig{}, TestSource: &TestSourceConfig{}},
			check: func(t *testing.T, c Config) {
				if c.Encoder.Stream != "box" || c.TestSource.Stream != "test" {
					t.Errorf("got hwaccel.stream %q, test_source.stream %q; want box, test", c.Encoder.Stream, c.TestSource.Stream)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.ApplyDefaults(configtest.Env(tc.getenv))
			tc.check(t, c)
		})
	}
}

func TestValidate(t *testing.T) {
	off := false
	// One case per message Validate can return; each starts from a valid
	// config.
	for _, tc := range []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
		notErr  string // a message that must not be among the errors
	}{
		{name: "valid", mutate: func(c *Config) {}},
		{name: "valid beyond loopback with a token", mutate: func(c *Config) { c.Listen, c.APIToken = "0.0.0.0:8443", "tok" }},
		{name: "listen", mutate: func(c *Config) { c.Listen = "8080" }, wantErr: `listen "8080": `},
		{name: "log level", mutate: func(c *Config) { c.LogLevel = "verbose" }, wantErr: `log_level "verbose": want debug, info, warn or error`},
		{name: "log level any case", mutate: func(c *Config) { c.LogLevel = "DEBUG" }},
		{name: "log format", mutate: func(c *Config) { c.LogFormat = "yaml" }, wantErr: `log_format "yaml": want text or json`},
		{name: "log format json", mutate: func(c *Config) { c.LogFormat = "json" }},
		{name: "webrtc", mutate: func(c *Config) { c.WebRTC.PublicIPs = []string{"box"} }, wantErr: `webrtc: public_ips: "box" is not an IP address`},
		{name: "webrtc resend budget", mutate: func(c *Config) { c.WebRTC.NACKResendBudget = 5000 }, wantErr: `webrtc: nack_resend_budget: 5000 % is not between 1 and 1000`},
		{name: "api token beyond loopback", mutate: func(c *Config) { c.Listen = "0.0.0.0:8443" }, wantErr: "listening on 0.0.0.0:8443 beyond loopback needs api_token"},
		{name: "stream name", mutate: func(c *Config) { c.Streams = map[string]StreamConfig{"a/b": {}} }, wantErr: `streams: stream name "a/b"`},
		{name: "egress entry", mutate: func(c *Config) { c.Egress = []egress.Config{{Stream: "test"}} }, wantErr: "egress[0]: egress test: url is required"},
		{
			name: "egress id twice",
			mutate: func(c *Config) {
				e := egress.Config{Stream: "test", URL: "http://127.0.0.1:1/whip"}
				c.Egress = []egress.Config{e, e}
			},
			wantErr: `egress[1]: id "test" used twice (set id)`,
		},
		{name: "hwaccel stream name", mutate: func(c *Config) { c.Encoder = &EncoderConfig{Stream: "a b"} }, wantErr: `hwaccel: stream name "a b"`},
		{
			name: "hwaccel config",
			mutate: func(c *Config) {
				c.Encoder = &EncoderConfig{Stream: "box", Config: hwaccel.Config{Input: hwaccel.InputConfig{Kind: "webcam"}}}
			},
			wantErr: `hwaccel: hwaccel: input kind "webcam"`,
		},
		{name: "hwaccel and test source on one stream", mutate: func(c *Config) { c.Encoder = &EncoderConfig{Stream: "test"} }, wantErr: `hwaccel and test_source both publish stream "test"`},
		{
			name: "hwaccel and a test source that is off may share a name",
			mutate: func(c *Config) {
				c.TestSource.Enabled = &off
				c.Encoder = &EncoderConfig{Stream: "test", Config: hwaccel.Config{Input: hwaccel.InputConfig{Kind: "webcam"}}}
			},
			wantErr: "hwaccel: hwaccel: input kind",
			notErr:  "both publish",
		},
		{name: "test source stream name", mutate: func(c *Config) { c.TestSource.Stream = "ü" }, wantErr: `test_source: stream name "ü"`},
		{
			name:    "test source config",
			mutate:  func(c *Config) { c.TestSource.TestSourceConfig.Main = ingest.TestLayerConfig{Width: 3} },
			wantErr: "test_source: ingest: test source main: h264synth: width 3",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{TestSource: &TestSourceConfig{}}
			tc.mutate(&c)
			c.ApplyDefaults(configtest.Env(nil))
			err := c.Validate()
			configtest.CheckErr(t, err, tc.wantErr)
			if tc.notErr != "" && err != nil && strings.Contains(err.Error(), tc.notErr) {
				t.Fatalf("got %q, want nothing about %q", err, tc.notErr)
			}
		})
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	c := Config{Listen: "8080", Streams: map[string]StreamConfig{"": {}}}
	err := c.Validate()
	for _, want := range []string{`listen "8080"`, `stream name ""`} {
		configtest.CheckErr(t, err, want)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.1.2.3:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{":8080", false},
		{"192.168.1.10:8080", false},
		{"box.lan:8080", false},
		{"127.0.0.1", false}, // no port: not a listen address
	} {
		if got := IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%q): got %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestValidStreamName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wantErr string
	}{
		{"test", ""},
		{"Box-1_main.v2~x", ""},
		{strings.Repeat("a", 255), ""},
		{"", "must be 1 to 255 characters"},
		{strings.Repeat("a", 256), "must be 1 to 255 characters"},
		{"a/b", "only letters, digits and -_.~ are allowed"},
		{"a b", "only letters, digits and -_.~ are allowed"},
		{"a%20b", "only letters, digits and -_.~ are allowed"},
		{"straße", "only letters, digits and -_.~ are allowed"},
		{"..?", "only letters, digits and -_.~ are allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			configtest.CheckErr(t, gateway.ValidStreamName(tc.name), tc.wantErr)
		})
	}
}
