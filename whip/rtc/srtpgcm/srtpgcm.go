// Package srtpgcm seals RTP as SRTP with AEAD_AES_128_GCM or
// AEAD_AES_256_GCM (RFC 7714) from a header and a payload that lie apart:
// the hub's payload, shared by every viewer, and a header built for one
// viewer. The cipher reads the payload where it is and writes the
// ciphertext where the packet is sent from, so a packet costs one pass
// over its bytes.
//
// pion's srtp.Context does the same work from one marshalled packet: the
// payload must first be copied behind the header, and it parses that
// header back and looks its SSRC up in a map for every packet; at 8K rates
// that was a third as much again as the AES-GCM seal itself
// (docs/media-path.md). pion/srtp stays the reference: the tests open
// every packet sealed here with pion's Context and compare the bytes with
// what pion seals.
//
// It implements only what a WebRTC sender beneath pion uses: one master
// key, no MKI, no key derivation rate, no RFC 4771 rollover counter in the
// tag, no cryptex. It imports nothing of whipgate's.
package srtpgcm

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
)

// TagLen is the authentication tag each sealed packet carries.
const TagLen = 16

// SaltLen is the master salt's length for both AEAD profiles (RFC 7714 §12).
const SaltLen = 12

// RFC 3711 §4.3.1 labels of the session keys derived for SRTP.
const (
	labelEncryption = 0x00
	labelSalt       = 0x02
)

// Sealer seals one direction's RTP. It is not safe for concurrent use: the
// sender holds its own lock around Seal.
type Sealer struct {
	aead    cipher.AEAD
	salt    [SaltLen]byte
	streams []stream // a PeerConnection sends few SSRCs: a slice beats a map
	iv      [SaltLen]byte
}

// stream is one SSRC's packet index, as RFC 3711 §3.3.1 keeps it: the
// rollover counter in the high bits, the highest sequence number sent in
// the low 16.
type stream struct {
	ssrc    uint32
	index   uint64
	started bool
}

// ErrExhausted says that an SSRC sent 2^48 packets under one key, after
// which RFC 3711 §9.2 forbids sealing more.
var ErrExhausted = errors.New("srtpgcm: 2^48 packets sealed under one key")

// New returns a Sealer for a master key (16 bytes for AEAD_AES_128_GCM, 32
// for AEAD_AES_256_GCM) and a 12-byte master salt, deriving the session
// key and salt as RFC 7714 §11 and RFC 3711 §4.3 say.
func New(masterKey, masterSalt []byte) (*Sealer, error) {
	if n := len(masterKey); n != 16 && n != 32 {
		return nil, fmt.Errorf("srtpgcm: master key of %d bytes, want 16 or 32", n)
	}
	if len(masterSalt) != SaltLen {
		return nil, fmt.Errorf("srtpgcm: master salt of %d bytes, want %d", len(masterSalt), SaltLen)
	}
	prf, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("srtpgcm: master key: %w", err)
	}
	key := derive(prf, labelEncryption, masterSalt, len(masterKey))
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("srtpgcm: session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("srtpgcm: %w", err)
	}
	s := &Sealer{aead: aead}
	copy(s.salt[:], derive(prf, labelSalt, masterSalt, SaltLen))
	return s, nil
}

// derive is RFC 3711's AES-CM key derivation with a key derivation rate of
// 0: AES in counter mode over (label at bit 48 from the right of the
// 112-bit key_id) XOR the salt, the salt aligned left in the block.
func derive(prf cipher.Block, label byte, masterSalt []byte, n int) []byte {
	var in [aes.BlockSize]byte
	copy(in[:], masterSalt)
	in[7] ^= label
	out := make([]byte, (n+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize)
	for i := 0; i*aes.BlockSize < n; i++ {
		binary.BigEndian.PutUint16(in[aes.BlockSize-2:], uint16(i))
		prf.Encrypt(out[i*aes.BlockSize:], in[:])
	}
	return out[:n]
}

// Seal appends to dst the SRTP packet of h and payload: the header in the
// clear (it is the cipher's associated data), the payload encrypted, the
// tag. dst should have room for h.MarshalSize()+len(payload)+TagLen bytes
// beyond its length, or it grows; payload must not overlap dst's spare
// room.
func (s *Sealer) Seal(dst []byte, h *rtp.Header, payload []byte) ([]byte, error) {
	roc, err := s.rollover(h.SSRC, h.SequenceNumber)
	if err != nil {
		return dst, err
	}
	at, hl := len(dst), h.MarshalSize()
	if need := at + hl + len(payload) + TagLen; need > cap(dst) {
		grown := make([]byte, at, need)
		copy(grown, dst)
		dst = grown
	}
	if _, err := h.MarshalTo(dst[at : at+hl]); err != nil {
		return dst[:at], fmt.Errorf("srtpgcm: header: %w", err)
	}
	// RFC 7714 §8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR the session salt.
	s.iv = [SaltLen]byte{}
	binary.BigEndian.PutUint32(s.iv[2:], h.SSRC)
	binary.BigEndian.PutUint32(s.iv[6:], roc)
	binary.BigEndian.PutUint16(s.iv[10:], h.SequenceNumber)
	for i := range s.iv {
		s.iv[i] ^= s.salt[i]
	}
	end := at + hl
	sealed := s.aead.Seal(dst[end:end], s.iv[:], payload, dst[at:end])
	return dst[:end+len(sealed)], nil
}

// rollover returns the rollover counter for seq of ssrc and notes seq as
// sent, guessing across a wrap as RFC 3711 Appendix A does (and as pion's
// Context does, so that a re-send of an old sequence number gets the
// counter it had).
func (s *Sealer) rollover(ssrc uint32, seq uint16) (uint32, error) {
	var st *stream
	for i := range s.streams {
		if s.streams[i].ssrc == ssrc {
			st = &s.streams[i]
			break
		}
	}
	if st == nil {
		s.streams = append(s.streams, stream{ssrc: ssrc})
		st = &s.streams[len(s.streams)-1]
	}
	if !st.started {
		st.started, st.index = true, uint64(seq)
		return 0, nil
	}
	const median = 1 << 15
	roc, last, next := uint32(st.index>>16), int64(st.index&0xffff), int64(seq)
	guess, diff := roc, next-last
	if st.index > median {
		switch {
		case last < median && next-last > median:
			guess, diff = roc-1, next-last-1<<16 // from before the last wrap
		case last >= median && last-median > next:
			guess, diff = roc+1, next-last+1<<16 // past the next wrap
		}
	}
	if guess == 0 && roc == ^uint32(0) {
		return 0, ErrExhausted
	}
	if diff > 0 {
		st.index += uint64(diff)
	}
	return guess, nil
}
