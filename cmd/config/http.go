package config

import (
	"fmt"
	"net/url"
	"time"
)

// HTTPConfig bounds what an HTTP client may cost and says whom the
// control API trusts. The zero value of each field means its default.
type HTTPConfig struct {
	// ReadTimeout bounds reading a whole request, body included: a body
	// that stalls is cut off. Default 15 s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// ReadHeaderTimeout bounds reading the headers. Default 10 s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// WriteTimeout bounds writing a response. Default 30 s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes an idle keep-alive connection. Default 2 min.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections caps open HTTP connections; more wait to be
	// accepted. Default 1024.
	MaxConnections int `yaml:"max_connections"`
	// MaxEventStreams caps the open GET /api/v1/events streams. Default 16.
	MaxEventStreams int `yaml:"max_event_streams"`
	// AllowedHosts are more Host names the API answers to without an
	// api_token (besides the listen host, localhost, 127.0.0.1, [::1] and
	// public_url's host): a defence against DNS rebinding. Default none.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// AllowedOrigins are web origins ("https://panel.example") whose
	// pages may make state-changing API calls; any other origin is
	// refused. Default none.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Pprof serves Go's profiles (net/http/pprof) under /debug/pprof/,
	// behind the API's token and trust rules like /metrics. Its goroutines
	// carry a "part" label (ingest, egress, viewers), so a CPU profile
	// splits the box's time; whipgate bench -box turns it on. Default
	// false: a profile costs CPU while it runs, and tells about the host.
	Pprof bool `yaml:"pprof"`
}

func (c *HTTPConfig) applyDefaults() {
	def(&c.ReadTimeout, 15*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.MaxHeaderBytes, 64<<10)
	def(&c.MaxConnections, 1024)
	def(&c.MaxEventStreams, 16)
}

// def sets *p to v unless *p is above zero.
func def[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Validate checks the origins, which must be scheme://host[:port].
func (c HTTPConfig) Validate() error {
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("http.allowed_origins: %q is not an origin like https://panel.example", o)
		}
	}
	return nil
}
