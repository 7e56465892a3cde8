package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"
	"github.com/pion/webrtc/v4/pkg/media/h265writer"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"

	"whipgate/cmd"
)

// Helpers for the WHIP ingest tests: a gateway whose log the test can read,
// a loopback STUN/TURN server, a pion WHIP publisher that records every
// payload it sends, a pion WHEP viewer that records every packet it gets,
// and real encoded media from ffmpeg.

// ingestLogTap copies the gateway's log into the test output and keeps it, so a
// test can look for a line.
type ingestLogTap struct {
	out io.Writer
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *ingestLogTap) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	return l.out.Write(p)
}

func (l *ingestLogTap) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startIngestGateway is startGateway with the log kept for the test; it
// returns the error of cmd.Start instead of failing.
func startIngestGateway(t testing.TB, mutate func(*cmd.Config)) (*cmd.App, *ingestLogTap, error) {
	t.Helper()
	cfg := cmd.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.WebRTC.UDPListen = "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	cfg.TestSource = nil
	if mutate != nil {
		mutate(&cfg)
	}
	tap := &ingestLogTap{out: testOutput(t)}
	app, err := cmd.Start(context.Background(), cfg, nil, slog.New(slog.NewTextHandler(tap, nil)))
	if err != nil {
		return nil, tap, err
	}
	t.Cleanup(func() {
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("close whipgate: %v", err)
		}
	})
	return app, tap, nil
}

// turnServer is a STUN and a TURN server (one pion/turn server on
// loopback answers both) in whipgate's config form.
type turnServer struct {
	stun, turn, user, pass string
}

