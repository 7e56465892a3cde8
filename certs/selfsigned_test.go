package certs

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"whipgate/certs/certstest"
)

func TestSelfSignedFingerprintSANsAndRestart(t *testing.T) {
	checkLeaks(t)
	log, _ := certstest.NewLog(t)
	cfg := Config{Mode: ModeSelfSigned, Dir: filepath.Join(t.TempDir(), "state"), Names: []string{"box.lan", "192.0.2.10"}}
	m, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	fp := m.Fingerprint()
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q is not 32 colon-separated upper-case hex bytes", fp)
	}
	addr := serveHTTPS(t, m.TLSConfig())
	leaf := certstest.ServedLeaf(t, addr, "127.0.0.1", nil)
	trust := certstest.PoolOf(leaf)
	// The handshakes verify the names: by IP without SNI, and by each configured name.
	for _, name := range []string{"127.0.0.1", "box.lan", "localhost", "192.0.2.10"} {
		if got := Fingerprint(certstest.ServedLeaf(t, addr, name, trust)); got != fp {
			t.Fatalf("served as %q: fingerprint %s, Manager reports %s", name, got, fp)
		}
	}
	getOverHTTPS(t, addr, "box.lan", trust)
	if !slices.ContainsFunc(leaf.IPAddresses, net.IPv6loopback.Equal) {
		t.Fatalf("IPs %v lack ::1", leaf.IPAddresses)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 365*24*time.Hour {
		t.Fatalf("valid for %v, want at least a year", life)
	}
	if fi, err := os.Stat(filepath.Join(cfg.Dir, selfSignedKeyName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v, want 0600", err, fi.Mode())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Fingerprint() != fp {
		t.Fatalf("after a restart the fingerprint is %s, want the stored %s", again.Fingerprint(), fp)
	}
}

func TestSelfSignedRegeneratesWhenStale(t *testing.T) {
	log, _ := certstest.NewLog(t)
	dir := t.TempDir()
	cfg := Config{Mode: ModeSelfSigned, Dir: dir, Names: []string{"box.lan"}}
	first, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	t.Run("a name is added", func(t *testing.T) {
		cfg := cfg
		cfg.Names = append(cfg.Names, "studio.lan")
		m, err := New(t.Context(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Fingerprint() == first.Fingerprint() {
			t.Fatal("kept the certificate although it does not cover studio.lan")
		}
		leaf := m.served.Load().Leaf
		if !slices.Contains(leaf.DNSNames, "studio.lan") || !slices.Contains(leaf.DNSNames, "box.lan") {
			t.Fatalf("names %v, want box.lan and studio.lan", leaf.DNSNames)
		}
	})

	t.Run("expired", func(t *testing.T) {
		certPEM, keyPEM, err := newSelfSigned(wantedSANs(cfg.Names, localIPv4s()), time.Now().Add(-selfSignedValidity-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, selfSignedCertName), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, selfSignedKeyName), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := New(t.Context(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if leaf := m.served.Load().Leaf; !leaf.NotAfter.After(time.Now().Add(365 * 24 * time.Hour)) {
			t.Fatalf("kept an expired certificate (not after %v)", leaf.NotAfter)
		}
	})

	t.Run("garbage on disk", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, selfSignedCertName), []byte("not a certificate"), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := New(t.Context(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Fingerprint() == "" {
			t.Fatal("no certificate after replacing garbage")
		}
	})
}

func TestStaleReason(t *testing.T) {
	now := time.Now()
	want := wantedSANs([]string{"box.lan", "10.1.2.3"}, nil)
	certPEM, _, err := newSelfSigned(want, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCertPEM(t, certPEM)
	for _, tc := range []struct {
		name string
		want sanSet
		now  time.Time
		ok   bool
	}{
		{"fresh and covered", want, now, true},
		{"names in another case", wantedSANs([]string{"BOX.lan."}, nil), now, true},
		{"an IP is missing", wantedSANs([]string{"box.lan", "10.1.2.4"}, nil), now, false},
		{"a name is missing", wantedSANs([]string{"other.lan"}, nil), now, false},
		{"inside the renewal window", want, leaf.NotAfter.Add(-selfSignedRenewBefore + time.Hour), false},
		{"just before the renewal window", want, leaf.NotAfter.Add(-selfSignedRenewBefore - time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason := staleReason(leaf, tc.want, tc.now)
			if (reason == "") != tc.ok {
				t.Fatalf("staleReason = %q, want keep=%v", reason, tc.ok)
			}
		})
	}
}
