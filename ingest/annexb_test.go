package ingest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"whipgate/gateway"
	"whipgate/internal/testkit"
)

// recorder is a TrackWriter that keeps copies of what it is given.
type recorder struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (r *recorder) WriteRTP(track int, p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *p
	c.Payload = slices.Clone(p.Payload)
	r.pkts = append(r.pkts, c)
}

// nalTypes depacketizes the recorded frames and lists each frame's NAL
// unit types.
func (r *recorder) nalTypes(t *testing.T, h265 bool) [][]int {
	t.Helper()
	var frames [][]int
	var au []byte
	var d264 codecs.H264Packet
	var d265 codecs.H265Depacketizer
	for i, p := range r.pkts {
		if i > 0 && p.SequenceNumber != r.pkts[i-1].SequenceNumber+1 {
			t.Errorf("sequence jumps from %d to %d", r.pkts[i-1].SequenceNumber, p.SequenceNumber)
		}
		var b []byte
		var err error
		if h265 {
			b, err = d265.Unmarshal(p.Payload)
		} else {
			b, err = d264.Unmarshal(p.Payload)
		}
		if err != nil {
			t.Fatalf("depacketize: %v", err)
		}
		au = append(au, b...)
		if !p.Marker {
			continue
		}
		var types []int
		for _, nal := range bytes.Split(au, []byte{0, 0, 0, 1})[1:] {
			if h265 {
				types = append(types, int(nal[0]>>1)&0x3f)
			} else {
				types = append(types, int(nal[0]&0x1f))
			}
		}
		frames = append(frames, types)
		au = nil
	}
	return frames
}

func nal(startCode4 bool, b ...byte) []byte {
	sc := []byte{0, 0, 1}
	if startCode4 {
		sc = []byte{0, 0, 0, 1}
	}
	return append(sc, b...)
}

func TestAnnexBAccessUnits(t *testing.T) {
	body := bytes.Repeat([]byte{0x5a}, 3000) // longer than the MTU: fragmented
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name  string
		codec gateway.Codec
		in    []byte
		want  [][]int
	}{
		{
			name:  "h265 multi-segment pictures, suffix SEI, junk before, stub after",
			codec: gateway.H265,
			in: cat([]byte{0xde, 0xad, 0},
				nal(true, 0x40, 0x01, 0x0c), nal(true, 0x42, 0x01, 0x01), nal(false, 0x44, 0x01, 0xc0), nal(false, 0x4e, 0x01, 0x05),
				nal(true, 0x26, 0x01, 0x80|0x2f), body, nal(false, 0x26, 0x01, 0x40), body, nal(false, 0x50, 0x01, 0x05),
				nal(true, 0x02, 0x01, 0x80), body, nal(false, 0x02, 0x01, 0x40),
				nal(true, 0x46, 0x01, 0x50), nal(true, 0x02, 0x01, 0x80),
				nal(true, 0x02, 0x01, 0x80),
				[]byte{0, 0, 1, 0x02}),
			want: [][]int{{32, 33, 34, 39, 19, 19, 40}, {1, 1}, {1}, {1}},
		},
		{
			name:  "h264 IDR without parameter sets gets them after its AUD",
			codec: gateway.H264,
			in: cat(nal(true, 0x09, 0xf0), nal(true, 0x67, 0x42, 0xc0, 0x1f), nal(true, 0x68, 0xce, 0x3c, 0x80), nal(true, 0x65, 0x88), body,
				nal(true, 0x09, 0xf0), nal(true, 0x41, 0x9a), body,
				nal(true, 0x09, 0xf0), nal(true, 0x06, 0x05, 0x80), nal(true, 0x65, 0x88), body),
			want: [][]int{{7, 8, 5}, {1}, {7, 8, 6, 5}},
		},
		{
			name:  "h264 slices and a picture without AUD",
			codec: gateway.H264,
			in: cat(nal(true, 0x67, 0x42, 0xc0, 0x1f), nal(true, 0x68, 0xce, 0x3c, 0x80), nal(true, 0x65, 0x88), nal(false, 0x65, 0x40),
				nal(true, 0x41, 0x9a), nal(false, 0x41, 0x40), nal(false, 0x41, 0x20),
				nal(true, 0x06, 0x05), nal(true, 0x41, 0x9a)),
			want: [][]int{{7, 8, 5, 5}, {1, 1, 1}, {6, 1}},
		},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			name := tc.name
			if oneByte {
				name += ", one byte per read"
			}
			t.Run(name, func(t *testing.T) {
				pr, err := NewPipeReader(PipeConfig{Codec: tc.codec, FPS: 25}, testLog(t))
				if err != nil {
					t.Fatal(err)
				}
				var r recorder
				var in = bytes.NewReader(tc.in)
				var src = iotestReader(in, oneByte)
				if err := pr.Ingest(t.Context(), src, &r, 0); err != nil {
					t.Fatal(err)
				}
				got := r.nalTypes(t, tc.codec == gateway.H265)
				if !slices.EqualFunc(got, tc.want, slices.Equal) {
					t.Errorf("frames by NAL types:\n got %v\nwant %v", got, tc.want)
				}
				var last uint32
				for i, p := range r.pkts {
					if i > 0 && p.Timestamp != last && p.Timestamp-last != 3600 {
						t.Errorf("timestamp step %d, want 3600 at 25 fps", p.Timestamp-last)
					}
					last = p.Timestamp
				}
			})
		}
	}
}

