package rtc

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// FuzzDirectIngest drives the shared socket's RTP path beneath pion
// (ingestTable.take, directIngest.take) with two publishers, each with
// fixed SRTP keys, declared SSRCs and the address of its selected pair.
// Each op is 4 bytes: a kind, then arguments; kinds send a valid SRTP
// packet, a burst of them, garbage, a valid packet with a byte changed, a
// replay, from one of six addresses (each publisher's, the first's as
// IPv4-mapped IPv6, three unknown), or drain or close a queue.
// (A replay may decrypt: a publisher that did not take it first has not
// seen it.)
//
// A datagram from an address neither publisher knows is taken only if it
// decrypts with a publisher's keys, and only then is its address learnt;
// an undeclared SSRC is never taken; every datagram taken is counted once
// (taken, dropped or undecryptable) by the publisher that took it; each
// queue stays within ingestQueueMax packets; and a queue gives back
// exactly the packets counted as taken for its SSRC, decrypted, in order.
func FuzzDirectIngest(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 0, 1, 0, 20, 4, 0, 0, 0, 0, 0, 2, 30, 2, 0, 2, 12, 3, 0, 2, 7})
	f.Add([]byte{0, 0, 3, 10, 7, 0, 2, 0, 0, 2, 5, 40, 4, 1, 0, 0})
	f.Add([]byte{5, 0, 0, 0, 2, 0, 3, 30, 3, 0, 4, 9, 0, 0, 4, 12, 4, 0, 0, 0})
	f.Add([]byte{6, 0, 0, 20, 6, 0, 0, 20, 6, 0, 0, 20, 2, 0, 5, 16, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		rig := newIngestFuzzRig(t)
		for i := 0; i+4 <= len(ops); i += 4 {
			rig.op(t, ops[i], ops[i+1], ops[i+2], ops[i+3])
			rig.check(t)
		}
		rig.op(t, 4, 0, 0, 0)
		rig.op(t, 4, 1, 0, 0)
	})
}

// ingestFuzzPub is one publisher of the rig: its directIngest, the context
// its packets are sealed with, and what it should give back.
type ingestFuzzPub struct {
	d       *directIngest
	send    *srtp.Context
	ssrcs   []uint32
	home    netip.AddrPort
	allowed map[netip.AddrPort]bool // addresses it may know
	queued  map[uint32][][]byte     // plaintext packets counted taken, by SSRC
	count   uint64                  // datagrams it took
}

type ingestFuzzRig struct {
	table ingestTable
	pubs  [2]*ingestFuzzPub
	addrs []netip.AddrPort
	seq   map[uint32]uint16
	last  []byte // the last valid datagram, for a replay
	lastP []byte // and its plaintext
}

func newIngestFuzzRig(t *testing.T) *ingestFuzzRig {
	t.Helper()
	rig := &ingestFuzzRig{seq: map[uint32]uint16{}, addrs: []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.10:50000"),
		netip.MustParseAddrPort("[2001:db8::20]:50002"),
		netip.MustParseAddrPort("[::ffff:192.0.2.10]:50000"), // the first publisher's, as IPv4-mapped IPv6
		netip.MustParseAddrPort("192.0.2.10:50001"),
		netip.MustParseAddrPort("198.51.100.7:50000"),
		netip.MustParseAddrPort("[2001:db8::99]:50000"),
	}}
	for i := range rig.pubs {
		key := bytes.Repeat([]byte{byte(0x11 * (i + 1))}, 16)
		salt := bytes.Repeat([]byte{byte(0x22 * (i + 1))}, 14)
		profile := srtp.ProtectionProfileAes128CmHmacSha1_80
		recv, err := srtp.CreateContext(key, salt, profile, srtp.SRTPReplayProtection(64))
		if err != nil {
			t.Fatal(err)
		}
		send, err := srtp.CreateContext(key, salt, profile)
		if err != nil {
			t.Fatal(err)
		}
		p := &ingestFuzzPub{d: newDirectIngest(slog.New(slog.DiscardHandler)), send: send, home: rig.addrs[i],
			ssrcs: []uint32{uint32(1000*(i+1) + 1), uint32(1000*(i+1) + 2)}, allowed: map[netip.AddrPort]bool{}, queued: map[uint32][][]byte{}}
		for _, s := range p.ssrcs {
			p.d.declared[s] = true
		}
		p.d.ctx = recv // as readyLocked makes it from the handshake's keys
		p.d.ours.Store(true)
		p.d.learn(p.home) // the selected pair
		p.allowed[p.home] = true
		rig.pubs[i] = p
		rig.table.add(p.d)
	}
	return rig
}

