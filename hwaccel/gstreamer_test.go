package hwaccel

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freeUDPPort finds a port for the pipeline's own RTCP socket.
func freeUDPPort(t *testing.T) int {
	c := listenUDP(t)
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// h264Keyframe reports whether an RTP H.264 payload starts an IDR or
// carries an SPS (STAP-A with parameter sets, sent with every IDR).
func h264Keyframe(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	switch t := payload[0] & 0x1f; t {
	case 5, 7:
		return true
	case 24: // STAP-A: 2-byte sizes, then NAL units
		for p := payload[1:]; len(p) > 2; {
			n := int(binary.BigEndian.Uint16(p))
			if n == 0 || 2+n > len(p) {
				return false
			}
			if nt := p[2] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			p = p[2+n:]
		}
	case 28: // FU-A: start bit and the real type in the FU header
		return payload[1]&0x80 != 0 && payload[1]&0x1f == 5
	}
	return false
}

// TestSoftwareGStreamerRTP launches the GStreamer software variant for real:
// main as H.264 RTP to a UDP port with rtpbin, preview on a pipe. It checks
// the RTP packets and that a PLI sent to the feedback port yields an IDR
// long before the 10 s GOP would.
func TestSoftwareGStreamerRTP(t *testing.T) {
	needTool(t, "gst-launch-1.0", "apt-get install -y gstreamer1.0-tools gstreamer1.0-plugins-{base,good,bad,ugly}")
	rtpConn, rtcpConn := listenUDP(t), listenUDP(t)
	feedback := freeUDPPort(t)
	cfg := Config{
		Tool:  ToolGStreamer,
		Input: InputConfig{Width: 640, Height: 360, FPS: 30},
		Layers: []LayerConfig{
			{Name: "main", Codec: H264, GOP: 300, Transport: TransportRTP,
				Port:     rtpConn.LocalAddr().(*net.UDPAddr).Port,
				RTCPPort: rtcpConn.LocalAddr().(*net.UDPAddr).Port, FeedbackPort: feedback},
			{Name: "preview", Codec: H264, Width: 320, Height: 180},
		},
		Watchdog: WatchdogConfig{FirstFrame: -1, Stall: -1},
	}
	s, err := NewSupervisor(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if o := s.Pipelines()[0].Outputs[0]; !o.KeyframeOnPLI || o.Container != ContainerRTP || o.FeedbackPort != feedback {
		t.Fatalf("main output %+v: want RTP with PLI on port %d", o, feedback)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context, run *Run) error {
			_, err := io.Copy(io.Discard, run.Outputs["preview"])
			return err
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	buf := make([]byte, 2048)
	var ssrc uint32
	// read returns the next RTP packet's keyframe flag.
	read := func(deadline time.Time) (bool, error) {
		rtpConn.SetReadDeadline(deadline)
		n, err := rtpConn.Read(buf)
		if err != nil {
			return false, err
		}
		if n > 1200 {
			t.Errorf("RTP packet of %d bytes, want <= 1200", n)
		}
		if n < 12 || buf[0]>>6 != 2 {
			return false, errors.New("not an RTP packet")
		}
		if pt := buf[1] & 0x7f; pt != 96 {
			t.Errorf("payload type %d, want 96", pt)
		}
		ssrc = binary.BigEndian.Uint32(buf[8:12])
		return h264Keyframe(buf[12:n]), nil
	}
	// The stream opens with an IDR; then let it run on P-frames a while.
	var sawIDR bool
	start := time.Now()
	for packets := 0; packets < 20 || time.Since(start) < 500*time.Millisecond; packets++ {
		key, err := read(time.Now().Add(10 * time.Second))
		if err != nil {
			t.Fatalf("after %d packets: %v\nencoder output:\n%v", packets, err, s.Stderr())
		}
		sawIDR = sawIDR || key
	}
	if !sawIDR {
		t.Fatal("no IDR at the start of the stream")
	}

	// RR + PLI (RFC 4585) for the stream's SSRC, as whipgate sends it.
	pli := make([]byte, 20)
	copy(pli, []byte{0x80, 201, 0, 1})
	binary.BigEndian.PutUint32(pli[4:], 0x1234)
	copy(pli[8:], []byte{0x81, 206, 0, 2})
	binary.BigEndian.PutUint32(pli[12:], 0x1234)
	binary.BigEndian.PutUint32(pli[16:], ssrc)
	fb, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: feedback})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	sent := time.Now()
	if _, err := fb.Write(pli); err != nil {
		t.Fatal(err)
	}
	for {
		key, err := read(sent.Add(3 * time.Second))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("no IDR within 3 s of the PLI (GOP is 10 s)")
		}
		if err != nil {
			t.Fatal(err)
		}
		if key {
			t.Logf("IDR %v after the PLI", time.Since(sent).Round(time.Millisecond))
			break
		}
	}
}
