package certs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// The TLS modes a Config can ask for.
const (
	ModeOff        = "off"
	ModeACME       = "acme"
	ModeManual     = "manual"
	ModeSelfSigned = "self-signed"
)

// Config says where the HTTPS certificate comes from. The zero value is mode off.
type Config struct {
	// Mode is off, acme, manual or self-signed. Default: off. This package cannot see the
	// listen address, so the caller resolves an empty mode with DefaultMode first.
	Mode string `yaml:"mode"`

	// Domains are the names an acme certificate is obtained for; the first one is also
	// served to clients that send no SNI. Required for acme; no default.
	Domains []string `yaml:"domains"`
	// Email is the ACME account contact. Default: none (the account has no contact).
	// Using acme means agreeing to the CA's subscriber agreement.
	Email string `yaml:"email"`
	// CA is the ACME directory URL (https). Default: Let's Encrypt production.
	CA string `yaml:"ca"`
	// Staging selects Let's Encrypt staging instead of production. Default: false.
	// Cannot be combined with CA.
	Staging bool `yaml:"staging"`
	// CARoot is a PEM file with root certificates trusted for talking to the CA, for a
	// private CA. Default: the system roots.
	CARoot string `yaml:"ca_root"`
	// Storage is the directory for the ACME account, keys and certificates. Required for
	// acme; WithStateDir fills it in.
	Storage string `yaml:"storage"`
	// HTTPPort is the port of the plain HTTP listener the Manager runs in acme mode: it
	// answers HTTP-01 challenges and redirects everything else to HTTPS. Default: 80.
	HTTPPort int `yaml:"http_port"`
	// HTTPSPort is the port the HTTPS server listens on: it is where redirects point and
	// where TLS-ALPN-01 challenges arrive. Default: 443.
	HTTPSPort int `yaml:"https_port"`
	// ListenHost is the host (no port) the acme HTTP listener and any temporary
	// challenge listener bind to. Default: all interfaces.
	ListenHost string `yaml:"listen_host"`
	// DisableHTTPChallenge turns off the HTTP-01 challenge. Default: false.
	DisableHTTPChallenge bool `yaml:"disable_http_challenge"`
	// DisableTLSALPNChallenge turns off the TLS-ALPN-01 challenge. Default: false.
	DisableTLSALPNChallenge bool `yaml:"disable_tls_alpn_challenge"`

	// CertFile is the PEM certificate chain for manual mode. Required for manual.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key for manual mode. Required for manual.
	KeyFile string `yaml:"key_file"`
	// ReloadInterval is how often manual mode checks the files for a new certificate.
	// Default: 5s.
	ReloadInterval time.Duration `yaml:"reload_interval"`

	// Names are extra DNS names or IPs for the self-signed certificate, on top of
	// localhost, 127.0.0.1, ::1 and the machine's IPv4 addresses. Default: none.
	Names []string `yaml:"names"`
	// Dir is where the self-signed certificate and key are kept across restarts.
	// Required for self-signed; WithStateDir fills it in.
	Dir string `yaml:"dir"`
}

// Defaults applied where a Config field is zero.
const (
	defaultHTTPPort       = 80
	defaultHTTPSPort      = 443
	defaultReloadInterval = 5 * time.Second
)

func (c Config) mode() string {
	if c.Mode == "" {
		return ModeOff
	}
	return c.Mode
}

func (c Config) httpPort() int {
	if c.HTTPPort == 0 {
		return defaultHTTPPort
	}
	return c.HTTPPort
}

func (c Config) httpsPort() int {
	if c.HTTPSPort == 0 {
		return defaultHTTPSPort
	}
	return c.HTTPSPort
}

func (c Config) reloadInterval() time.Duration {
	if c.ReloadInterval == 0 {
		return defaultReloadInterval
	}
	return c.ReloadInterval
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("certs: "+format, args...))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"http_port", c.HTTPPort}, {"https_port", c.HTTPSPort}} {
		if p.v < 0 || p.v > 65535 {
			bad("%s %d is not a port (1-65535, 0 for the default)", p.name, p.v)
		}
	}
	switch c.mode() {
	case ModeOff:
	case ModeACME:
		if len(c.Domains) == 0 {
			bad("mode acme needs at least one domain")
		}
		for _, d := range c.Domains {
			if strings.HasPrefix(d, "*.") {
				bad("domain %q: wildcards need the DNS-01 challenge, which is not supported", d)
			} else if err := checkName(d); err != nil {
				bad("domain %q: %v", d, err)
			}
		}
		if c.Staging && c.CA != "" {
			bad("staging and ca are both set; choose one")
		}
		if c.CA != "" {
			if u, err := url.Parse(c.CA); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("ca %q is not an https directory URL", c.CA)
			}
		}
		if c.Storage == "" {
			bad("mode acme needs storage (a directory for the account and certificates)")
		}
		if c.DisableHTTPChallenge && c.DisableTLSALPNChallenge {
			bad("both the HTTP-01 and TLS-ALPN-01 challenges are disabled; no certificate could be validated")
		}
		if c.ListenHost != "" && strings.ContainsAny(c.ListenHost, ":/ ") && net.ParseIP(c.ListenHost) == nil {
			bad("listen_host %q must be a host or IP without a port", c.ListenHost)
		}
	case ModeManual:
		if c.CertFile == "" || c.KeyFile == "" {
			bad("mode manual needs both cert_file and key_file")
		}
		if c.ReloadInterval < 0 {
			bad("reload_interval %v is negative", c.ReloadInterval)
		}
	case ModeSelfSigned:
		if c.Dir == "" {
			bad("mode self-signed needs dir (where the certificate is kept across restarts)")
		}
		for _, n := range c.Names {
			if err := checkName(n); err != nil {
				bad("name %q: %v", n, err)
			}
		}
	default:
		bad("unknown mode %q (want %s, %s, %s or %s)", c.Mode, ModeOff, ModeACME, ModeManual, ModeSelfSigned)
	}
	return errors.Join(errs...)
}

// checkName accepts an IP address or something shaped like a DNS name.
func checkName(n string) error {
	if net.ParseIP(n) != nil {
		return nil
	}
	switch {
	case n == "":
		return errors.New("empty")
	case strings.Contains(n, "://"):
		return errors.New("give a bare name, not a URL")
	case strings.ContainsAny(n, ":/ \t"):
		return errors.New("give a bare name without port, path or spaces")
	}
	return nil
}

// DefaultMode is the mode for an empty Config.Mode when the HTTPS server listens on
// listenAddr (host:port): off on loopback, where browsers treat plain HTTP as secure,
// and self-signed anywhere else, so that LAN traffic is encrypted from the first start.
func DefaultMode(listenAddr string) string {
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		host = listenAddr
	}
	if host == "localhost" {
		return ModeOff
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ModeOff
	}
	return ModeSelfSigned
}

// StateDir is where whipgate keeps state by default: $XDG_STATE_HOME/whipgate, else
// $HOME/.local/state/whipgate. It is empty when neither variable is set.
func StateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "whipgate")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "whipgate")
	}
	return ""
}

// WithStateDir returns c with empty Storage and Dir set to subdirectories of stateDir.
func (c Config) WithStateDir(stateDir string) Config {
	if stateDir == "" {
		return c
	}
	if c.Storage == "" {
		c.Storage = filepath.Join(stateDir, "acme")
	}
	if c.Dir == "" {
		c.Dir = filepath.Join(stateDir, "self-signed")
	}
	return c
}