func unmapped(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// knownTo is the publisher that knows from, or nil.
func (rig *ingestFuzzRig) knownTo(from netip.AddrPort) *ingestFuzzPub {
	for _, p := range rig.pubs {
		if p.d.knows(unmapped(from)) {
			return p
		}
	}
	return nil
}

// packet seals a packet of ssrc (an undeclared one for ssrc index 4 and
// up) with its publisher's keys; it returns the plaintext too.
func (rig *ingestFuzzRig) packet(t *testing.T, which byte, size int) (*ingestFuzzPub, uint32, []byte, []byte) {
	t.Helper()
	p := rig.pubs[which%4/2]
	ssrc := p.ssrcs[which%2]
	if which%8 >= 4 {
		ssrc += 500 // not declared
	}
	rig.seq[ssrc]++
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(int(rig.seq[ssrc]) + i)
	}
	plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: rig.seq[ssrc], Timestamp: uint32(rig.seq[ssrc]) * 3000, SSRC: ssrc}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.send.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, ssrc, plain, enc
}

// take offers b from from to the table and checks who took it.
func (rig *ingestFuzzRig) take(t *testing.T, b []byte, from netip.AddrPort, decrypts bool, ssrc uint32, plain []byte) {
	t.Helper()
	owner := rig.knownTo(from)
	var before [2]uint64
	var takenBefore [2]uint64
	for i, p := range rig.pubs {
		taken, dropped, bad := p.d.stats()
		before[i], takenBefore[i] = taken+dropped+bad, taken
	}
	got, a := rig.table.take(b, from)
	if a == authOK && !decrypts {
		t.Fatalf("a datagram that does not decrypt authenticated for the read gate")
	}
	took := -1
	for i, p := range rig.pubs {
		taken, dropped, bad := p.d.stats()
		switch n := taken + dropped + bad - before[i]; {
		case n > 1 || n == 1 && took >= 0:
			t.Fatalf("one datagram counted %d times", n)
		case n == 1:
			took = i
			p.count++
			if taken > takenBefore[i] {
				p.queued[ssrc] = append(p.queued[ssrc], plain)
			}
		}
	}
	if got != (took >= 0) {
		t.Fatalf("take = %v, counted by publisher %d", got, took)
	}
	if !got {
		return
	}
	p := rig.pubs[took]
	if !p.d.declared[ssrc] && decrypts {
		t.Fatalf("publisher %d took a packet of undeclared SSRC %d", took, ssrc)
	}
	if owner == nil && !decrypts {
		t.Fatalf("a datagram from unknown %v that does not decrypt was taken by publisher %d", from, took)
	}
	if owner == nil {
		p.allowed[unmapped(from)] = true // it decrypted: the publisher's now
	}
}

