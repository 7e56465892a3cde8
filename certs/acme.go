package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// acmeManager is one certmagic cache and config, owned here rather than taken from
// certmagic's package defaults, so that two Managers (or tests) never share state.
type acmeManager struct {
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	domains []string
	alpn    bool // TLS-ALPN-01 enabled

	httpSrv  *http.Server
	httpAddr string
	served   chan error // the HTTP server's result; receiving it waits for its goroutine
}

// startACME starts the HTTP listener and then obtains or loads the certificates.
//
// The Manager owns the HTTP listener because ManageSync runs inside New: an HTTP-01
// challenge has to be answerable before New returns, so it cannot wait for a listener
// the caller would start afterwards. certmagic finds the port taken by us and leaves
// the challenge to our handler.
func startACME(ctx context.Context, cfg Config, log *slog.Logger, redirect http.Handler) (*acmeManager, error) {
	var roots *x509.CertPool
	if cfg.CARoot != "" {
		pemBytes, err := os.ReadFile(cfg.CARoot)
		if err != nil {
			return nil, fmt.Errorf("certs: read ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("certs: ca_root %s holds no PEM certificate", cfg.CARoot)
		}
	}

	a := &acmeManager{
		domains: normalizeDomains(cfg.Domains),
		alpn:    !cfg.DisableTLSALPNChallenge,
	}
	zl := zapLogger(log)
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		Logger:           zl,
	})
	a.magic = certmagic.New(a.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: cfg.Storage},
		Logger:  zl,
		// Clients that connect by IP send no SNI; give them the main certificate
		// rather than a failed handshake.
		DefaultServerName: a.domains[0],
	})
	template := certmagic.ACMEIssuer{
		CA:    certmagic.LetsEncryptProductionCA,
		Email: cfg.Email,
		// Agreed up front: otherwise certmagic asks on stdin, and a server has nobody to
		// ask. The Email field doc says that acme mode means agreeing.
		Agreed:                  true,
		DisableHTTPChallenge:    cfg.DisableHTTPChallenge,
		DisableTLSALPNChallenge: cfg.DisableTLSALPNChallenge,
		ListenHost:              cfg.ListenHost,
		AltHTTPPort:             cfg.httpPort(),
		AltTLSALPNPort:          cfg.httpsPort(),
		TrustedRoots:            roots,
		Logger:                  zl,
	}
	switch {
	case cfg.Staging:
		template.CA = certmagic.LetsEncryptStagingCA
		template.TestCA = certmagic.LetsEncryptStagingCA
	case cfg.CA != "":
		// certmagic would otherwise retry failed orders against Let's Encrypt staging.
		template.CA, template.TestCA = cfg.CA, cfg.CA
	}
	a.issuer = certmagic.NewACMEIssuer(a.magic, template)
	var issuer certmagic.Issuer = a.issuer
	if cfg.Email == "" {
		issuer = noEmailIssuer{a.issuer}
	}
	a.magic.Issuers = []certmagic.Issuer{issuer}

	if err := a.listenHTTP(cfg, log, redirect); err != nil {
		a.cache.Stop()
		return nil, err
	}
	log.Info("obtaining or loading certificates", "domains", a.domains, "ca", template.CA,
		"http_addr", a.httpAddr)
	if err := a.magic.ManageSync(ctx, a.domains); err != nil {
		return nil, errors.Join(fmt.Errorf("certs: acme: manage %v with %s: %w", a.domains, template.CA, err), a.close())
	}
	leaf := a.leaf()
	log.Info("certificate ready", "domain", a.domains[0], "not_after", leaf.NotAfter, "sha256", Fingerprint(leaf))
	return a, nil
}

func normalizeDomains(in []string) []string {
	out := make([]string, len(in))
	for i, d := range in {
		out[i] = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	}
	return out
}

// listenHTTP binds the HTTP-01 + redirect listener synchronously and serves it.
func (a *acmeManager) listenHTTP(cfg Config, log *slog.Logger, redirect http.Handler) error {
	addr := net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.httpPort()))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("certs: acme: listen for HTTP-01 on %s: %w", addr, err)
	}
	a.httpAddr = ln.Addr().String()
	a.httpSrv = &http.Server{
		Handler:           a.issuer.HTTPChallengeHandler(redirect),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.served = make(chan error, 1)
	go func() {
		err := a.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.served <- err
	}()
	return nil
}

func (a *acmeManager) tlsConfig() *tls.Config {
	tc := a.magic.TLSConfig()
	tc.MinVersion = tls.VersionTLS12
	protos := []string{"h2", "http/1.1"}
	if a.alpn {
		protos = append(protos, tc.NextProtos...) // acme-tls/1
	}
	tc.NextProtos = protos
	return tc
}

// leaf is the certificate served for the first domain, as a handshake would pick it.
func (a *acmeManager) leaf() *x509.Certificate {
	cert, err := a.magic.GetCertificate(&tls.ClientHelloInfo{ServerName: a.domains[0]})
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	if cert.Leaf != nil {
		return cert.Leaf
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// close stops the HTTP listener and certmagic's maintenance goroutine and waits for both.
// certmagic's ACME HTTP client may keep one idle connection to the CA open (with its
// read goroutine) until the CA closes it; that client is unexported, so it cannot be
// closed from here.
func (a *acmeManager) close() error {
	var err error
	if a.httpSrv != nil {
		err = errors.Join(a.httpSrv.Close(), <-a.served)
	}
	a.cache.Stop()
	if err != nil {
		return fmt.Errorf("certs: acme: close HTTP listener: %w", err)
	}
	return nil
}

// noEmailIssuer is the ACME issuer when no email is configured. It skips certmagic's
// PreCheck, whose email lookup would otherwise prompt on stdin during ManageSync or
// borrow an address another issuer in the process used (certmagic remembers one in a
// package variable). The account then has no contact, as Config.Email documents.
// PreCheck's other job, refusing names a public CA would refuse, is left to the CA.
type noEmailIssuer struct{ *certmagic.ACMEIssuer }

func (noEmailIssuer) PreCheck(context.Context, []string, bool) error { return nil }

// Interface guards
var (
	_ certmagic.PreChecker        = noEmailIssuer{}
	_ certmagic.Issuer            = noEmailIssuer{}
	_ certmagic.Revoker           = noEmailIssuer{}
	_ certmagic.RenewalInfoGetter = noEmailIssuer{}
)