func startLoopbackTURN(t testing.TB) turnServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("turn listen: %v", err)
	}
	s := turnServer{user: "whip", pass: "p4ss"}
	const realm = "whipgate.test"
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(user, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(s.user, realm, s.pass), user == s.user
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		t.Fatalf("turn server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	addr := conn.LocalAddr().String()
	s.stun = "stun:" + addr
	s.turn = "turn:" + addr + "?transport=udp"
	return s
}

// ingestDo sends one request and returns the response with its body read.
func ingestDo(t testing.TB, method, url string, header http.Header, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

func bearerAuth(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// ingestWait polls cond until it holds.
func ingestWait(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendonlyOffer is a gathered pion offer with a sendonly section per kind, for
// requests that need a well-formed offer but no media.
func sendonlyOffer(t testing.TB, kinds ...webrtc.RTPCodecType) string {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// publishOptions shape a test publisher's offer.
type publishOptions struct {
	api   *webrtc.API               // nil: clientAPI
	video webrtc.RTPCodecCapability // MimeType "" = no video
	rids  []string                  // simulcast encodings, full size first; none = one plain track
	audio bool
	token string
	// contentType replaces application/sdp.
	contentType string
	// noCandidates posts the offer before gathering, as OBS does.
	noCandidates bool
	// munge rewrites the offer as posted (the PeerConnection keeps its own).
	munge func(string) string
	// rtx offers RTX with the video codec (payload type rtxPT, apt videoPT),
	// as browsers and GStreamer do; OBS retransmits without it.
	rtx bool
}

// With the default codecs, H.264 42e01f packetization mode 1 is payload
// type 106 and its RTX 107.
const videoPT, rtxPT = 106, 107

// whipPublisher is a pion WHIP client.
type whipPublisher struct {
	t        testing.TB
	pc       *webrtc.PeerConnection
	resp     *http.Response
	offer    string // as posted
	answer   string // or the error body
	resource string
	etag     string
	took     time.Duration // POST to response
	video    []*webrtc.TrackLocalStaticRTP
	audio    *webrtc.TrackLocalStaticRTP
	pli      []atomic.Int64 // PLIs received per video layer
	nackMu   sync.Mutex
	nacked   map[uint16]int // NACKs received per video sequence number
	wantKey  []atomic.Bool  // a PLI not yet acted on, per video layer

	sender *webrtc.RTPSender // of the video
	rids   []string

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// tryWHIPPublish POSTs an offer to a WHIP endpoint and applies the answer if
// it got 201; other statuses leave resp and the body for the test.
func tryWHIPPublish(t testing.TB, url string, opt publishOptions) *whipPublisher {
	t.Helper()
	api := opt.api
	if api == nil {
		api = clientAPI(t)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &whipPublisher{t: t, pc: pc}
	t.Cleanup(p.close)
	if opt.video.MimeType != "" {
		rids := opt.rids
		if len(rids) == 0 {
			rids = []string{""}
		}
		p.pli = make([]atomic.Int64, len(rids))
		p.wantKey = make([]atomic.Bool, len(rids))
		var sender *webrtc.RTPSender
		for i, rid := range rids {
			var opts []func(*webrtc.TrackLocalStaticRTP)
			if rid != "" {
				opts = append(opts, webrtc.WithRTPStreamID(rid))
			}
			tr, err := webrtc.NewTrackLocalStaticRTP(opt.video, "video", "whipgate-test", opts...)
			if err != nil {
				t.Fatal(err)
			}
			p.video = append(p.video, tr)
			if i == 0 {
				x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
				if err != nil {
					t.Fatal(err)
				}
				// A pion offer lists every codec it knows, VP8 first; like a
				// browser's setCodecPreferences, this offers what the track
				// sends, which is what whipgate answers with.
				c := opt.video
				c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
				prefs := []webrtc.RTPCodecParameters{{RTPCodecCapability: c}}
				if opt.rtx {
					prefs[0].PayloadType = videoPT
					prefs = append(prefs, webrtc.RTPCodecParameters{PayloadType: rtxPT, RTPCodecCapability: webrtc.RTPCodecCapability{
						MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", videoPT)}})
				}
				if err := x.SetCodecPreferences(prefs); err != nil {
					t.Fatalf("codec preferences: %v", err)
				}
				sender = x.Sender()
			} else if err := sender.AddEncoding(tr); err != nil {
				t.Fatalf("add simulcast encoding %q: %v", rid, err)
			}
		}
		for i, rid := range rids {
			p.wg.Go(func() { p.readRTCP(sender, i, rid) })
		}
		p.sender, p.rids = sender, opt.rids
	}
	if opt.audio {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "whipgate-test")
		if err != nil {
			t.Fatal(err)
		}
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		p.audio = tr
		p.wg.Go(func() { p.readRTCP(x.Sender(), -1, "") })
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	sdp := offer.SDP
	if !opt.noCandidates {
		<-gathered
		sdp = pc.LocalDescription().SDP
	}
	if opt.munge != nil {
		sdp = opt.munge(sdp)
	}
	var header http.Header
	if opt.token != "" {
		header = bearerAuth(opt.token)
	}
	ct := opt.contentType
	if ct == "" {
		ct = "application/sdp"
	}
	p.offer = sdp
	start := time.Now()
	p.resp, p.answer = ingestDo(t, http.MethodPost, url, header, ct, sdp)
	p.took = time.Since(start)
	if p.resp.StatusCode != http.StatusCreated {
		p.close()
		return p
	}
	p.resource = p.resp.Header.Get("Location")
	p.etag = p.resp.Header.Get("ETag")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: p.answer}); err != nil {
		t.Fatalf("publisher: apply answer: %v\n%s", err, p.answer)
	}
	return p
}

// whipPublish is tryWHIPPublish that insists on 201 and a connection.
func whipPublish(t testing.TB, url string, opt publishOptions) *whipPublisher {
	t.Helper()
	p := tryWHIPPublish(t, url, opt)
	if p.resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP POST %s: %d %s", url, p.resp.StatusCode, p.answer)
	}
	p.waitConnected()
	return p
}

func (p *whipPublisher) waitConnected() {
	p.t.Helper()
	ingestWait(p.t, 10*time.Second, "publisher connected", func() bool {
		return p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
}

// rtpExt is one RTP header extension element.
type rtpExt struct {
	id    uint8
	value []byte
}

// ridExtensions are the header extensions video layer i must carry: pion
// leaves putting MID and RID on simulcast packets to the application, and
// a receiver tells the layers apart only by them.
func (p *whipPublisher) ridExtensions(i int) []rtpExt {
	p.t.Helper()
	if len(p.rids) == 0 {
		return nil
	}
	var mid string
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == p.sender {
			mid = tr.Mid()
		}
	}
	var out []rtpExt
	for _, e := range p.sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			out = append(out, rtpExt{uint8(e.ID), []byte(mid)})
		case sdp.SDESRTPStreamIDURI:
			out = append(out, rtpExt{uint8(e.ID), []byte(p.rids[i])})
		}
	}
	if len(out) != 2 || mid == "" {
		p.t.Fatalf("publisher: MID and RID header extensions not negotiated (%v, mid %q)", out, mid)
	}
	return out
}

// readRTCP counts PLIs for video layer i until the sender stops; reading
// is also what lets pion's NACK responder see the viewers' NACKs.
func (p *whipPublisher) readRTCP(s *webrtc.RTPSender, i int, rid string) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid != "" {
			pkts, _, err = s.ReadSimulcastRTCP(rid)
		} else {
			pkts, _, err = s.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if i >= 0 {
					p.pli[i].Add(1)
					p.wantKey[i].Store(true)
				}
			case *rtcp.TransportLayerNack:
				p.nackMu.Lock()
				if p.nacked == nil {
					p.nacked = map[uint16]int{}
				}
				for _, pair := range pkt.(*rtcp.TransportLayerNack).Nacks {
					for _, seq := range pair.PacketList() {
						p.nacked[seq]++
					}
				}
				p.nackMu.Unlock()
			}
		}
	}
}

// close drops the PeerConnection without DELETE, as a crashed or
// disconnected client would.
func (p *whipPublisher) close() {
	p.closeOnce.Do(func() {
		_ = p.pc.Close()
		p.wg.Wait()
	})
}

// rtpFrame is one frame as the publisher put it on the wire.
type rtpFrame [][]byte

// sendStream packetizes frames onto one local track and keeps what it sent.
type sendStream struct {
	out       interface{ WriteRTP(*rtp.Packet) error } // the track, or something in front of it
	payloader rtp.Payloader
	audio     bool
	ext       []rtpExt // put on every packet
	seq       uint16
	ts        uint32

	mu   sync.Mutex
	sent []rtpFrame
}

func newSendStream(track *webrtc.TrackLocalStaticRTP, payloader rtp.Payloader) *sendStream {
	return &sendStream{out: track, payloader: payloader, seq: uint16(rand.Uint32()), ts: rand.Uint32(),
		audio: strings.HasPrefix(track.Codec().MimeType, "audio/")}
}

// write sends one frame and advances the clock by ticks.
func (s *sendStream) write(data []byte, ticks uint32) error {
	payloads := s.payloader.Payload(1200, data)
	frame := make(rtpFrame, 0, len(payloads))
	for i, pl := range payloads {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: s.seq, Timestamp: s.ts,
			Marker: !s.audio && i == len(payloads)-1}, Payload: pl}
		s.seq++
		for _, e := range s.ext {
			if err := pkt.Header.SetExtension(e.id, e.value); err != nil {
				return fmt.Errorf("rtp header extension: %w", err)
			}
		}
		frame = append(frame, slices.Clone(pl))
		if err := s.out.WriteRTP(pkt); err != nil {
			return fmt.Errorf("write rtp: %w", err)
		}
	}
	s.ts += ticks
	s.mu.Lock()
	s.sent = append(s.sent, frame)
	s.mu.Unlock()
	return nil
}

func (s *sendStream) frames() []rtpFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// pacedSource feeds a sendStream in real time: next returns the next frame, or
// false when there is none left.
type pacedSource struct {
	stream   *sendStream
	interval time.Duration
	ticks    uint32
	next     func() ([]byte, bool)
}

// playSources runs every source at its own pace, each on a goroutine it waits
// for, until all have run out of frames.
func playSources(t testing.TB, srcs ...pacedSource) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(srcs))
	for i, src := range srcs {
		wg.Go(func() {
			start := time.Now()
			for n := 0; ; n++ {
				data, ok := src.next()
				if !ok {
					return
				}
				if err := src.stream.write(data, src.ticks); err != nil {
					errs[i] = err
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(n+1) * src.interval)))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("publisher: %v", err)
		}
	}
}

