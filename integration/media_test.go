package integration

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"
	"github.com/pion/webrtc/v4/pkg/media/h265writer"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
)

// Media for the tests: real encoded video and audio from ffmpeg, synthetic
// NAL units, and the checks and decodes of what a viewer received.

// annexB writes the access units from the first keyframe on.
func annexB(t testing.TB, aus []accessUnit) string {
	t.Helper()
	start := -1
	for i, au := range aus {
		if au.key {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("no keyframe among %d access units", len(aus))
	}
	ext := "*.h264"
	if d := aus[start].data; len(d) > 4 && (d[4]>>1)&0x3f == 32 { // starts with an H.265 VPS
		ext = "*.h265"
	}
	f, err := os.CreateTemp(t.TempDir(), ext)
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range aus[start:] {
		if _, err := f.Write(au.data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	return f.Name()
}

// decodeClean decodes a file with ffmpeg and fails on any decoder message;
// it returns width, height and the number of frames ffprobe counts.
func decodeClean(t testing.TB, path string) (w, h, frames int) {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg", "apt-get install ffmpeg")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg decode of %s: err=%v output:\n%s", path, err, out)
	}
	probe := needTool(t, "ffprobe", "apt-get install ffmpeg")
	out, err = exec.Command(probe, "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d,%d,%d", &w, &h, &frames); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return w, h, frames
}

// firstFrameSize is the size of the first decoded picture (an IVF header
// holds only what the writer guessed).
func firstFrameSize(t testing.TB, path string) (w, h int) {
	t.Helper()
	probe := needTool(t, "ffprobe", "apt-get install ffmpeg")
	out, err := exec.Command(probe, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d,%d", &w, &h); err != nil {
		t.Fatalf("ffprobe frame size %q: %v", out, err)
	}
	return w, h
}

// runFFmpeg runs ffmpeg and returns what it wrote to stdout.
func runFFmpeg(t testing.TB, args ...string) []byte {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg", "apt-get install ffmpeg")
	var stderr bytes.Buffer
	c := exec.Command(ffmpeg, append([]string{"-hide_banner", "-nostdin", "-v", "error"}, args...)...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// encodeTestVideo encodes n frames of ffmpeg's testsrc2 at 30 fps with a
// keyframe every 30 frames and returns the frames as each RTP payloader
// takes them: Annex-B access units (H.265) or IVF frames (VP8, VP9, AV1).
func encodeTestVideo(t testing.TB, mime string, w, h, n int) [][]byte {
	t.Helper()
	in := []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30", w, h), "-frames:v", fmt.Sprint(n), "-pix_fmt", "yuv420p"}
	switch mime {
	case webrtc.MimeTypeH265:
		out := runFFmpeg(t, append(in, "-c:v", "libx265", "-preset", "ultrafast",
			"-x265-params", "keyint=30:min-keyint=30:repeat-headers=1:bframes=0:log-level=error", "-f", "hevc", "-")...)
		return splitH265AccessUnits(out)
	case webrtc.MimeTypeAV1:
		return ivfFrameList(t, runFFmpeg(t, append(in, "-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-svtav1-params", "lp=2", "-f", "ivf", "-")...))
	case webrtc.MimeTypeVP8:
		return ivfFrameList(t, runFFmpeg(t, append(in, "-c:v", "libvpx", "-deadline", "realtime", "-g", "30", "-b:v", "600k", "-f", "ivf", "-")...))
	case webrtc.MimeTypeVP9:
		return ivfFrameList(t, runFFmpeg(t, append(in, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-row-mt", "1", "-g", "30", "-b:v", "600k", "-f", "ivf", "-")...))
	}
	t.Fatalf("no encoder for %s", mime)
	return nil
}

func ivfFrameList(t testing.TB, data []byte) [][]byte {
	t.Helper()
	r, _, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ivf: %v", err)
	}
	var out [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ivf frame %d: %v", len(out), err)
		}
		out = append(out, f)
	}
}

// splitH265AccessUnits splits an Annex-B H.265 stream into access units: a new
// one starts at a parameter set, AUD or prefix SEI, or at a slice that is
// the first of its picture, once the current one has a slice.
func splitH265AccessUnits(stream []byte) [][]byte {
	var out [][]byte
	var cur []byte
	haveSlice := false
	for _, nal := range splitAnnexBNALs(stream) {
		typ := (nal[0] >> 1) & 0x3f
		first := typ < 32 && len(nal) > 2 && nal[2]&0x80 != 0
		starts := (typ >= 32 && typ <= 35) || typ == 39 || first
		if starts && haveSlice {
			out = append(out, cur)
			cur, haveSlice = nil, false
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
		if typ < 32 {
			haveSlice = true
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// splitAnnexBNALs returns the NAL units of an Annex-B stream, start codes removed.
func splitAnnexBNALs(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		if start >= 0 {
			end := i
			for end > start && b[end-1] == 0 {
				end--
			}
			nals = append(nals, b[start:end])
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// encodeOpusPackets encodes a 440 Hz tone with libopus in 20 ms packets and
// returns the packets, unwrapped from their Ogg pages.
func encodeOpusPackets(t testing.TB, seconds float64) [][]byte {
	t.Helper()
	ogg := runFFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-f", "ogg", "-")
	var pkts [][]byte
	var cur []byte
	for len(ogg) >= 27 {
		if string(ogg[:4]) != "OggS" {
			t.Fatalf("ogg: lost sync")
		}
		nseg := int(ogg[26])
		lacing := ogg[27 : 27+nseg]
		body := ogg[27+nseg:]
		for _, l := range lacing {
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				pkts = append(pkts, cur)
				cur = nil
			}
		}
		ogg = body
	}
	// The first two packets are the OpusHead and OpusTags headers.
	if len(pkts) < 3 || !bytes.HasPrefix(pkts[0], []byte("OpusHead")) {
		t.Fatalf("ogg: no Opus stream in ffmpeg's output")
	}
	return pkts[2:]
}

// fakeNAL is a NAL unit of the given header and size without zero bytes,
// so no start code can appear in it.
func fakeNAL(header byte, size int) []byte {
	b := make([]byte, size)
	b[0] = header
	for i := 1; i < size; i++ {
		b[i] = byte(1 + rand.IntN(255))
	}
	return b
}

// groupRTPFrames splits video packets into frames by timestamp; audio packets
// are one frame each.
func groupRTPFrames(pkts []*rtp.Packet, audio bool) []rtpFrame {
	var out []rtpFrame
	for i, p := range pkts {
		if audio || i == 0 || p.Timestamp != pkts[i-1].Timestamp {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p.Payload)
	}
	return out
}

// completeFrames counts the video frames of pkts whose last packet carries
// the marker bit.
func completeFrames(pkts []*rtp.Packet) int {
	n := 0
	for i, p := range pkts {
		if p.Marker && (i == len(pkts)-1 || pkts[i+1].Timestamp != p.Timestamp) {
			n++
		}
	}
	return n
}

// requireSameFrames fails unless got is exactly sent: the same frames, each with
// the same payloads byte for byte.
func requireSameFrames(t testing.TB, what string, sent, got []rtpFrame) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("%s: viewer got %d frames, publisher sent %d", what, len(got), len(sent))
	}
	for i := range sent {
		if len(got[i]) != len(sent[i]) {
			t.Fatalf("%s: frame %d has %d packets, sent %d", what, i, len(got[i]), len(sent[i]))
		}
		for j := range sent[i] {
			if !bytes.Equal(got[i][j], sent[i][j]) {
				t.Fatalf("%s: frame %d packet %d differs (%d bytes received, %d sent)", what, i, j, len(got[i][j]), len(sent[i][j]))
			}
		}
	}
}

// requireContinuous fails unless sequence numbers rise by one and every video
// frame ends with the marker bit.
func requireContinuous(t testing.TB, what string, pkts []*rtp.Packet, video bool) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if d := pkts[i].SequenceNumber - pkts[i-1].SequenceNumber; d != 1 {
			t.Fatalf("%s: sequence number jumps by %d at packet %d (%d -> %d)", what, int16(d), i,
				pkts[i-1].SequenceNumber, pkts[i].SequenceNumber)
		}
		if video && pkts[i].Timestamp != pkts[i-1].Timestamp && !pkts[i-1].Marker {
			t.Fatalf("%s: packet %d ends a frame without the marker bit", what, i-1)
		}
	}
}

// depacketizeToFile depacketizes received video into a file ffmpeg reads.
func depacketizeToFile(t testing.TB, mime string, pkts []*rtp.Packet) string {
	t.Helper()
	var ext string
	switch mime {
	case webrtc.MimeTypeH264:
		ext = ".h264"
	case webrtc.MimeTypeH265:
		ext = ".hevc"
	default:
		ext = ".ivf"
	}
	path := filepath.Join(t.TempDir(), "received"+ext)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var w interface {
		WriteRTP(*rtp.Packet) error
		Close() error
	}
	switch mime {
	case webrtc.MimeTypeH264:
		w = h264writer.NewWith(f)
	case webrtc.MimeTypeH265:
		w = h265writer.NewWith(f)
	default:
		iw, err := ivfwriter.NewWith(f, ivfwriter.WithCodec(mime))
		if err != nil {
			t.Fatal(err)
		}
		w = iw
	}
	for _, p := range pkts {
		if err := w.WriteRTP(p); err != nil {
			t.Fatalf("depacketize %s: %v", mime, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
