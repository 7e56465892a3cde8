package ingest

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"whipgate/gateway"
)

// The packetizers are checked against pion's depacketizers: a frame cut
// into packets and put back together by pion must give back every unit RTP
// carries, byte for byte, in order.

// choices hands out the decisions of a frame generator: the bytes of a
// fuzz input, or random ones. Past its end it gives zeros.
type choices struct{ b []byte }

func (c *choices) more() bool { return len(c.b) > 0 }

func (c *choices) byte() byte {
	if len(c.b) == 0 {
		return 0
	}
	b := c.b[0]
	c.b = c.b[1:]
	return b
}

// size picks a unit's size in bytes, at least min: small, around the MTU
// and fragment boundaries, or large.
func (c *choices) size(mtu, min int) int {
	var n int
	switch c.byte() % 4 {
	case 0:
		n = int(c.byte() % 32)
	case 1:
		n = mtu - 4 + int(c.byte()%9)
	case 2:
		n = int(c.byte()) * int(c.byte()%24+1)
	default:
		n = int(c.byte()%5+1)*(mtu-3) + int(c.byte()%5)
	}
	return max(n, min)
}

// genAnnexB makes an access unit of H.264 or H.265 NAL units of every type
// and returns it with the Annex-B stream pion's depacketizer must give back
// for it: every unit RTP carries, behind a four-byte start code.
func genAnnexB(h265 bool, c *choices, rng *rand.Rand, mtu int) (au, want []byte) {
	if c.byte()%4 == 0 {
		au = append(au, 0xde, 0xad) // not a unit: no start code before it
	}
	for n := 0; c.more() && n < 64; n++ {
		if c.byte()%2 == 0 {
			au = append(au, 0)
		}
		au = append(au, 0, 0, 1)
		nal := len(au)
		var carried bool
		if h265 {
			// F = 0 and TemporalId + 1 > 0, as in any valid stream;
			// the 2-byte units of EOS and EOB are left out, as pion's
			// depacketizer cannot take a unit without payload.
			t, layer, tid := c.byte()%64, c.byte()%64, c.byte()%7+1
			au = append(au, t<<1|layer>>5, layer<<3|tid)
			au = appendRBSP(rng, au, len(au)+c.size(mtu, 1), 4)
			carried = t != 35 && t != 38 && t < 48
		} else {
			t := c.byte() % 32
			au = append(au, c.byte()&0x60|t)
			if size := c.size(mtu, 0); size > 0 {
				au = appendRBSP(rng, au, len(au)+size, 4)
			}
			carried = t != 0 && t != 9 && t != 12 && t < 24
		}
		if carried {
			want = append(want, 0, 0, 0, 1)
			want = append(want, au[nal:]...)
		}
		for range c.byte() % 3 {
			au = append(au, 0) // trailing_zero_8bits
		}
	}
	return au, want
}

// genAV1 makes a temporal unit of OBUs of every type, with and without
// extensions, sizes written in more bytes than needed now and then, the
// last one perhaps without its size, and returns it with the OBU stream
// pion's depacketizer must give back: every OBU RTP carries, with its size.
func genAV1(c *choices, rng *rand.Rand, mtu int) (tu, want []byte) {
	for n := 0; c.more() && n < 32; n++ {
		typ := c.byte() % 16
		ext := c.byte()%2 == 0
		h := typ << 3
		if ext {
			h |= 0x04
		}
		size := c.size(mtu, 0)
		last := !c.more() || n == 31
		sized := !last || c.byte()%2 == 0
		if sized {
			h |= 0x02
		}
		obu := []byte{h}
		if ext {
			obu = append(obu, (c.byte()%8)<<5|(c.byte()%4)<<3)
		}
		hdr := slices.Clone(obu)
		if sized {
			obu = appendLEB128(obu, uint64(size))
			if c.byte()%8 == 0 { // the same size in one byte more
				obu[len(obu)-1] |= 0x80
				obu = append(obu, 0)
			}
		}
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		tu = append(append(tu, obu...), payload...)
		if typ != obuTemporalDelimiter && typ != obuTileList && typ != obuPadding {
			hdr[0] |= 0x02
			want = append(want, hdr...)
			want = appendLEB128(want, uint64(size))
			want = append(want, payload...)
		}
	}
	return tu, want
}