func iotestReader(r *bytes.Reader, oneByte bool) interface{ Read([]byte) (int, error) } {
	if oneByte {
		return iotest.OneByteReader(r)
	}
	return r
}

// Access units larger than the read buffer, read in odd pieces so the
// buffer is both compacted and grown under them, come out byte for byte,
// the one without parameter sets with the cached ones put back.
func TestAnnexBLargeAccessUnits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	slice := func(hdr byte, size int) []byte {
		return appendRBSP(rng, []byte{0, 0, 0, 1, hdr, 0x80}, size, 16)
	}
	aud := nal(true, 0x09, 0xf0)
	sps, pps := nal(true, 0x67, 0x42, 0xc0, 0x1f), nal(true, 0x68, 0xce, 0x3c, 0x80)
	idr1, p, idr2 := slice(0x65, 6<<20), slice(0x41, 100<<10), slice(0x65, 5<<20)
	in := bytes.Join([][]byte{aud, sps, pps, idr1, aud, p, aud, idr2, aud, p}, nil)
	want := bytes.Join([][]byte{sps, pps, idr1, p, sps, pps, idr2, p}, nil)

	pr, err := NewPipeReader(PipeConfig{Codec: gateway.H264, FPS: 30}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	if err := pr.Ingest(t.Context(), iotest.HalfReader(bytes.NewReader(in)), &r, 0); err != nil {
		t.Fatal(err)
	}
	var d codecs.H264Packet
	var got []byte
	frames := 0
	for _, p := range r.pkts {
		b, err := d.Unmarshal(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
		if p.Marker {
			frames++
		}
	}
	if frames != 4 || !bytes.Equal(got, want) {
		t.Errorf("%d frames of %d bytes, want 4 of %d", frames, len(got), len(want))
	}
}

// A read blocked on an idle pipe ends when ctx is done.
func TestPipeIngestCancel(t *testing.T) {
	pr, err := NewPipeReader(PipeConfig{Codec: gateway.H264}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	defer wr.Close()
	if _, err := wr.Write(nal(true, 0x09, 0xf0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- pr.Ingest(ctx, rd, &recorder{}, 0) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := testkit.Returned(t, done, 5*time.Second, "Ingest returning after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ingest returned %v, want context.Canceled", err)
	}
}

func TestPipeIngestRejectsWrongStream(t *testing.T) {
	cases := []struct {
		name string
		cfg  PipeConfig
		in   []byte
	}{
		{"ivf of another codec", PipeConfig{Codec: gateway.VP9}, append([]byte("DKIF\x00\x00\x20\x00VP80"), make([]byte, 20)...)},
		{"not ivf", PipeConfig{Codec: gateway.VP8}, bytes.Repeat([]byte{1}, 64)},
		{"obu without sizes", PipeConfig{Codec: gateway.AV1}, []byte{0x10, 0x00}},
		{"annexb frame over the limit", PipeConfig{Codec: gateway.H264, MaxFrameBytes: 1 << 20},
			append(nal(true, 0x65, 0x88), bytes.Repeat([]byte{0x5a}, 6<<20)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := NewPipeReader(tc.cfg, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := pr.Ingest(t.Context(), bytes.NewReader(tc.in), &recorder{}, 0); err == nil {
				t.Error("Ingest accepted it")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"pipe ok", PipeConfig{Codec: "hevc"}.Validate()},
		{"pipe av1 ivf ok", PipeConfig{Codec: "av1", Container: IVF}.Validate()},
		{"rtp ok", RTPConfig{Codec: "h264", Listen: "127.0.0.1:5004"}.Validate()},
		{"test ok", TestSourceConfig{}.Validate()},
		{"rtp source ok", RTPSourceConfig{Stream: "s", Layers: []RTPConfig{{Layer: "main", Codec: "h265"}, {Layer: "preview", Codec: "h264"}}}.Validate()},
	}
	for _, tc := range cases {
		if tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	bad := []struct {
		name string
		err  error
	}{
		{"pipe no codec", PipeConfig{}.Validate()},
		{"pipe unknown codec", PipeConfig{Codec: "mpeg2"}.Validate()},
		{"pipe h264 in ivf", PipeConfig{Codec: "h264", Container: IVF}.Validate()},
		{"pipe vp8 in obu", PipeConfig{Codec: "vp8", Container: OBU}.Validate()},
		{"pipe negative fps", PipeConfig{Codec: "h264", FPS: -1}.Validate()},
		{"rtp no codec", RTPConfig{}.Validate()},
		{"rtp bad rtcp port", RTPConfig{Codec: "h264", RTCPPort: 70000}.Validate()},
		{"rtp reorder too big", RTPConfig{Codec: "h264", ReorderPackets: 100000}.Validate()},
		{"test odd width", TestSourceConfig{Main: TestLayerConfig{Width: 641}}.Validate()},
		{"test fps too high", TestSourceConfig{Preview: TestLayerConfig{FPS: 1000}}.Validate()},
		{"rtp source no stream", RTPSourceConfig{Layers: []RTPConfig{{Codec: "h264"}}}.Validate()},
		{"rtp source no layers", RTPSourceConfig{Stream: "s"}.Validate()},
		{"rtp source same layer twice", RTPSourceConfig{Stream: "s", Layers: []RTPConfig{{Codec: "h264"}, {Codec: "h264"}}}.Validate()},
	}
	for _, tc := range bad {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// indexStartCode finds what bytes.Index(b, startCode) finds, wherever the
// zeros and ones fall: a start code at either end, runs of zeros before
// it, 0x01 bytes without two zeros before them, lone and double zeros.
func TestIndexStartCode(t *testing.T) {
	for _, b := range [][]byte{
		nil, {1}, {0, 1}, {0, 0}, {0, 0, 1}, {0, 0, 0, 1}, {1, 0, 0, 1}, {0, 1, 0, 0, 1},
		{9, 1, 1, 0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 1}, {0, 0, 0, 0, 0}, {5, 0, 0},
	} {
		if got, want := indexStartCode(b), bytes.Index(b, startCode); got != want {
			t.Errorf("indexStartCode(% x) = %d, want %d", b, got, want)
		}
	}
}

func FuzzIndexStartCode(f *testing.F) {
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{1, 0, 1, 0, 0, 0, 1, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := indexStartCode(b), bytes.Index(b, startCode); got != want {
			t.Fatalf("indexStartCode(% x) = %d, want %d", b, got, want)
		}
	})
}
