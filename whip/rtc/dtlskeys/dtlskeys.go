// Package dtlskeys learns a PeerConnection's SRTP master keys (RFC 5764)
// from what its DTLS handshake shows as it passes, since pion does not
// export them: the client random and master secret from the DTLS key log,
// and the server random, cipher suite and SRTP profile from the
// ServerHello — the one we send as DTLS server (pion's hook), or, as DTLS
// client, the one the peer sends, read off sockets of the PeerConnection's
// own (Inspect). The transport seals and opens media beneath pion with
// them (whip/rtc).
//
// It knows pion's DTLS and SRTP types and nothing of whipgate's.
package dtlskeys

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/srtp/v3"
)

// Secrets is what one DTLS handshake shows of the values RFC 5764
// derives the SRTP keys from; it implements srtp.KeyingMaterialExporter.
type Secrets struct {
	mu           sync.Mutex
	clientRandom []byte
	serverRandom []byte
	master       []byte
	suite        uint16
	profile      srtp.ProtectionProfile
	// client: the ServerHello was the peer's, so we were DTLS client.
	client bool
	// conflict: our sockets showed two different ServerHellos of the peer
	// (a forged one among them): the keys are not to be trusted.
	conflict bool
}

// KeyLog is the writer to give pion as its DTLS key log writer.
func (s *Secrets) KeyLog() io.Writer { return keyLog{s} }

// keyLog takes the DTLS key log (SSLKEYLOGFILE format, one line per
// handshake): "CLIENT_RANDOM <client random> <master secret>".
type keyLog struct{ s *Secrets }

func (k keyLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		f := strings.Fields(string(line))
		if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(f[1])
		ms, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		k.s.mu.Lock()
		k.s.clientRandom, k.s.master = cr, ms
		k.s.mu.Unlock()
	}
	return len(p), nil
}

// ServerHello notes what our ServerHello says and sends it unchanged (the
// DTLS server's hook, SetDTLSServerHelloMessageHook).
func (s *Secrets) ServerHello(m handshake.MessageServerHello) handshake.Message {
	s.noteHello(&m, false)
	return &m
}

// Inspect notes the peer's ServerHello in a datagram our socket received,
// if it carries one (we are DTLS client); anything else is ignored,
// cheaply for what is not a DTLS handshake.
func (s *Secrets) Inspect(b []byte) {
	// A DTLS 1.2 handshake record in epoch 0 starts 22, 254, 253, 0, 0.
	if len(b) <= recordlayer.FixedHeaderSize || b[0] != byte(protocol.ContentTypeHandshake) || b[3] != 0 || b[4] != 0 {
		return
	}
	recs, err := recordlayer.UnpackDatagram(b)
	if err != nil {
		return
	}
	for _, r := range recs {
		var h recordlayer.Header
		if h.Unmarshal(r) != nil || h.ContentType != protocol.ContentTypeHandshake || h.Epoch != 0 || h.Size() > len(r) {
			continue
		}
		var hs handshake.Handshake
		if hs.Unmarshal(r[h.Size():]) != nil { // a fragment or another message
			continue
		}
		if m, ok := hs.Message.(*handshake.MessageServerHello); ok {
			s.noteHello(m, true)
		}
	}
}

// noteHello keeps what a ServerHello says, ours or (peer) the peer's. A
// retransmission repeats the peer's hello; a different one means that
// someone else sent one too, and pion's handshake took at most one of
// them: the keys stay unknown.
func (s *Secrets) noteHello(m *handshake.MessageServerHello, peer bool) {
	r := m.Random.MarshalFixed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if peer && s.serverRandom != nil && !bytes.Equal(s.serverRandom, r[:]) {
		s.conflict = true
	}
	s.serverRandom, s.client = r[:], peer
	if m.CipherSuiteID != nil {
		s.suite = *m.CipherSuiteID
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			s.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
}

// Client reports whether the ServerHello seen was the peer's: we were the
// DTLS client.
func (s *Secrets) Client() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// ExportKeyingMaterial is RFC 5705's exporter over the captured secrets,
// as pion's dtls.State computes it (no context).
func (s *Secrets) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(context) != 0 {
		return nil, errors.New("dtlskeys: exporter context unsupported")
	}
	if len(s.master) == 0 || len(s.clientRandom) != 32 || len(s.serverRandom) != 32 {
		return nil, errors.New("dtlskeys: handshake secrets not seen")
	}
	seed := append(append([]byte(label), s.clientRandom...), s.serverRandom...)
	return prf.PHash(s.master, seed, length, suiteHash(s.suite))
}

// ErrUnseen: the handshake has not shown all that the keys derive
// from — not yet, or not to us (the ServerHello hook sees only a hello we
// send, and a peer's hello is seen only on sockets of a PeerConnection's
// own).
var ErrUnseen = errors.New("no SRTP profile or handshake secrets seen (not the DTLS server, nor a client on sockets of its own?)")

// Context derives one direction's SRTP context (RFC 5764) from the
// captured secrets: our sending keys (send) or the peer's, in the DTLS role
// the ServerHello showed we had.
func (s *Secrets) Context(send bool, opts ...srtp.ContextOption) (*srtp.Context, error) {
	profile, key, salt, err := s.MasterKey(send)
	if err != nil {
		return nil, err
	}
	ctx, err := srtp.CreateContext(key, salt, profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	return ctx, nil
}

// MasterKey returns the SRTP profile and one direction's master key and
// salt (RFC 5764 §4.2), as Context uses them.
func (s *Secrets) MasterKey(send bool) (profile srtp.ProtectionProfile, key, salt []byte, err error) {
	s.mu.Lock()
	profile, complete := s.profile, len(s.master) > 0 && len(s.clientRandom) == 32 && len(s.serverRandom) == 32
	isClient, conflict := s.client, s.conflict
	s.mu.Unlock()
	if conflict {
		return 0, nil, nil, errors.New("two different ServerHellos seen: the keys are unknown")
	}
	if profile == 0 || !complete {
		return 0, nil, nil, ErrUnseen
	}
	conf := srtp.Config{Profile: profile}
	if err := conf.ExtractSessionKeysFromDTLS(s, isClient); err != nil {
		return 0, nil, nil, fmt.Errorf("keys: %w", err)
	}
	if send {
		return profile, conf.Keys.LocalMasterKey, conf.Keys.LocalMasterSalt, nil
	}
	return profile, conf.Keys.RemoteMasterKey, conf.Keys.RemoteMasterSalt, nil
}

// suiteHash is the PRF hash of a TLS 1.2 cipher suite: SHA-384 for the
// suites named so, SHA-256 for every other.
func suiteHash(id uint16) func() hash.Hash {
	if strings.HasSuffix(dtls.CipherSuiteID(id).String(), "SHA384") {
		return sha512.New384
	}
	return sha256.New
}
