package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/ingest/h264synth"
	"whipgate/internal/testkit"
	"whipgate/whip/client"
)

// publishOptions shape a test publisher's tracks and offer.
type publishOptions struct {
	api   *webrtc.API               // nil: clientAPI
	video webrtc.RTPCodecCapability // MimeType "" = no video
	rids  []string                  // simulcast encodings, full size first; none = one plain track
	audio bool
	token string
	// rtx offers RTX with the video codec (payload type rtxPT, apt videoPT),
	// as browsers and GStreamer do; OBS retransmits without it.
	rtx bool

	// For postOffer only, which shapes the request by hand:
	// contentType replaces application/sdp.
	contentType string
	// noCandidates posts the offer before gathering, as OBS does.
	noCandidates bool
	// munge rewrites the offer as posted (the PeerConnection keeps its own).
	munge func(string) string
}

// With the default codecs, H.264 42e01f packetization mode 1 is payload
// type 106 and its RTX 107.
const videoPT, rtxPT = 106, 107

// h264Video is the H.264 test publishers send: constrained baseline
// (42e01f), packetization mode 1, as OBS and browsers offer it.
var h264Video = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}

// publisher is a pion WHIP publisher: local tracks to send on, and the
// RTCP its senders receive.
type publisher struct {
	t       testing.TB
	pc      *webrtc.PeerConnection
	video   []*webrtc.TrackLocalStaticRTP
	audio   *webrtc.TrackLocalStaticRTP
	pli     []atomic.Int64 // PLIs received per video layer
	wantKey []atomic.Bool  // a PLI not yet acted on, per video layer
	nackMu  sync.Mutex
	nacked  map[uint16]int // NACKs received per video sequence number
	lsr     atomic.Int64   // receiver reports received that name a Sender Report (LSR)

	sender *webrtc.RTPSender // of the video
	rids   []string

	resource string        // the session URL
	answer   string        // or, from postOffer, the error body
	took     time.Duration // the POST (publish: all of the negotiation)
	// postOffer's exchange, for the tests of WHIP's HTTP rules.
	resp  *http.Response
	offer string // as posted
	etag  string

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// publish publishes through whipgate's own WHIP client, as OBS-style
// clients do (offer, 201, trickle), and waits until it is connected.
func publish(t testing.TB, url string, opt publishOptions) *publisher {
	t.Helper()
	p, err := tryPublish(t, url, opt)
	if err != nil {
		t.Fatalf("WHIP publish to %s: %v", url, err)
	}
	p.waitConnected()
	return p
}

// tryPublish is publish that returns the client's error instead of failing
// and does not wait for the connection.
func tryPublish(t testing.TB, url string, opt publishOptions) (*publisher, error) {
	t.Helper()
	log, _ := certstest.NewLog(t)
	client, err := client.New(client.Config{URL: url, Token: opt.token}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	p := newPublisher(t, opt, client.PeerConfiguration())
	start := time.Now()
	s, err := client.Publish(t.Context(), p.pc)
	p.took = time.Since(start)
	if err != nil {
		p.close()
		return p, err
	}
	// DELETE, and wait for the trickle goroutine, before the PeerConnection
	// closes (cleanups run last-in first-out).
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	p.resource, p.answer = s.Resource(), p.pc.RemoteDescription().SDP
	return p, nil
}

// httpStatus is the status the server answered a failed Publish with, 0
// when it failed otherwise.
func httpStatus(err error) int {
	if he, ok := errors.AsType[*client.HTTPError](err); ok {
		return he.Status
	}
	return 0
}

// postOffer publishes by hand, for the tests of WHIP's HTTP rules: it POSTs
// an offer shaped by opt and applies the answer if it got 201; other
// statuses leave resp and the body for the test.
func postOffer(t testing.TB, url string, opt publishOptions) *publisher {
	t.Helper()
	p := newPublisher(t, opt, webrtc.Configuration{})
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	p.offer = offer.SDP
	if !opt.noCandidates {
		<-gathered
		p.offer = p.pc.LocalDescription().SDP
	}
	if opt.munge != nil {
		p.offer = opt.munge(p.offer)
	}
	ct := opt.contentType
	if ct == "" {
		ct = "application/sdp"
	}
	start := time.Now()
	p.resp, p.answer = do(t, http.MethodPost, url, ct, p.offer, bearer(opt.token))
	p.took = time.Since(start)
	if p.resp.StatusCode != http.StatusCreated {
		p.close()
		return p
	}
	p.resource = p.resp.Header.Get("Location")
	p.etag = p.resp.Header.Get("ETag")
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: p.answer}); err != nil {
		t.Fatalf("publisher: apply answer: %v\n%s", err, p.answer)
	}
	return p
}

// requireCreated fails unless postOffer got 201, then waits until the
// publisher is connected.
func (p *publisher) requireCreated() *publisher {
	p.t.Helper()
	if p.resp.StatusCode != http.StatusCreated {
		p.t.Fatalf("WHIP POST: %d %s", p.resp.StatusCode, p.answer)
	}
	p.waitConnected()
	return p
}