// depacketizer is the part of pion's depacketizers the round trip uses.
type depacketizer interface {
	Unmarshal(payload []byte) ([]byte, error)
}

func newDepacketizer(codec gateway.Codec) depacketizer {
	switch codec {
	case gateway.H264:
		return &codecs.H264Packet{}
	case gateway.H265:
		return &codecs.H265Depacketizer{}
	case gateway.AV1:
		return &codecs.AV1Depacketizer{}
	case gateway.VP8:
		return &codecs.VP8Packet{}
	}
	panic("no depacketizer for " + codec)
}

// inPlaceRecorder is a recorder that also counts the payloads it got as
// views of the frame, the hub's copy being their only one.
type inPlaceRecorder struct {
	recorder
	frame   []byte
	inPlace int
}

func (r *inPlaceRecorder) WriteRTP(track int, p *rtp.Packet) {
	if len(r.frame) > 0 && len(p.Payload) > 0 {
		base, at := uintptr(unsafe.Pointer(&r.frame[0])), uintptr(unsafe.Pointer(&p.Payload[0]))
		if at >= base && at+uintptr(len(p.Payload)) <= base+uintptr(len(r.frame)) {
			r.inPlace++
		}
	}
	r.recorder.WriteRTP(track, p)
}

// roundTrip packetizes frame with pk, checks the packets (sizes, marker,
// sequence, timestamp, aggregation headers) and that frame is as it was,
// and returns what pion depacketizes from them and how many packets were
// written in place.
func roundTrip(t testing.TB, pk *packetizer, frame []byte) ([]byte, []rtp.Packet, int) {
	t.Helper()
	orig := slices.Clone(frame)
	rec := inPlaceRecorder{frame: frame}
	seq := pk.seq
	n := pk.writeFrame(&rec, 0, frame, 1234)
	if !bytes.Equal(frame, orig) {
		t.Fatalf("the frame changed in packetizing")
	}
	if n != len(rec.pkts) {
		t.Fatalf("writeFrame says %d packets, wrote %d", n, len(rec.pkts))
	}
	d := newDepacketizer(pk.codec)
	var out []byte
	for i, p := range rec.pkts {
		if len(p.Payload) > pk.mtu || len(p.Payload) == 0 {
			t.Fatalf("packet %d of %d: payload of %d bytes, MTU %d", i, n, len(p.Payload), pk.mtu)
		}
		if p.Marker != (i == n-1) {
			t.Fatalf("packet %d of %d: marker %v", i, n, p.Marker)
		}
		if p.SequenceNumber != seq+uint16(i) || p.Timestamp != 1234 || p.SSRC != pk.ssrc {
			t.Fatalf("packet %d: seq %d ts %d ssrc %d, want %d, 1234, %d", i, p.SequenceNumber, p.Timestamp, p.SSRC, seq+uint16(i), pk.ssrc)
		}
		checkAggregate(t, pk.codec, p.Payload)
		b, err := d.Unmarshal(p.Payload)
		if err != nil {
			t.Fatalf("pion cannot depacketize packet %d of %d (% x...): %v", i, n, p.Payload[:min(len(p.Payload), 8)], err)
		}
		out = append(out, b...)
	}
	return out, rec.pkts, rec.inPlace
}

// checkAggregate checks the header of a STAP-A or AP, which pion's
// depacketizers do not read: F set if any unit's is; the highest NRI
// (H.264), the lowest LayerId and TemporalId (H.265).
func checkAggregate(t testing.TB, codec gateway.Codec, p []byte) {
	t.Helper()
	var hl int
	switch {
	case codec == gateway.H264 && p[0]&0x1f == 24:
		hl = 1
	case codec == gateway.H265 && p[0]>>1&0x3f == 48:
		hl = 2
	default:
		return
	}
	var want []byte
	for off := hl; off+2 <= len(p); {
		n := int(p[off])<<8 | int(p[off+1])
		u := p[off+2 : off+2+n]
		if want == nil {
			want = slices.Clone(u[:hl])
		}
		if codec == gateway.H265 {
			layer := min(want[0]&1<<5|want[1]>>3, u[0]&1<<5|u[1]>>3)
			want[0] = (want[0]|u[0])&0x80 | 48<<1 | layer>>5
			want[1] = layer<<3 | min(want[1]&7, u[1]&7)
		} else {
			want[0] = (want[0]|u[0])&0x80 | max(want[0]&0x60, u[0]&0x60) | 24
		}
		off += 2 + n
	}
	if !bytes.Equal(p[:hl], want) {
		t.Fatalf("aggregation header % x, want % x", p[:hl], want)
	}
}

