package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"whipgate/cmd/config/configtest"
)

func TestEnvNames(t *testing.T) {
	byKey := map[string][]string{}
	for _, v := range envVars() {
		byKey[v.key] = append(byKey[v.key], v.name)
	}
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"listen", []string{"WHIPGATE_LISTEN"}},
		{"api_token", []string{"WHIPGATE_API_TOKEN"}},
		{"shutdown_grace", []string{"WHIPGATE_SHUTDOWN_GRACE"}},
		{"tls.mode", []string{"WHIPGATE_TLS_MODE"}},
		{"webrtc.udp_listen", []string{"WHIPGATE_WEBRTC_UDP_LISTEN", "WHIPGATE_UDP_LISTEN"}},
		{"webrtc.public_ips", []string{"WHIPGATE_WEBRTC_PUBLIC_IPS"}},
		{"whip.gather_timeout", []string{"WHIPGATE_WHIP_GATHER_TIMEOUT"}}, // inline session.EndpointConfig
		{"whip.stale_after", []string{"WHIPGATE_WHIP_STALE_AFTER"}},
		{"hwaccel.stream", []string{"WHIPGATE_HWACCEL_STREAM"}},
		{"hwaccel.backend", []string{"WHIPGATE_HWACCEL_BACKEND"}}, // inline hwaccel.Config
		{"hwaccel.input.device", []string{"WHIPGATE_HWACCEL_INPUT_DEVICE"}},
		{"test_source.enabled", []string{"WHIPGATE_TEST_SOURCE_ENABLED"}},
		{"test_source.main.width", []string{"WHIPGATE_TEST_SOURCE_MAIN_WIDTH"}},
		// Maps and lists of structs only come from the file.
		{"streams", nil},
		{"egress", nil},
		{"webrtc.ice_servers", nil},
		{"hwaccel.layers", nil},
		{"hwaccel.fallback", nil},
	} {
		if got := byKey[tc.key]; !slices.Equal(got, tc.want) {
			t.Errorf("key %s: got variables %q, want %q", tc.key, got, tc.want)
		}
	}
	for key := range byKey {
		for _, fileOnly := range []string{"streams", "egress", "webrtc.ice_servers", "hwaccel.layers", "hwaccel.fallback"} {
			if key == fileOnly || strings.HasPrefix(key, fileOnly+".") {
				t.Errorf("got a variable for %s, want none under %s", key, fileOnly)
			}
		}
	}
}

// Two keys must never share a variable, and an alias must not shadow a
// derived name (WHIPGATE_CONFIG is the config file's).
func TestEnvNamesUnique(t *testing.T) {
	seen := map[string]string{EnvConfigFile: "the config file"}
	for _, v := range envVars() {
		if other, dup := seen[v.name]; dup {
			t.Errorf("%s names both %s and %s", v.name, other, v.key)
		}
		seen[v.name] = v.key
	}
}

// Each variable sets exactly what its YAML key sets in a file: derived
// names and yaml.v3 read the same tags.
func TestEnvMatchesFile(t *testing.T) {
	for _, v := range envVars() {
		t.Run(v.name, func(t *testing.T) {
			field := reflect.TypeFor[Config]()
			var ft reflect.Type
			for i, x := range v.index {
				if i > 0 && field.Kind() == reflect.Pointer {
					field = field.Elem()
				}
				ft = field.Field(x).Type
				field = ft
			}
			envValue, yamlValue := sampleValue(t, ft)
			var fromEnv Config
			if err := ApplyEnv(&fromEnv, configtest.Env(map[string]string{v.name: envValue})); err != nil {
				t.Fatal(err)
			}
			keys := strings.Split(v.key, ".")
			var doc strings.Builder
			for i, k := range keys {
				fmt.Fprintf(&doc, "%s%s:", strings.Repeat("  ", i), k)
				if i < len(keys)-1 {
					doc.WriteString("\n")
				}
			}
			doc.WriteString(" " + yamlValue + "\n")
			fromFile, err := Load(configtest.WriteFile(t, "c.yaml", doc.String()))
			if err != nil {
				t.Fatalf("%v\n%s", err, doc.String())
			}
			if !reflect.DeepEqual(fromEnv, fromFile) {
				t.Fatalf("%s=%s gave\n%+v\nwant what the file\n%s\ngives:\n%+v", v.name, envValue, fromEnv, doc.String(), fromFile)
			}
			if reflect.DeepEqual(fromEnv, Config{}) {
				t.Fatalf("%s=%s changed nothing", v.name, envValue)
			}
		})
	}
}

// sampleValue is a non-zero value for a field of type t, as a variable and
// as YAML.
func sampleValue(t *testing.T, ft reflect.Type) (string, string) {
	t.Helper()
	if ft == reflect.TypeFor[time.Duration]() {
		return "3s", "3s"
	}
	switch ft.Kind() {
	case reflect.Pointer:
		return sampleValue(t, ft.Elem())
	case reflect.Slice:
		e, y := sampleValue(t, ft.Elem())
		return e + ", " + e, "[" + y + ", " + y + "]"
	case reflect.String:
		return "x1", "x1"
	case reflect.Bool:
		return "true", "true"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "7", "7"
	case reflect.Float32, reflect.Float64:
		return "0.5", "0.5"
	}
	t.Fatalf("no sample for %s", ft)
	return "", ""
}

func TestApplyEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      Config
		env     map[string]string
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "scalars of each kind",
			env: map[string]string{
				"WHIPGATE_LISTEN":               "0.0.0.0:8443",
				"WHIPGATE_OPEN_PUBLISH":         "true",
				"WHIPGATE_WEBRTC_SOCKET_BUFFER": "8388608",
				"WHIPGATE_SHUTDOWN_GRACE":       "4s",
				"WHIPGATE_TLS_MODE":             "self-signed",
			},
			check: func(t *testing.T, c Config) {
				if c.Listen != "0.0.0.0:8443" || !c.OpenPublish || c.WebRTC.SocketBuffer != 8<<20 || c.ShutdownGrace != 4*time.Second || c.TLS.Mode != "self-signed" {
					t.Errorf("got listen %q, open_publish %v, socket_buffer %d, shutdown_grace %v, tls.mode %q",
						c.Listen, c.OpenPublish, c.WebRTC.SocketBuffer, c.ShutdownGrace, c.TLS.Mode)
				}
			},
		},
		{
			name: "lists are comma-separated, spaces trimmed",
			env:  map[string]string{"WHIPGATE_WEBRTC_PUBLIC_IPS": "203.0.113.7, 198.51.100.2,", "WHIPGATE_TLS_NAMES": ","},
			check: func(t *testing.T, c Config) {
				if want := []string{"203.0.113.7", "198.51.100.2"}; !slices.Equal(c.WebRTC.PublicIPs, want) {
					t.Errorf("got public_ips %q, want %q", c.WebRTC.PublicIPs, want)
				}
				if c.TLS.Names == nil || len(c.TLS.Names) != 0 {
					t.Errorf("got tls.names %q, want an empty list", c.TLS.Names)
				}
			},
		},
		{
			name: "an empty variable is unset",
			in:   Config{Listen: "127.0.0.1:9000"},
			env:  map[string]string{"WHIPGATE_LISTEN": ""},
			check: func(t *testing.T, c Config) {
				if c.Listen != "127.0.0.1:9000" {
					t.Errorf("got listen %q, want the file's 127.0.0.1:9000", c.Listen)
				}
			},
		},
		{
			name: "the alias",
			env:  map[string]string{"WHIPGATE_UDP_LISTEN": "0.0.0.0:9000"},
			check: func(t *testing.T, c Config) {
				if c.WebRTC.UDPListen != "0.0.0.0:9000" {
					t.Errorf("got webrtc.udp_listen %q, want 0.0.0.0:9000", c.WebRTC.UDPListen)
				}
			},
		},
		{
			name: "a variable adds its section",
			env:  map[string]string{"WHIPGATE_TEST_SOURCE_STREAM": "bars", "WHIPGATE_HWACCEL_WATCHDOG_LOW_FPS": "0.5"},
			check: func(t *testing.T, c Config) {
				if !c.TestSource.On() || c.TestSource.Stream != "bars" {
					t.Errorf("got test_source %+v, want on with stream bars", c.TestSource)
				}
				if c.Encoder == nil || c.Encoder.Watchdog.LowFPS != 0.5 {
					t.Errorf("got hwaccel %+v, want watchdog.low_fps 0.5", c.Encoder)
				}
			},
		},
		{
			name: "a variable keeps the rest of its section",
			in:   Config{TestSource: &TestSourceConfig{}},
			env:  map[string]string{"WHIPGATE_TEST_SOURCE_ENABLED": "false", "WHIPGATE_TEST_SOURCE_PREVIEW_FPS": "15"},
			check: func(t *testing.T, c Config) {
				if c.TestSource == nil || c.TestSource.On() || c.TestSource.Preview.FPS != 15 {
					t.Errorf("got test_source %+v, want off with preview fps 15", c.TestSource)
				}
			},
		},
		{name: "bad duration", env: map[string]string{"WHIPGATE_SHUTDOWN_GRACE": "abc"}, wantErr: []string{`WHIPGATE_SHUTDOWN_GRACE: "abc" is not a duration`}},
		{name: "bad bool", env: map[string]string{"WHIPGATE_OPEN_PUBLISH": "yes please"}, wantErr: []string{`WHIPGATE_OPEN_PUBLISH: "yes please" is not true or false`}},
		{name: "bad integer", env: map[string]string{"WHIPGATE_TLS_HTTP_PORT": "80a"}, wantErr: []string{`WHIPGATE_TLS_HTTP_PORT: "80a" is not an integer`}},
		{name: "bad float", env: map[string]string{"WHIPGATE_HWACCEL_WATCHDOG_LOW_FPS": "half"}, wantErr: []string{`WHIPGATE_HWACCEL_WATCHDOG_LOW_FPS: "half" is not a number`}},
		{
			name:    "every bad variable is named",
			env:     map[string]string{"WHIPGATE_SHUTDOWN_GRACE": "abc", "WHIPGATE_TLS_STAGING": "maybe"},
			wantErr: []string{"WHIPGATE_SHUTDOWN_GRACE", "WHIPGATE_TLS_STAGING"},
		},
		{
			name:    "alias and name both set",
			env:     map[string]string{"WHIPGATE_UDP_LISTEN": "0.0.0.0:9000", "WHIPGATE_WEBRTC_UDP_LISTEN": "0.0.0.0:9001"},
			wantErr: []string{"WHIPGATE_WEBRTC_UDP_LISTEN and WHIPGATE_UDP_LISTEN are both set"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			err := ApplyEnv(&c, configtest.Env(tc.env))
			if len(tc.wantErr) == 0 {
				configtest.CheckErr(t, err, "")
			}
			for _, want := range tc.wantErr {
				configtest.CheckErr(t, err, want)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
