package dtlskeys

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/srtp/v3"

	"whipgate/internal/testkit"
)

// The exporter over the captured secrets gives what pion's own DTLS state
// exports, for every cipher suite pion's DTLS server may pick (the PRF hash
// differs: SHA-384 for the AES-256-GCM suite) and with or without the
// extended master secret.
func TestSecretsMatchPionsExporter(t *testing.T) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	suites := map[string]dtls.CipherSuiteID{
		"AES_128_GCM_SHA256": dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		"AES_256_GCM_SHA384": dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		"AES_256_CBC_SHA":    dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		"CHACHA20_POLY1305":  dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	for name, suite := range suites {
		for _, ems := range []dtls.ExtendedMasterSecretType{dtls.RequireExtendedMasterSecret, dtls.DisableExtendedMasterSecret} {
			t.Run(fmt.Sprintf("%s/ems=%d", name, ems), func(t *testing.T) {
				var s Secrets
				srvConn, cliConn := testkit.LoopbackUDP(t, "udp4"), testkit.LoopbackUDP(t, "udp4")
				srv, err := dtls.Server(srvConn, cliConn.LocalAddr(), &dtls.Config{
					Certificates: []tls.Certificate{cert}, CipherSuites: []dtls.CipherSuiteID{suite}, ExtendedMasterSecret: ems,
					SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM},
					KeyLogWriter:           s.KeyLog(), ServerHelloMessageHook: s.ServerHello,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				cli, err := dtls.Client(cliConn, srvConn.LocalAddr(), &dtls.Config{
					Certificates: []tls.Certificate{cert}, CipherSuites: []dtls.CipherSuiteID{suite}, ExtendedMasterSecret: ems,
					SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}, InsecureSkipVerify: true,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				var wg sync.WaitGroup
				var srvErr error
				wg.Go(func() { srvErr = srv.HandshakeContext(ctx) })
				if err := cli.HandshakeContext(ctx); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if srvErr != nil {
					t.Fatal(srvErr)
				}
				state, ok := srv.ConnectionState()
				if !ok {
					t.Fatal("no connection state")
				}
				want, err := state.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("exported %x, pion's state exports %x", got, want)
				}
				if s.profile != srtp.ProtectionProfileAeadAes128Gcm || s.suite != uint16(suite) {
					t.Fatalf("saw profile %v suite %#x, want AEAD_AES_128_GCM and %#x", s.profile, s.suite, uint16(suite))
				}
			})
		}
	}
}

// A peer's ServerHello seen twice with different randoms (a forged one
// among them) leaves the keys unknown; a retransmission does not.
func TestSecretsRefuseTwoServerHellos(t *testing.T) {
	var k Secrets
	k.clientRandom, k.master = make([]byte, 32), make([]byte, 48)
	k.Inspect(serverHello(t, 1))
	k.Inspect(serverHello(t, 1)) // a retransmission
	if _, err := k.Context(true); err != nil {
		t.Fatalf("one ServerHello, twice: %v", err)
	}
	k.Inspect(serverHello(t, 2))
	if _, err := k.Context(true); err == nil || !strings.Contains(err.Error(), "two different ServerHellos") {
		t.Fatalf("two ServerHellos: %v; want a refusal", err)
	}
}

// serverHello is a DTLS 1.2 record with a peer's ServerHello choosing
// AEAD_AES_128_GCM, its random starting with random.
func serverHello(t testing.TB, random byte) []byte {
	m := &handshake.MessageServerHello{
		Version:           protocol.Version1_2,
		CipherSuiteID:     new(uint16),
		CompressionMethod: &protocol.CompressionMethod{},
		Extensions:        []extension.Extension{&extension.UseSRTP{ProtectionProfiles: []extension.SRTPProtectionProfile{extension.SRTP_AEAD_AES_128_GCM}}},
	}
	*m.CipherSuiteID = 0xc02b
	m.Random.RandomBytes[0] = random
	rec := &recordlayer.RecordLayer{Header: recordlayer.Header{Version: protocol.Version1_2}, Content: &handshake.Handshake{Message: m}}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzInspect: Inspect reads whatever arrives on a client's own sockets
// before the handshake is done, from anyone. No datagram may panic it; a
// datagram seen twice (a retransmission) reads as it did once, so only
// two different ServerHellos refuse the keys; and a hello it took sets the
// client role (a peer's hello means we are DTLS client).
func FuzzInspect(f *testing.F) {
	hello := serverHello(f, 1)
	f.Add(hello)
	f.Add(hello[:len(hello)-3])                                     // cut short
	f.Add(append(append([]byte{}, hello...), hello...))             // one hello twice in one datagram
	f.Add(append(append([]byte{}, hello...), serverHello(f, 2)...)) // two different ones
	f.Add([]byte{22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var once, twice Secrets
		once.Inspect(b)
		twice.Inspect(b)
		twice.Inspect(b)
		if once.conflict != twice.conflict || !bytes.Equal(once.serverRandom, twice.serverRandom) {
			t.Fatalf("seen twice: conflict %v, random %x; seen once: %v, %x", twice.conflict, twice.serverRandom, once.conflict, once.serverRandom)
		}
		if once.serverRandom != nil && !once.client {
			t.Fatal("took a peer's hello but not the DTLS client role")
		}
	})
}