// checkRoundTrip generates a frame from c and checks that it comes back.
func checkRoundTrip(t testing.TB, codec gateway.Codec, c *choices, rng *rand.Rand, mtu int) {
	t.Helper()
	var frame, want []byte
	if codec == gateway.AV1 {
		frame, want = genAV1(c, rng, mtu)
	} else {
		frame, want = genAnnexB(codec == gateway.H265, c, rng, mtu)
	}
	pk := newPacketizer(codec)
	pk.mtu = mtu
	got, _, _ := roundTrip(t, &pk, frame)
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("mtu %d: depacketized %d bytes, want %d; first difference at %d", mtu, len(got), len(want), i)
	}
}

func TestPacketizeRoundTrip(t *testing.T) {
	for _, codec := range benchCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(codec))))
			for i := range 400 {
				mtu := MTU
				if i%2 == 1 {
					mtu = 16 + rng.IntN(200)
				}
				b := make([]byte, 8+rng.IntN(200))
				for k := range b {
					b[k] = byte(rng.Uint32())
				}
				checkRoundTrip(t, codec, &choices{b}, rng, mtu)
			}
		})
	}
}

// The 100 Mbps benchmark streams come back whole, written in place into
// full packets, and their keyframes start with a packet the hub knows for
// one.
func TestPacketizeBenchStreams(t *testing.T) {
	for _, codec := range benchCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			gop := synthGOP(codec, 3)
			pk := newPacketizer(codec)
			for i, frame := range gop[:3] {
				got, pkts, inPlace := roundTrip(t, &pk, frame)
				var want []byte
				if codec == gateway.AV1 {
					want = frame[2:] // the temporal delimiter is not carried
				} else {
					for _, nal := range bytes.Split(frame, []byte{0, 0, 0, 1})[1:] {
						if !bytes.HasPrefix(nal, []byte{0x09}) && !bytes.HasPrefix(nal, []byte{0x46, 0x01}) { // AUDs are not
							want = append(append(want, 0, 0, 0, 1), nal...)
						}
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d: depacketized %d bytes, want %d", i, len(got), len(want))
				}
				if key := gateway.IsKeyframe(codec, pkts[0].Payload); key != (i == 0) {
					t.Errorf("frame %d: first packet IsKeyframe %v", i, key)
				}
				if full := len(pkts[len(pkts)/2].Payload); full != MTU {
					t.Errorf("frame %d: a middle packet has %d bytes, want the MTU", i, full)
				}
				// Every payload is a view of the frame: the hub's copy
				// into its slab is the only one.
				if inPlace != len(pkts) {
					t.Errorf("frame %d: %d of %d packets written in place", i, inPlace, len(pkts))
				}
			}
		})
	}
}

// Once its buffers have grown, a packetizer allocates nothing.
func TestPacketizeAllocatesNothing(t *testing.T) {
	vp8 := make([]byte, 50_000)
	for i := range vp8 {
		vp8[i] = byte(i)
	}
	for _, codec := range []gateway.Codec{gateway.H264, gateway.H265, gateway.AV1, gateway.VP8} {
		t.Run(codec.Name(), func(t *testing.T) {
			frames := [][]byte{vp8}
			if codec != gateway.VP8 {
				frames = synthGOP(codec, 5)[:2]
			}
			pk := newPacketizer(codec)
			var w discardWriter
			for _, f := range frames {
				pk.writeFrame(&w, 0, f, 0)
			}
			allocs := testing.AllocsPerRun(20, func() {
				for _, f := range frames {
					pk.writeFrame(&w, 0, f, 0)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run of %d frames (%d packets), want 0", allocs, len(frames), w.n)
			}
		})
	}
}

// What a packetizer holds does not grow with the units in a frame: a
// frame of 100,000 tiny units comes back whole.
func TestPacketizeHoldsLittle(t *testing.T) {
	for _, codec := range benchCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			var frame, want []byte
			for i := range 100_000 {
				switch codec {
				case gateway.H264:
					frame = append(frame, 0, 0, 1, 0x41, byte(i)|1)
					want = append(want, 0, 0, 0, 1, 0x41, byte(i)|1)
				case gateway.H265:
					frame = append(frame, 0, 0, 1, 0x02, 0x01, byte(i)|1)
					want = append(want, 0, 0, 0, 1, 0x02, 0x01, byte(i)|1)
				case gateway.AV1:
					frame = append(frame, 0x32, 0x01, byte(i)) // OBU_FRAME of one byte
					want = append(want, 0x32, 0x01, byte(i))
				}
			}
			pk := newPacketizer(codec)
			got, pkts, _ := roundTrip(t, &pk, frame)
			if !bytes.Equal(got, want) {
				t.Fatalf("depacketized %d bytes, want %d", len(got), len(want))
			}
			if c := cap(pk.nals); c > MTU/3 {
				t.Errorf("the packetizer kept room for %d units", c)
			}
			t.Logf("%d packets", len(pkts))
		})
	}
}

