// Package certs provides the *tls.Config whipgate serves HTTPS with, from one of three
// sources: ACME through certmagic, certificate files that are reloaded when they change,
// or a self-signed certificate kept on disk for LAN use.
package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Manager hands out the TLS configuration for one mode and owns everything that mode
// runs in the background: in acme mode the certmagic cache (renewals) and the plain
// HTTP listener for HTTP-01 and redirects, in manual mode the file reload loop.
// A nil *Manager behaves like one in mode off.
type Manager struct {
	mode      string
	log       *slog.Logger
	httpsPort int

	// served holds the certificate in manual and self-signed mode.
	served atomic.Pointer[tls.Certificate]
	acme   *acmeManager // acme mode only

	stop      chan struct{} // closed by Close to end the reload loop
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and sets up its mode. In acme mode it starts the HTTP listener and
// then obtains or loads every domain's certificate before returning, so a bad CA, a
// blocked port or a refused order fails here and not at the first handshake; ctx bounds
// that work. In mode off it returns a Manager whose TLSConfig is nil.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		return nil, errors.New("certs: new: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		mode:      cfg.mode(),
		log:       log.With("component", "certs", "mode", cfg.mode()),
		httpsPort: cfg.httpsPort(),
		stop:      make(chan struct{}),
	}
	switch m.mode {
	case ModeOff:
		m.log.Info("TLS is off; serving plain HTTP")
	case ModeACME:
		a, err := startACME(ctx, cfg, m.log, m.redirect())
		if err != nil {
			return nil, err
		}
		m.acme = a
	case ModeManual:
		if err := m.startManual(cfg); err != nil {
			return nil, err
		}
	case ModeSelfSigned:
		cert, err := loadOrCreateSelfSigned(cfg.Dir, cfg.Names, localIPv4s(), m.log)
		if err != nil {
			return nil, err
		}
		m.served.Store(cert)
		m.log.Info("serving a self-signed certificate; compare this fingerprint in the browser",
			"sha256", Fingerprint(cert.Leaf), "names", cert.Leaf.DNSNames, "ips", cert.Leaf.IPAddresses,
			"not_after", cert.Leaf.NotAfter)
	}
	return m, nil
}

// Mode is the mode in use: off, acme, manual or self-signed.
func (m *Manager) Mode() string {
	if m == nil {
		return ModeOff
	}
	return m.mode
}

// TLSConfig returns a new tls.Config for the HTTPS server, or nil in mode off. It offers
// h2 and http/1.1, and in acme mode also acme-tls/1 so TLS-ALPN-01 challenges for
// renewals are answered by the HTTPS server itself. Set it as http.Server.TLSConfig and
// call ServeTLS(ln, "", ""); the certificate comes from GetCertificate, so it may change
// while the server runs.
func (m *Manager) TLSConfig() *tls.Config {
	if m == nil || m.mode == ModeOff {
		return nil
	}
	if m.acme != nil {
		return m.acme.tlsConfig()
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: m.getCertificate,
	}
}

func (m *Manager) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.served.Load(), nil
}

// HTTPHandler is for a plain HTTP listener: in acme mode it answers HTTP-01 challenges,
// and every other request goes to next, or is redirected to HTTPS when next is nil.
// In mode off there is no HTTPS to redirect to, so next is returned as it is (a 404
// handler when nil). The listener the Manager runs itself in acme mode uses
// HTTPHandler(nil).
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if m == nil || m.mode == ModeOff {
		if next == nil {
			return http.NotFoundHandler()
		}
		return next
	}
	if next == nil {
		next = m.redirect()
	}
	if m.acme != nil {
		return m.acme.issuer.HTTPChallengeHandler(next)
	}
	return next
}

// HTTPAddr is the address of the HTTP-01 and redirect listener the Manager runs in acme
// mode, empty in the other modes.
func (m *Manager) HTTPAddr() string {
	if m == nil || m.acme == nil {
		return ""
	}
	return m.acme.httpAddr
}

func (m *Manager) redirect() http.Handler {
	return redirectToHTTPS(m.httpsPort)
}

// Fingerprint is the SHA-256 fingerprint of the leaf certificate being served (for acme,
// the one for the first domain), in colon-separated upper-case hex; empty in mode off.
func (m *Manager) Fingerprint() string {
	if m == nil || m.mode == ModeOff {
		return ""
	}
	if m.acme != nil {
		return Fingerprint(m.acme.leaf())
	}
	return Fingerprint(m.served.Load().Leaf)
}

// Leaf is the certificate being served (for acme, the one for the first
// domain), nil in mode off or before one is loaded: its NotAfter is what
// an operator watches.
func (m *Manager) Leaf() *x509.Certificate {
	if m == nil || m.mode == ModeOff {
		return nil
	}
	if m.acme != nil {
		return m.acme.leaf()
	}
	if c := m.served.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// Fingerprint formats the SHA-256 of cert's DER bytes as colon-separated upper-case hex,
// the form browsers show; empty for nil.
func Fingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// Close stops the reload loop, the acme HTTP listener and certmagic's maintenance, and
// waits for them. Later calls return the first call's result.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	m.closeOnce.Do(func() {
		close(m.stop)
		if m.acme != nil {
			m.closeErr = m.acme.close()
		}
		m.wg.Wait()
	})
	return m.closeErr
}
