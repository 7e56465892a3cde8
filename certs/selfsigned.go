package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// selfSignedValidity is the longest Apple platforms accept for a TLS server
	// certificate even when the user trusts it by hand (825 days); every regeneration
	// changes the fingerprint LAN users have checked, so take all of it.
	selfSignedValidity = 825 * 24 * time.Hour
	// selfSignedRenewBefore replaces the certificate at a restart this close to expiry,
	// rather than letting it lapse while the server runs.
	selfSignedRenewBefore = 30 * 24 * time.Hour

	selfSignedCertName = "cert.pem"
	selfSignedKeyName  = "key.pem"
)

// sanSet is what a self-signed certificate must cover.
type sanSet struct {
	dns []string
	ips []net.IP
}

// wantedSANs is localhost and the loopback addresses, the configured names and the
// machine's addresses, without duplicates.
func wantedSANs(names []string, local []net.IP) sanSet {
	s := sanSet{dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	addIP := func(ip net.IP) {
		if !slices.ContainsFunc(s.ips, ip.Equal) {
			s.ips = append(s.ips, ip)
		}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			addIP(ip)
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !slices.Contains(s.dns, n) {
			s.dns = append(s.dns, n)
		}
	}
	for _, ip := range local {
		addIP(ip)
	}
	return s
}

// missingFrom lists the wanted names and IPs cert does not carry.
func (s sanSet) missingFrom(cert *x509.Certificate) []string {
	var missing []string
	for _, n := range s.dns {
		if !slices.ContainsFunc(cert.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			missing = append(missing, n)
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	return missing
}

// localIPv4s are the machine's IPv4 addresses apart from loopback and link-local.
// IPv6 addresses are left out: temporary (privacy) addresses rotate daily, and each
// change would mean a new certificate and fingerprint at the next restart; a stable
// IPv6 address can be listed in Names.
func localIPv4s() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil && !ip4.IsLoopback() && !ip4.IsLinkLocalUnicast() {
			ips = append(ips, ip4)
		}
	}
	return ips
}

// loadOrCreateSelfSigned returns the certificate kept in dir if it still covers all
// wanted names and is not close to expiry; otherwise it makes a new one and stores it.
func loadOrCreateSelfSigned(dir string, names []string, local []net.IP, log *slog.Logger) (*tls.Certificate, error) {
	want := wantedSANs(names, local)
	now := time.Now()
	certPath, keyPath := filepath.Join(dir, selfSignedCertName), filepath.Join(dir, selfSignedKeyName)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info("creating a self-signed certificate", "dir", dir)
	case err != nil:
		log.Warn("replacing an unusable self-signed certificate", "dir", dir, "err", err)
	default:
		reason := staleReason(pair.Leaf, want, now)
		if reason == "" {
			return &pair, nil
		}
		log.Info("replacing the self-signed certificate", "dir", dir, "reason", reason,
			"old_sha256", Fingerprint(pair.Leaf))
	}

	certPEM, keyPEM, err := newSelfSigned(want, now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: self-signed: create %s: %w", dir, err)
	}
	// Key first: a crash between the two writes leaves a pair that does not match,
	// which the next start replaces, never a new certificate beside an old key.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: self-signed: parse the new certificate: %w", err)
	}
	return &pair, nil
}

// staleReason says why cert cannot be kept, or "" when it can.
func staleReason(cert *x509.Certificate, want sanSet, now time.Time) string {
	if now.Add(selfSignedRenewBefore).After(cert.NotAfter) {
		return fmt.Sprintf("expires %s", cert.NotAfter.Format(time.DateOnly))
	}
	if missing := want.missingFrom(cert); len(missing) > 0 {
		return fmt.Sprintf("does not cover %s", strings.Join(missing, ", "))
	}
	return ""
}

// newSelfSigned makes an ECDSA P-256 end-entity certificate signed by its own key. It
// is not a CA certificate: browsers reject a CA certificate used as a server's leaf.
func newSelfSigned(want sanSet, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: self-signed: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: self-signed: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"whipgate"}, CommonName: "whipgate self-signed"},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is a little behind
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              want.dns,
		IPAddresses:           want.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: self-signed: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: self-signed: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFileAtomic writes through a temporary file and a rename, so a reader never
// sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}
