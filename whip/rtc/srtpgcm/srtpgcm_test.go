package srtpgcm

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// profiles are the two AEAD profiles with a master key of their size.
var profiles = []struct {
	name    string
	profile srtp.ProtectionProfile
	keyLen  int
}{
	{"AES128", srtp.ProtectionProfileAeadAes128Gcm, 16},
	{"AES256", srtp.ProtectionProfileAeadAes256Gcm, 32},
}

func keys(n int) (key, salt []byte) {
	key, salt = make([]byte, n), make([]byte, SaltLen)
	for i := range key {
		key[i] = byte(3*i + 1)
	}
	for i := range salt {
		salt[i] = byte(0xa0 + i)
	}
	return key, salt
}

// pair is our Sealer beside pion's sealing and opening contexts on the
// same master key.
type pair struct {
	t          *testing.T
	ours       *Sealer
	seal, open *srtp.Context
}

func newPair(t *testing.T, profile srtp.ProtectionProfile, keyLen int) *pair {
	t.Helper()
	key, salt := keys(keyLen)
	ours, err := New(key, salt)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		t.Fatal(err)
	}
	open, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{t: t, ours: ours, seal: seal, open: open}
}

// check seals h and payload both ways, wants the same bytes, and wants
// pion to open ours back to the plain packet.
func (p *pair) check(h rtp.Header, payload []byte) {
	p.t.Helper()
	got, err := p.ours.Seal([]byte{0xee}, &h, payload) // after a byte already there
	if err != nil {
		p.t.Fatalf("seq %d: seal: %v", h.SequenceNumber, err)
	}
	if got[0] != 0xee {
		p.t.Fatalf("seq %d: Seal overwrote what dst held", h.SequenceNumber)
	}
	got = got[1:]
	plain, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	want, err := p.seal.EncryptRTP(nil, plain, nil)
	if err != nil {
		p.t.Fatalf("seq %d: pion seal: %v", h.SequenceNumber, err)
	}
	if !bytes.Equal(got, want) {
		p.t.Fatalf("seq %d ssrc %x: sealed\n%x\npion sealed\n%x", h.SequenceNumber, h.SSRC, got, want)
	}
	opened, err := p.open.DecryptRTP(nil, got, nil)
	if err != nil {
		p.t.Fatalf("seq %d: pion cannot open ours: %v", h.SequenceNumber, err)
	}
	if !bytes.Equal(opened, plain) {
		p.t.Fatalf("seq %d: opened to another packet", h.SequenceNumber)
	}
}

func TestSealMatchesPion(t *testing.T) {
	for _, pr := range profiles {
		t.Run(pr.name, func(t *testing.T) {
			p := newPair(t, pr.profile, pr.keyLen)
			payload := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 240)
			h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x11223344, Timestamp: 90000}
			// Up to and across two wraps, with re-sends of packets sent
			// before each wrap (their rollover counter is the old one)
			// and a second SSRC interleaved.
			seqs := []uint16{65500, 65501, 65535, 0, 65534, 1, 30000, 60000, 65535, 10, 65530, 11}
			for i, seq := range seqs {
				h.SequenceNumber, h.Marker = seq, i%3 == 0
				p.check(h, payload[:100+i*50])
				rtx := rtp.Header{Version: 2, PayloadType: 97, SSRC: 0x55667788, SequenceNumber: uint16(i), Timestamp: 1}
				p.check(rtx, payload[:7])
			}
			// A header with CSRCs and a one-byte extension is the cipher's
			// associated data as it is; an empty payload has a tag alone.
			h.CSRC = []uint32{1, 2}
			if err := h.SetExtension(3, []byte{0xab, 0xcd}); err != nil {
				t.Fatal(err)
			}
			h.SequenceNumber = 12
			p.check(h, payload[:33])
			h.SequenceNumber = 13
			p.check(h, nil)
		})
	}
}

func TestNewRefusesWrongSizes(t *testing.T) {
	for _, c := range []struct{ key, salt int }{{15, 12}, {24, 12}, {16, 14}, {32, 0}} {
		if _, err := New(make([]byte, c.key), make([]byte, c.salt)); err == nil {
			t.Errorf("key %d, salt %d: accepted", c.key, c.salt)
		}
	}
}

func TestSealAllocatesNothing(t *testing.T) {
	key, salt := keys(16)
	s, err := New(key, salt)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1200)
	buf := make([]byte, 0, 1500)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}
	allocs := testing.AllocsPerRun(1000, func() {
		h.SequenceNumber++
		if _, err := s.Seal(buf, &h, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations a packet, want 0", allocs)
	}
}

func TestSealGrowsShortDst(t *testing.T) {
	p := newPair(t, srtp.ProtectionProfileAeadAes128Gcm, 16)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 9, SequenceNumber: 5}
	got, err := p.ours.Seal(make([]byte, 2, 3), &h, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.open.DecryptRTP(nil, got[2:], nil); err != nil {
		t.Fatalf("grown packet does not open: %v", err)
	}
}

// FuzzSealMatchesPion drives both sealers with sequence numbers, SSRCs and
// payload lengths from the input: every packet must match pion's bytes.
func FuzzSealMatchesPion(f *testing.F) {
	f.Add([]byte{0xff, 0xfe, 0, 10, 0xff, 0xff, 1, 0, 0, 0, 0, 2, 0x80, 0x00, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0x7f, 0xff, 0, 200, 0xff, 0xff, 1, 5})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := newPair(t, srtp.ProtectionProfileAeadAes128Gcm, 16)
		payload := make([]byte, 256)
		for len(in) >= 4 {
			seq := binary.BigEndian.Uint16(in)
			h := rtp.Header{Version: 2, PayloadType: 96, SSRC: uint32(in[2] & 1), SequenceNumber: seq, Marker: in[2]&2 != 0}
			p.check(h, payload[:in[3]])
			in = in[4:]
		}
	})
}

// BenchmarkSeal compares one 1200-byte packet sealed from apart with what
// pion's Context needs: the payload copied behind the header, then sealed
// in place.
func BenchmarkSeal(b *testing.B) {
	key, salt := keys(16)
	payload := make([]byte, 1200)
	buf := make([]byte, 0, 1500)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}
	b.Run("srtpgcm", func(b *testing.B) {
		s, err := New(key, salt)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			h.SequenceNumber++
			if _, err := s.Seal(buf, &h, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pion", func(b *testing.B) {
		ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		var parsed rtp.Header
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			h.SequenceNumber++
			n, _ := h.MarshalTo(buf[:cap(buf)])
			plain := buf[:n+copy(buf[n:cap(buf)], payload)]
			if _, err := ctx.EncryptRTP(buf, plain, &parsed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
