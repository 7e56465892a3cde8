package certs

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"

	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{"zero value is off", Config{}, ""},
		{"off", Config{Mode: ModeOff}, ""},
		{"unknown mode", Config{Mode: "letsencrypt"}, `unknown mode "letsencrypt"`},
		{"acme without domains", Config{Mode: ModeACME, Storage: "/s"}, "at least one domain"},
		{"acme without storage", Config{Mode: ModeACME, Domains: []string{"a.example"}}, "needs storage"},
		{"acme", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s"}, ""},
		{"acme with an IP", Config{Mode: ModeACME, Domains: []string{"203.0.113.7"}, Storage: "/s"}, ""},
		{"acme wildcard", Config{Mode: ModeACME, Domains: []string{"*.a.example"}, Storage: "/s"}, "DNS-01"},
		{"acme URL as domain", Config{Mode: ModeACME, Domains: []string{"https://a.example"}, Storage: "/s"}, "not a URL"},
		{"acme domain with port", Config{Mode: ModeACME, Domains: []string{"a.example:443"}, Storage: "/s"}, "without port"},
		{"acme staging and ca", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s", Staging: true, CA: "https://ca.example/dir"}, "choose one"},
		{"acme http ca", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s", CA: "http://ca.example/dir"}, "not an https directory URL"},
		{"acme no challenge", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s", DisableHTTPChallenge: true, DisableTLSALPNChallenge: true}, "both"},
		{"acme listen host with port", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s", ListenHost: "0.0.0.0:80"}, "listen_host"},
		{"bad port", Config{Mode: ModeACME, Domains: []string{"a.example"}, Storage: "/s", HTTPPort: 70000}, "http_port 70000"},
		{"manual without files", Config{Mode: ModeManual}, "cert_file and key_file"},
		{"manual without key", Config{Mode: ModeManual, CertFile: "c.pem"}, "cert_file and key_file"},
		{"manual", Config{Mode: ModeManual, CertFile: "c.pem", KeyFile: "k.pem"}, ""},
		{"manual negative interval", Config{Mode: ModeManual, CertFile: "c.pem", KeyFile: "k.pem", ReloadInterval: -1}, "negative"},
		{"self-signed without dir", Config{Mode: ModeSelfSigned}, "needs dir"},
		{"self-signed bad name", Config{Mode: ModeSelfSigned, Dir: "/d", Names: []string{"box lan"}}, `name "box lan"`},
		{"self-signed", Config{Mode: ModeSelfSigned, Dir: "/d", Names: []string{"box.lan", "::1"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("got no error, want one containing %q", tc.wantErr)
			case err != nil:
				mustContain(t, err.Error(), tc.wantErr)
				if !strings.HasPrefix(err.Error(), "certs: ") {
					t.Fatalf("error %q lacks the certs: prefix", err)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{Mode: ModeACME, HTTPSPort: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"https_port -1", "at least one domain", "needs storage"} {
		mustContain(t, err.Error(), want)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	log, _ := certstest.NewLog(t)
	if _, err := New(t.Context(), Config{Mode: "tls"}, log); err == nil {
		t.Fatal("New accepted an unknown mode")
	}
	if _, err := New(t.Context(), Config{}, nil); err == nil {
		t.Fatal("New accepted a nil logger")
	}
}

func TestDefaultMode(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": ModeOff,
		"[::1]:8080":     ModeOff,
		"localhost:8080": ModeOff,
		"127.0.0.2:80":   ModeOff,
		":8443":          ModeSelfSigned,
		"0.0.0.0:8443":   ModeSelfSigned,
		"192.0.2.1:443":  ModeSelfSigned,
		"box.lan:443":    ModeSelfSigned,
	} {
		if got := DefaultMode(addr); got != want {
			t.Errorf("DefaultMode(%q) = %s, want %s", addr, got, want)
		}
	}
}

func TestStateDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got, want := StateDir(env(map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"})), filepath.FromSlash("/x/whipgate"); got != want {
		t.Errorf("with XDG_STATE_HOME: %s, want %s", got, want)
	}
	if got, want := StateDir(env(map[string]string{"HOME": "/h"})), filepath.FromSlash("/h/.local/state/whipgate"); got != want {
		t.Errorf("with HOME only: %s, want %s", got, want)
	}
	if got := StateDir(env(nil)); got != "" {
		t.Errorf("with neither: %q, want empty", got)
	}
	c := Config{Storage: "/mine"}.WithStateDir("/st")
	if c.Storage != "/mine" || c.Dir != filepath.FromSlash("/st/self-signed") {
		t.Errorf("WithStateDir: storage %s dir %s, want /mine and /st/self-signed", c.Storage, c.Dir)
	}
}

func TestConfigFromYAML(t *testing.T) {
	const doc = `
mode: acme
domains: [box.example.com]
email: ops@example.com
ca: https://ca.example/dir
ca_root: /etc/whipgate/ca.pem
storage: /var/lib/whipgate/acme
http_port: 8080
https_port: 8443
listen_host: 192.0.2.1
disable_http_challenge: false
disable_tls_alpn_challenge: true
cert_file: c.pem
key_file: k.pem
reload_interval: 2s
names: [box.lan]
dir: /var/lib/whipgate/self-signed
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Mode: ModeACME, Domains: []string{"box.example.com"}, Email: "ops@example.com",
		CA: "https://ca.example/dir", CARoot: "/etc/whipgate/ca.pem", Storage: "/var/lib/whipgate/acme",
		HTTPPort: 8080, HTTPSPort: 8443, ListenHost: "192.0.2.1", DisableTLSALPNChallenge: true,
		CertFile: "c.pem", KeyFile: "k.pem", ReloadInterval: 2 * time.Second,
		Names: []string{"box.lan"}, Dir: "/var/lib/whipgate/self-signed",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