func (rig *ingestFuzzRig) op(t *testing.T, kind, a, b, c byte) {
	t.Helper()
	from := rig.addrs[int(a)%len(rig.addrs)]
	switch kind % 8 {
	case 0, 1: // a valid packet
		_, ssrc, plain, enc := rig.packet(t, b, int(c))
		rig.last, rig.lastP = bytes.Clone(enc), plain
		rig.take(t, enc, from, true, ssrc, plain)
	case 2: // garbage that looks like RTP
		g := make([]byte, 12+int(c))
		for i := range g {
			g[i] = byte(i*int(b+1) + int(c))
		}
		g[0], g[1] = 0x80, 96
		ssrc := rig.pubs[b%2].ssrcs[(b/2)%2]
		binary.BigEndian.PutUint32(g[8:], ssrc)
		rig.take(t, g, from, false, ssrc, nil)
	case 3: // a valid packet with one byte changed
		_, _, _, enc := rig.packet(t, b, int(c))
		enc[int(c)%len(enc)] ^= b | 1
		rig.take(t, enc, from, false, binary.BigEndian.Uint32(enc[8:]), nil)
	case 4: // a publisher's reader drains its queues
		p := rig.pubs[a%2]
		for _, ssrc := range p.ssrcs {
			p.drain(t, ssrc)
		}
	case 5: // a stream is unbound: its queue closes
		p := rig.pubs[a%2]
		p.d.unbind(p.ssrcs[b%2])
	case 6: // a burst, nobody reading: the queue must stay bounded
		for range int(c) * 8 {
			_, ssrc, plain, enc := rig.packet(t, b%2, 100)
			rig.take(t, enc, rig.pubs[0].home, true, ssrc, plain)
		}
	case 7: // the last valid datagram again: a replay, or new to a publisher that did not take it
		if rig.last != nil {
			rig.take(t, bytes.Clone(rig.last), from, true, binary.BigEndian.Uint32(rig.last[8:]), rig.lastP)
		}
	}
}

// drain reads ssrc's queue until it is empty and checks it gave back what
// was taken.
func (p *ingestFuzzPub) drain(t *testing.T, ssrc uint32) {
	t.Helper()
	p.d.mu.Lock()
	q := p.d.queues[ssrc]
	p.d.mu.Unlock()
	if q == nil {
		if len(p.queued[ssrc]) > 0 {
			t.Fatalf("SSRC %d: %d packets counted taken, no queue", ssrc, len(p.queued[ssrc]))
		}
		return
	}
	buf := make([]byte, 1600)
	for {
		q.mu.Lock()
		n := q.n
		q.mu.Unlock()
		if n == 0 {
			break
		}
		got, _, err := q.Read(buf, nil)
		if err != nil {
			t.Fatalf("SSRC %d: read: %v", ssrc, err)
		}
		if len(p.queued[ssrc]) == 0 {
			t.Fatalf("SSRC %d: the queue gave a packet nobody counted taken", ssrc)
		}
		if want := p.queued[ssrc][0]; !bytes.Equal(buf[:got], want) {
			t.Fatalf("SSRC %d: read\n% x\nwant\n% x", ssrc, buf[:got], want)
		}
		p.queued[ssrc] = p.queued[ssrc][1:]
	}
	if len(p.queued[ssrc]) > 0 {
		t.Fatalf("SSRC %d: %d packets counted taken never came out", ssrc, len(p.queued[ssrc]))
	}
}

// check holds between ops: each publisher knows only addresses it may,
// and its queues are bounded.
func (rig *ingestFuzzRig) check(t *testing.T) {
	t.Helper()
	for i, p := range rig.pubs {
		for _, a := range p.d.addrs.load() {
			if !p.allowed[a] {
				t.Fatalf("publisher %d learnt %v, which sent it nothing that decrypts", i, a)
			}
		}
		p.d.mu.Lock()
		for ssrc, q := range p.d.queues {
			q.mu.Lock()
			n, slots := q.n, len(q.slots)
			q.mu.Unlock()
			if n > slots || slots > ingestQueueMax {
				p.d.mu.Unlock()
				t.Fatalf("publisher %d SSRC %d: %d packets in %d slots (max %d)", i, ssrc, n, slots, ingestQueueMax)
			}
		}
		p.d.mu.Unlock()
	}
}