// framesOnce serves pre-encoded frames once.
func framesOnce(frames [][]byte) func() ([]byte, bool) {
	i := 0
	return func() ([]byte, bool) {
		if i >= len(frames) {
			return nil, false
		}
		i++
		return frames[i-1], true
	}
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

// payloadViewer is a pion WHEP player that keeps every packet it receives.
type payloadViewer struct {
	t        testing.TB
	pc       *webrtc.PeerConnection
	resource string

	mu     sync.Mutex
	video  []*rtp.Packet
	audio  []*rtp.Packet
	codec  string
	vtrack *webrtc.TrackRemote
	wg     sync.WaitGroup
}

func watchPayloads(t testing.TB, url string, header http.Header) *payloadViewer {
	t.Helper()
	return watchPayloadsWith(t, clientAPI(t), url, header)
}

func watchPayloadsWith(t testing.TB, api *webrtc.API, url string, header http.Header) *payloadViewer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &payloadViewer{t: t, pc: pc}
	t.Cleanup(func() {
		_ = pc.Close()
		v.wg.Wait()
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			v.codec, v.vtrack = tr.Codec().MimeType, tr
		}
		v.mu.Unlock()
		v.wg.Go(func() {
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				v.mu.Lock()
				if tr.Kind() == webrtc.RTPCodecTypeVideo {
					v.video = append(v.video, pkt)
				} else {
					v.audio = append(v.audio, pkt)
				}
				v.mu.Unlock()
			}
		})
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, answer := ingestDo(t, http.MethodPost, url, header, "application/sdp", pc.LocalDescription().SDP)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST %s: %d %s", url, resp.StatusCode, answer)
	}
	v.resource = resp.Header.Get("Location")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("viewer: apply answer: %v", err)
	}
	ingestWait(t, 10*time.Second, "viewer connected", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return v
}

func (v *payloadViewer) packets() (video, audio []*rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.video), slices.Clone(v.audio)
}

// sendPLI asks for a keyframe the way a browser does.
func (v *payloadViewer) sendPLI() error {
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
