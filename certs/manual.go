package certs

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"time"
)

// keyPairFiles remembers the bytes of the last certificate and key files it looked at,
// so a reload is tried once per change and a broken file is reported once.
type keyPairFiles struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte
	readErr           string
}

// load reads both files and parses them. changed is false when they hold the same bytes
// as at the previous call, and for a read error already reported; cert and err are nil
// then.
//
// Content is compared rather than mtime and size: file timestamps are coarse enough
// that a quick replace with a same-sized certificate can leave both unchanged, and two
// small files every few seconds cost nothing.
func (f *keyPairFiles) load() (cert *tls.Certificate, changed bool, err error) {
	certPEM, keyPEM, err := f.read()
	if err != nil {
		// A file missing for a moment during a replace is reported once, not at every
		// poll until it is back.
		if err.Error() == f.readErr {
			return nil, false, nil
		}
		f.readErr = err.Error()
		return nil, true, err
	}
	f.readErr = ""
	if bytes.Equal(certPEM, f.certPEM) && bytes.Equal(keyPEM, f.keyPEM) {
		return nil, false, nil
	}
	f.certPEM, f.keyPEM = certPEM, keyPEM
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, true, fmt.Errorf("certs: parse %s and %s: %w", f.certFile, f.keyFile, err)
	}
	return &pair, true, nil
}

func (f *keyPairFiles) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(f.certFile); err != nil {
		return nil, nil, fmt.Errorf("certs: read certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(f.keyFile); err != nil {
		return nil, nil, fmt.Errorf("certs: read key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// startManual loads the files (failing New if they are unusable) and starts the loop
// that picks up replaced files.
func (m *Manager) startManual(cfg Config) error {
	files := &keyPairFiles{certFile: cfg.CertFile, keyFile: cfg.KeyFile}
	cert, _, err := files.load()
	if err != nil {
		return err
	}
	m.served.Store(cert)
	m.log.Info("serving certificate from files", "cert_file", cfg.CertFile, "key_file", cfg.KeyFile,
		"sha256", Fingerprint(cert.Leaf), "not_after", cert.Leaf.NotAfter)
	if time.Now().After(cert.Leaf.NotAfter) {
		m.log.Warn("the certificate has expired", "not_after", cert.Leaf.NotAfter)
	}
	m.wg.Go(func() { m.reloadLoop(files, cfg.reloadInterval()) })
	return nil
}

func (m *Manager) reloadLoop(files *keyPairFiles, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		cert, changed, err := files.load()
		switch {
		case !changed:
		case err != nil:
			m.log.Error("keeping the previous certificate", "err", err)
		default:
			m.served.Store(cert)
			m.log.Info("reloaded certificate from files", "sha256", Fingerprint(cert.Leaf),
				"not_after", cert.Leaf.NotAfter)
		}
	}
}
