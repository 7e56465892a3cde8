package gateway

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/rtp"
	pioncodecs "github.com/pion/rtp/codecs"
)

// TestKeyframesOfRealEncoders runs real encoders (ffmpeg with libx264,
// libx265, SVT-AV1 and libvpx) with a keyframe every 10 frames, packetizes
// their output with pion's payloaders, pushes it through the hub and checks
// that exactly the frames ffprobe calls keyframes start with a KeyStart
// packet, on their first packet.
func TestKeyframesOfRealEncoders(t *testing.T) {
	for _, tc := range []struct {
		codec Codec
		args  []string // encoder and muxer
		ext   string
		split func(t *testing.T, data []byte) [][]byte
		pay   func() rtp.Payloader
	}{
		{H264, []string{"-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-bf", "0", "-bsf:v", "h264_metadata=aud=insert", "-f", "h264"},
			"h264", splitAnnexB(func(h byte) bool { return h&0x1f == 9 }), func() rtp.Payloader { return &pioncodecs.H264Payloader{} }},
		{H265, []string{"-c:v", "libx265", "-x265-params", "keyint=10:min-keyint=10:scenecut=0:bframes=0:log-level=error", "-bsf:v", "hevc_metadata=aud=insert", "-f", "hevc"},
			"h265", splitAnnexB(func(h byte) bool { return (h>>1)&0x3f == 35 }), func() rtp.Payloader { return &pioncodecs.H265Payloader{} }},
		{AV1, []string{"-c:v", "libsvtav1", "-g", "10", "-preset", "12", "-f", "ivf"},
			"ivf", splitIVF, func() rtp.Payloader { return &pioncodecs.AV1Payloader{} }},
		{VP8, []string{"-c:v", "libvpx", "-g", "10", "-keyint_min", "10", "-deadline", "realtime", "-cpu-used", "16", "-lag-in-frames", "0", "-f", "ivf"},
			"ivf", splitIVF, func() rtp.Payloader { return &pioncodecs.VP8Payloader{EnablePictureID: true} }},
		{VP9, []string{"-c:v", "libvpx-vp9", "-g", "10", "-keyint_min", "10", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-f", "ivf"},
			"ivf", splitIVF, func() rtp.Payloader { return &pioncodecs.VP9Payloader{} }},
	} {
		t.Run(tc.codec.Name(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out."+tc.ext)
			args := append([]string{"-hide_banner", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
				"-frames:v", "30", "-pix_fmt", "yuv420p"}, tc.args...)
			run(t, "ffmpeg", append(args, path)...)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			frames := tc.split(t, data)
			keys := ffprobeKeys(t, path)
			if len(frames) != len(keys) || len(frames) != 30 {
				t.Fatalf("split %d frames, ffprobe lists %d; want 30 of each", len(frames), len(keys))
			}
			wantKeys := 0
			for _, k := range keys {
				if k {
					wantKeys++
				}
			}
			if wantKeys != 3 {
				t.Fatalf("ffprobe lists %d keyframes, want 3 (every 10 frames)", wantKeys)
			}

			hub := newTestHub(t, Config{})
			pub, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: tc.codec}}, PublishOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sub := subscribe(t, hub, "cam", "main")
			pay := tc.pay()
			var pkt rtp.Packet
			for i, f := range frames {
				payloads := pay.Payload(1200, f)
				if len(payloads) == 0 {
					t.Fatalf("frame %d (%d bytes): the payloader made no packets", i, len(f))
				}
				for j, p := range payloads {
					pkt.Header = rtp.Header{Version: 2, SequenceNumber: pkt.SequenceNumber + 1, Timestamp: uint32(i) * 3000, Marker: j == len(payloads)-1}
					pkt.Payload = p
					pub.WriteRTP(0, &pkt)
				}
			}

			got := drain(t, sub)
			byFrame := map[uint32][]Out{}
			for _, o := range got {
				byFrame[o.Timestamp/3000] = append(byFrame[o.Timestamp/3000], o)
			}
			if len(byFrame) != 30 {
				t.Fatalf("subscriber got packets of %d frames, want 30", len(byFrame))
			}
			for i, want := range keys {
				pkts := byFrame[uint32(i)]
				for j, o := range pkts {
					if o.KeyStart != (want && j == 0) {
						t.Errorf("frame %d (keyframe: %v) packet %d of %d (% x…): KeyStart %v",
							i, want, j, len(pkts), o.Payload[:min(6, len(o.Payload))], o.KeyStart)
					}
				}
			}
			if tr := hub.Streams()[0].Tracks[0]; tr.Keyframes != uint64(wantKeys) || tr.Frames != 30 {
				t.Errorf("track stats: %d keyframes in %d frames, want %d in 30", tr.Keyframes, tr.Frames, wantKeys)
			}
		})
	}
}

// run runs a real tool and fails the test with its output if it fails.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not on PATH (%v): ./test.sh (which .ci/run runs) installs it; for ffmpeg and ffprobe: apt-get install -y ffmpeg", name, err)
	}
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = append(os.Environ(), "SVT_LOG=1") // SVT-AV1 prints its banner otherwise
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// ffprobeKeys lists, per coded frame, whether ffprobe flags it a keyframe.
func ffprobeKeys(t *testing.T, path string) []bool {
	out := run(t, "ffprobe", "-v", "error", "-show_entries", "packet=flags", "-of", "csv=p=0", path)
	var keys []bool
	for _, line := range strings.Fields(string(out)) {
		keys = append(keys, strings.HasPrefix(line, "K"))
	}
	return keys
}

// splitAnnexB cuts an Annex B byte stream into access units at each access
// unit delimiter, which isAUD recognises by the NAL header's first byte.
func splitAnnexB(isAUD func(byte) bool) func(t *testing.T, data []byte) [][]byte {
	return func(t *testing.T, data []byte) [][]byte {
		var aus [][]byte
		start := -1
		for i := 0; i+4 < len(data); i++ {
			if data[i] == 0 && data[i+1] == 0 && data[i+2] == 0 && data[i+3] == 1 && isAUD(data[i+4]) {
				if start >= 0 {
					aus = append(aus, data[start:i])
				}
				start = i
			}
		}
		if start < 0 {
			t.Fatal("no access unit delimiters in the stream")
		}
		return append(aus, data[start:])
	}
}

// splitIVF returns the frames of an IVF file.
func splitIVF(t *testing.T, data []byte) [][]byte {
	if len(data) < 32 || string(data[:4]) != "DKIF" {
		t.Fatal("not an IVF file")
	}
	var frames [][]byte
	for off := int(binary.LittleEndian.Uint16(data[6:])); off < len(data); {
		if off+12 > len(data) {
			t.Fatalf("IVF frame header cut at %d", off)
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		off += 12
		if off+n > len(data) {
			t.Fatalf("IVF frame of %d bytes cut at %d", n, off)
		}
		frames = append(frames, data[off:off+n])
		off += n
	}
	return frames
}