type discardWriter struct{ n int }

func (w *discardWriter) WriteRTP(int, *rtp.Packet) { w.n++ }

func fuzzRoundTrip(f *testing.F, codec gateway.Codec) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 8 {
		b := make([]byte, 16+rng.IntN(64))
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		f.Add(b, uint16(rng.IntN(300)))
	}
	f.Fuzz(func(t *testing.T, b []byte, mtu uint16) {
		m := 16 + int(mtu)%(MTU-15)
		checkRoundTrip(t, codec, &choices{b}, rand.New(rand.NewPCG(uint64(len(b)), uint64(mtu))), m)
		// Any bytes at all: no panic, and the checks of roundTrip but
		// for what pion makes of them.
		pk := newPacketizer(codec)
		pk.mtu = m
		var rec recorder
		orig := slices.Clone(b)
		pk.writeFrame(&rec, 0, b, 0)
		if !bytes.Equal(b, orig) {
			t.Fatal("the frame changed in packetizing")
		}
		for i, p := range rec.pkts {
			if len(p.Payload) > m || p.Marker != (i == len(rec.pkts)-1) {
				t.Fatalf("packet %d of %d: %d bytes (MTU %d), marker %v", i, len(rec.pkts), len(p.Payload), m, p.Marker)
			}
		}
	})
}

func FuzzPacketizeH264(f *testing.F) { fuzzRoundTrip(f, gateway.H264) }
func FuzzPacketizeH265(f *testing.F) { fuzzRoundTrip(f, gateway.H265) }
func FuzzPacketizeAV1(f *testing.F)  { fuzzRoundTrip(f, gateway.AV1) }

// VP8 frames come back whole, the picture ID counting frames, in the very
// packets pion's payloader made.
func TestPacketizeVP8(t *testing.T) {
	pk := newPacketizer(gateway.VP8)
	pion := codecs.VP8Payloader{EnablePictureID: true}
	rng := rand.New(rand.NewPCG(1, 2))
	var lastID uint16
	for i, size := range []int{1, MTU - 4, MTU - 3, 3 * (MTU - 4), 10_000} {
		frame := make([]byte, size)
		for k := range frame {
			frame[k] = byte(rng.Uint32())
		}
		got, pkts, _ := roundTrip(t, &pk, frame)
		if !bytes.Equal(got, frame) {
			t.Fatalf("frame of %d bytes: depacketized %d bytes", size, len(got))
		}
		want := pion.Payload(MTU, frame)
		if len(want) != len(pkts) {
			t.Fatalf("frame %d: %d packets, pion's payloader makes %d", i, len(pkts), len(want))
		}
		for k, p := range pkts {
			if !bytes.Equal(p.Payload, want[k]) {
				t.Fatalf("frame %d packet %d differs from pion's", i, k)
			}
		}
		var d codecs.VP8Packet
		for k, p := range pkts {
			if _, err := d.Unmarshal(p.Payload); err != nil {
				t.Fatal(err)
			}
			if d.S != 0 != (k == 0) || d.I != 1 || k > 0 && d.PictureID != lastID {
				t.Fatalf("frame %d packet %d: S %d I %d picture ID %d", i, k, d.S, d.I, d.PictureID)
			}
			if k == 0 && i > 0 && d.PictureID != (lastID+1)&0x7fff {
				t.Fatalf("frame %d: picture ID %d after %d", i, d.PictureID, lastID)
			}
			lastID = d.PictureID
		}
	}
}