// newPublisher makes the PeerConnection with opt's tracks and starts reading
// their RTCP; nothing is negotiated yet.
func newPublisher(t testing.TB, opt publishOptions, conf webrtc.Configuration) *publisher {
	t.Helper()
	api := opt.api
	if api == nil {
		api = clientAPI(t)
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{t: t, pc: pc}
	t.Cleanup(p.close)
	if opt.video.MimeType != "" {
		var sender *webrtc.RTPSender
		p.video, sender = testkit.SimulcastSender(t, pc, opt.video, "whipgate-test", opt.rids, func(x *webrtc.RTPTransceiver) {
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
		})
		p.pli = make([]atomic.Int64, len(p.video))
		p.wantKey = make([]atomic.Bool, len(p.video))
		for i, tr := range p.video {
			p.wg.Go(func() { p.readRTCP(sender, i, tr.RID()) })
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
	return p
}

func (p *publisher) waitConnected() {
	p.t.Helper()
	certstest.Eventually(p.t, 10*time.Second, "publisher connected", func() bool {
		return p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
}

// close drops the PeerConnection without DELETE, as a crashed or
// disconnected client would.
func (p *publisher) close() {
	p.closeOnce.Do(func() {
		_ = p.pc.Close()
		p.wg.Wait()
	})
}

// ridExtensions are the header extensions video layer i must carry (see
// testkit.RIDExtensions).
func (p *publisher) ridExtensions(i int) []testkit.RTPExtension {
	p.t.Helper()
	if len(p.rids) == 0 {
		return nil
	}
	exts, err := testkit.RIDExtensions(p.pc, p.sender, p.rids[i])
	if err != nil {
		p.t.Fatalf("publisher: %v", err)
	}
	return exts
}

// readRTCP counts PLIs for video layer i, NACKs and receiver reports with
// LSR and DLSR until the sender stops; reading is also what lets pion's
// NACK responder see the viewers' NACKs.
func (p *publisher) readRTCP(s *webrtc.RTPSender, i int, rid string) {
	for {
		pkts, err := testkit.ReadRTCP(s, rid)
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
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
				for _, pair := range pkt.Nacks {
					for _, seq := range pair.PacketList() {
						p.nacked[seq]++
					}
				}
				p.nackMu.Unlock()
			case *rtcp.ReceiverReport:
				for _, r := range pkt.Reports {
					if r.LastSenderReport != 0 && r.Delay != 0 {
						p.lsr.Add(1)
					}
				}
			}
		}
	}
}

// rtpFrame is one frame as the publisher put it on the wire.
type rtpFrame [][]byte

// sendStream packetizes frames onto one local track and keeps what it sent.
type sendStream struct {
	out       interface{ WriteRTP(*rtp.Packet) error } // the track, or something in front of it
	payloader rtp.Payloader
	audio     bool
	ext       []testkit.RTPExtension // put on every packet
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
		if err := testkit.SetExtensions(&pkt.Header, s.ext); err != nil {
			return err
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
	if err := runSources(srcs...); err != nil {
		t.Fatalf("publisher: %v", err)
	}
}

// keepPlaying runs the sources in the background, as live video goes on
// while a test joins, reloads or watches; stop ends them and waits, and
// the test ends them at the latest.
func keepPlaying(t testing.TB, srcs ...pacedSource) (stop func()) {
	t.Helper()
	var stopped atomic.Bool
	for i, src := range srcs {
		next := src.next
		srcs[i].next = func() ([]byte, bool) {
			if stopped.Load() {
				return nil, false
			}
			return next()
		}
	}
	done := make(chan error, 1)
	go func() { done <- runSources(srcs...) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopped.Store(true)
			if err := <-done; err != nil {
				t.Errorf("publisher: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// runSources is playSources that returns the first error.
func runSources(srcs ...pacedSource) error {
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
	return errors.Join(errs...)
}

// synthVideo is a 30 fps pacedSource of n access units of enc on video
// layer i of p. A PLI the layer got makes the next one a keyframe, as a
// live encoder does; each access unit goes out as Annex-B and is appended
// to *sent, with whether it is an IDR.
func (p *publisher) synthVideo(i int, enc *h264synth.Encoder, n int, sent *[]accessUnit) pacedSource {
	stream := newSendStream(p.video[i], &codecs.H264Payloader{})
	stream.ext = p.ridExtensions(i)
	return pacedSource{stream: stream, interval: time.Second / 30, ticks: 3000, next: func() ([]byte, bool) {
		if len(*sent) == n {
			return nil, false
		}
		if p.wantKey[i].Swap(false) {
			enc.RequestKeyframe()
		}
		nalus, key := enc.Next()
		*sent = append(*sent, accessUnit{data: h264synth.AppendAnnexB(nil, nalus), key: key})
		return (*sent)[len(*sent)-1].data, true
	}}
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
