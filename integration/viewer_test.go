package integration

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/gateway"
	"whipgate/internal/testkit"
)

// viewer is a pion WHEP player. It keeps every RTP packet it receives and,
// for H.264 and H.265, also reassembles access units as they arrive, so
// packet-level and frame-level tests watch with the same player.
type viewer struct {
	t        testing.TB
	pc       *webrtc.PeerConnection
	resource string // the session URL
	etag     string
	answer   string
	posted   time.Time // when the POST went out

	mu     sync.Mutex
	mime   string // of the video track
	vtrack *webrtc.TrackRemote
	video  []*rtp.Packet
	audio  []*rtp.Packet
	aus    []accessUnit
	wg     sync.WaitGroup
}

// accessUnit is one reassembled frame.
type accessUnit struct {
	data     []byte // Annex-B
	key      bool
	arrived  time.Time
	rtpTS    uint32
	packets  int
	firstSeq uint16
}

// watchOptions shape a viewer's peer and its POST.
type watchOptions struct {
	api    *webrtc.API  // nil: clientAPI
	client *http.Client // nil: http.DefaultClient, which trusts only the system roots
	token  string       // the stream's view_token, sent as a Bearer token
}

// watch POSTs a recvonly offer for video and audio to a WHEP url, fails
// unless it gets 201, waits until the viewer is connected and from then on
// collects what arrives.
func watch(t testing.TB, url string) *viewer {
	t.Helper()
	return watchWith(t, url, watchOptions{})
}

func watchWith(t testing.TB, url string, o watchOptions) *viewer {
	t.Helper()
	if o.api == nil {
		o.api = clientAPI(t)
	}
	if o.client == nil {
		o.client = http.DefaultClient
	}
	pc, err := o.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{t: t, pc: pc}
	t.Cleanup(v.close)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			v.mu.Lock()
			v.mime, v.vtrack = tr.Codec().MimeType, tr
			v.mu.Unlock()
		}
		v.wg.Go(func() { v.read(tr) })
	})
	offer := testkit.GatheredOffer(t, pc)
	v.posted = time.Now()
	resp, answer := doWith(t, o.client, http.MethodPost, url, "application/sdp", offer, bearer(o.token))
	v.answer = answer
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST %s: got %s %s, want 201", url, resp.Status, answer)
	}
	v.resource = resp.Header.Get("Location")
	v.etag = resp.Header.Get("ETag")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("viewer: apply answer: %v", err)
	}
	certstest.Eventually(t, 10*time.Second, "viewer connected", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return v
}

// close hangs up (DTLS close_notify, no DELETE) and waits for the readers.
func (v *viewer) close() {
	_ = v.pc.Close()
	v.wg.Wait()
}

// read keeps every packet of tr and reassembles H.264 and H.265 video into
// access units.
func (v *viewer) read(tr *webrtc.TrackRemote) {
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	codec, _ := gateway.ParseCodec(tr.Codec().MimeType)
	var dep rtp.Depacketizer
	switch {
	case video && codec == gateway.H264:
		dep = &codecs.H264Packet{}
	case video && codec == gateway.H265:
		dep = &codecs.H265Depacketizer{}
	}
	var cur []byte
	var curKey bool
	var curPackets int
	var curSeq uint16
	var lastTS uint32
	started := false
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		if video {
			v.video = append(v.video, pkt)
		} else {
			v.audio = append(v.audio, pkt)
		}
		v.mu.Unlock()
		if dep == nil {
			continue // packets only
		}
		if started && pkt.Timestamp != lastTS && len(cur) > 0 {
			// a frame whose marker was lost: keep what we have
			v.push(cur, curKey, lastTS, curPackets, curSeq)
			cur, curKey, curPackets = nil, false, 0
		}
		if curPackets == 0 {
			curSeq = pkt.SequenceNumber
		}
		started, lastTS = true, pkt.Timestamp
		if gateway.IsKeyframe(codec, pkt.Payload) {
			curKey = true
		}
		if nal, err := dep.Unmarshal(pkt.Payload); err == nil {
			cur = append(cur, nal...)
		}
		curPackets++
		if pkt.Marker {
			v.push(cur, curKey, pkt.Timestamp, curPackets, curSeq)
			cur, curKey, curPackets = nil, false, 0
		}
	}
}

func (v *viewer) push(data []byte, key bool, ts uint32, packets int, seq uint16) {
	v.mu.Lock()
	v.aus = append(v.aus, accessUnit{data: data, key: key, arrived: time.Now(), rtpTS: ts, packets: packets, firstSeq: seq})
	v.mu.Unlock()
}

// codec is the video codec the viewer negotiated.
func (v *viewer) codec() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mime
}

// frames returns a copy of the access units so far.
func (v *viewer) frames() []accessUnit {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.aus)
}

// packets returns a copy of the packets so far, in arrival order.
func (v *viewer) packets() (video, audio []*rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.video), slices.Clone(v.audio)
}

// waitFrames waits until n access units arrived and returns them all.
func (v *viewer) waitFrames(n int, within time.Duration) []accessUnit {
	v.t.Helper()
	var f []accessUnit
	certstest.Eventually(v.t, within, fmt.Sprintf("%d access units at the viewer", n), func() bool {
		f = v.frames()
		return len(f) >= n
	})
	return f
}

// waitPackets waits until the viewer has as many distinct packets as were sent,
// and returns the video packets.
func (v *viewer) waitPackets(video, audio []rtpFrame) []*rtp.Packet {
	v.t.Helper()
	count := func(fs []rtpFrame) int {
		n := 0
		for _, f := range fs {
			n += len(f)
		}
		return n
	}
	// Distinct sequence numbers: a packet re-sent because it was late (not
	// lost) arrives twice, and must not stand in for one still missing.
	distinct := func(ps []*rtp.Packet) int {
		seen := make(map[uint16]bool, len(ps))
		for _, p := range ps {
			seen[p.SequenceNumber] = true
		}
		return len(seen)
	}
	wantV, wantA := count(video), count(audio)
	var got []*rtp.Packet
	certstest.Eventually(v.t, 5*time.Second, fmt.Sprintf("%d video and %d audio packets at the viewer", wantV, wantA), func() bool {
		gv, ga := v.packets()
		got = gv
		return distinct(gv) >= wantV && distinct(ga) >= wantA
	})
	return got
}

// sendPLI asks for a keyframe the way a browser does.
func (v *viewer) sendPLI() error {
	v.mu.Lock()
	tr := v.vtrack
	v.mu.Unlock()
	if tr == nil {
		return fmt.Errorf("viewer: no video track to send a PLI for")
	}
	if err := v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}}); err != nil {
		return fmt.Errorf("viewer: send PLI: %w", err)
	}
	return nil
}
