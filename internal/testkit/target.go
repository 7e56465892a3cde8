// Package testkit is the test kit of whipgate's WebRTC layers (whip/...,
// whep): a fake WHIP target with real pion peers and the quirks of real
// servers, pion APIs for test peers on loopback (behind a lossy path if
// need be), an idle peer for the session registry (whose tests in cmd use
// it too), gathered offers for the requests of cmd's and integration's
// tests, a synthetic publisher into the hub, logs to a test's output, a
// goroutine leak check and a poller.
//
// Only tests import it. It imports the hub (gateway) and the leaf packages
// of whip/ (sdpfrag, pionlog), never the transport, so that the
// transport's own tests can use it too.
package testkit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"whipgate/gateway"
	"whipgate/whip/rtc/pionlog"
	"whipgate/whip/sdpfrag"
)

// Request is one request the fake target saw.
type Request struct {
	Method, Path, Host, Auth, IfMatch, ContentType string
	At                                             time.Time
}

// Target is a fake WHIP target: an httptest server with a real pion peer
// per session on 127.0.0.1, and switches for the quirks of real servers.
// Set the switches before the first request.
type Target struct {
	t   testing.TB
	api *webrtc.API
	log *slog.Logger
	srv *httptest.Server

	// ETag is "strong" (a fresh tag per session and restart), "*"
	// (MediaMTX) or "" (no ETag, so no PATCH).
	ETag string
	// PatchStatus, when set, answers every PATCH with this status.
	PatchStatus int
	// Links are Link header lines for the 201.
	Links []string
	// Location renders a session's Location; default "/resource/<id>".
	Location func(id string) string
	// Token, when set, is the Bearer every request must carry.
	Token string
	// Before, when set, may answer a POST itself (return true).
	Before func(w http.ResponseWriter, r *http.Request) bool
	// EditAnswer, when set, rewrites the answer SDP.
	EditAnswer func(string) string
	// OnRestart, when set, runs as an ICE restart PATCH arrives.
	OnRestart func()
	// Settings, when set, changes the peers' SettingEngine (an answering
	// DTLS role, SRTP profiles).
	Settings func(*webrtc.SettingEngine)
	// Drop, when set, loses the datagrams that the peers' sockets receive
	// and it returns true for, as a lossy path would.
	Drop func(b []byte) bool

	// net carries the peers' UDP; Blackhole silences it.
	net *holeNet

	mu       sync.Mutex
	sessions map[string]*TargetSession
	requests []Request
	nextID   int
	wg       sync.WaitGroup // RTP readers
}

// TargetSession is one session of the fake target.
type TargetSession struct {
	id   string
	PC   *webrtc.PeerConnection
	etag string

	mu       sync.Mutex
	packets  map[string]*atomic.Int64 // by rid, else by kind
	mimes    map[string]string        // the same keys: negotiated codec
	ssrcs    []uint32                 // of the received tracks
	received map[string]*Received     // the same keys
}

// Received is what a session received under one key (rid, else kind).
type Received struct {
	// Packets holds what came under each sequence number, repairs
	// included.
	Packets map[uint16]ReceivedPacket
	// Repaired counts the packets that came through RTX.
	Repaired int
	// SenderReports are the sender's reports for the track, in order.
	SenderReports []rtcp.SenderReport
}

// ReceivedPacket is one packet a session received.
type ReceivedPacket struct {
	Timestamp uint32
	Size      int // payload bytes
}

// Received returns a copy of what the session received under key.
func (s *TargetSession) Received(key string) Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.received[key]
	if !ok {
		return Received{Packets: map[uint16]ReceivedPacket{}}
	}
	return Received{Packets: maps.Clone(r.Packets), Repaired: r.Repaired, SenderReports: slices.Clone(r.SenderReports)}
}

// ID is the session's id in its resource URL.
func (s *TargetSession) ID() string { return s.id }

// SendPLI asks the sender for a keyframe on every received track.
func (s *TargetSession) SendPLI() error {
	for _, ssrc := range s.videoSSRCs() {
		if err := s.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			return err
		}
	}
	return nil
}

// SendREMB tells the sender the bandwidth it may use (REMB) for the
// received video.
func (s *TargetSession) SendREMB(bps float32) error {
	return s.PC.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: bps, SSRCs: s.videoSSRCs()}})
}

func (s *TargetSession) videoSSRCs() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ssrcs)
}

func (s *TargetSession) counter(key string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.packets[key]
	if !ok {
		c = new(atomic.Int64)
		s.packets[key] = c
	}
	return c
}

// Mimes returns the codec received per rid (or kind).
func (s *TargetSession) Mimes() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.mimes)
}

// Packets returns the RTP packets received per rid (or kind).
func (s *TargetSession) Packets() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for k, v := range s.packets {
		out[k] = v.Load()
	}
	return out
}

func Log(t testing.TB) *slog.Logger { return LogAt(t, slog.LevelInfo) }

// PionLog keeps pion's own chatter at warnings.
func PionLog(t testing.TB) *slog.Logger { return LogAt(t, slog.LevelWarn) }

// LogAt is a text log of level and above into the test's Output.
func LogAt(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Output(t), &slog.HandlerOptions{Level: level}))
}

// Output is t.Output() until the test's cleanups have run: pion logs from
// its own goroutines after a PeerConnection closed, and testing panics on a
// write to a finished test's output.
func Output(t testing.TB) io.Writer {
	var mu sync.Mutex
	w := t.Output()
	t.Cleanup(func() {
		mu.Lock()
		w = nil
		mu.Unlock()
	})
	return writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if w == nil {
			return len(p), nil
		}
		return w.Write(p)
	})
}

// AwaitGathering waits for the fake server's candidates, but like the
// real server only so long: after an ICE restart pion's gathering-complete
// promise was once never kept (a whip.test hung 13 minutes under -race),
// and the host candidates on the mux are there at once anyway.
func AwaitGathering(gathered <-chan struct{}) {
	select {
	case <-gathered:
	case <-time.After(2 * time.Second):
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// PionAPI is a plain pion API for the fake target's peers: loopback only,
// quick consent timeouts, pion's default interceptors (NACK, reports,
// TWCC feedback).
func PionAPI(t testing.TB, n transport.Net) *webrtc.API {
	t.Helper()
	return PionAPIWith(t, n, nil)
}

// PionAPIWith is PionAPI with settings of the test's own (nil: none).
func PionAPIWith(t testing.TB, n transport.Net, set func(*webrtc.SettingEngine)) *webrtc.API {
	t.Helper()
	return PionAPICodecs(t, n, (*webrtc.MediaEngine).RegisterDefaultCodecs, set)
}

// PionAPICodecs is PionAPIWith with the codecs register registers instead
// of pion's defaults: a player that numbers them as a browser does.
func PionAPICodecs(t testing.TB, n transport.Net, register func(*webrtc.MediaEngine) error, set func(*webrtc.SettingEngine)) *webrtc.API {
	t.Helper()
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Log: PionLog(t)}}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICETimeouts(3*time.Second, 6*time.Second, 300*time.Millisecond)
	se.SetNet(n)
	if set != nil {
		set(&se)
	}
	return NewAPI(t, register, se)
}

// NewAPI is a pion API with the codecs register registers, pion's default
// interceptors and the settings se: the one way every test peer, the fake
// target's and the integration tests' own, is made.
func NewAPI(t testing.TB, register func(*webrtc.MediaEngine) error, se webrtc.SettingEngine) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := register(m); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// NewTarget starts a fake target on an ephemeral port; configure may set
// its switches before it listens.
func NewTarget(t testing.TB, configure func(*Target)) *Target {
	return NewTargetAt(t, "127.0.0.1:0", configure)
}

// NewTargetAt listens on addr (a fixed port, to restart a target).
func NewTargetAt(t testing.TB, addr string, configure func(*Target)) *Target {
	t.Helper()
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	hole := newHoleNet(base)
	f := &Target{t: t, net: hole, log: Log(t).With("fake", "target"), ETag: "strong", sessions: map[string]*TargetSession{}}
	if configure != nil {
		configure(f)
	}
	f.api, hole.drop = PionAPIWith(t, hole, f.Settings), f.Drop
	var ln net.Listener
	for range 50 { // a port just closed may linger briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("fake target: listen %s: %v", addr, err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener = ln
	f.srv.Start()
	t.Cleanup(f.Close)
	return f
}

// URL is the endpoint URL on the given host name (127.0.0.1 or localhost).
func (f *Target) URL(host, path string) string {
	_, port, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	return "http://" + net.JoinHostPort(host, port) + path
}

// Addr is the listening address.
func (f *Target) Addr() string { return f.srv.Listener.Addr().String() }

// Close stops the HTTP server and every peer, and waits for the readers.
func (f *Target) Close() {
	f.srv.Close()
	f.Kill()
	f.wg.Wait()
}

// Crash stops the target as kill -9 stops a process: its peers fall
// silent without a DTLS close alert, its HTTP server is gone.
func (f *Target) Crash() {
	f.Blackhole(true)
	f.Close()
}

// Kill drops every session as a crashed server would: its peers close, no
// DELETE is involved, and later requests for them get 404.
func (f *Target) Kill() {
	f.mu.Lock()
	list := slices.Collect(maps.Values(f.sessions))
	f.sessions = map[string]*TargetSession{}
	f.mu.Unlock()
	for _, s := range list {
		_ = s.PC.Close()
	}
}

// Requests returns the requests seen so far.
func (f *Target) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Sessions returns the live sessions.
func (f *Target) Sessions() []*TargetSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Values(f.sessions))
}

// Count returns how many requests of method were seen.
func (f *Target) Count(method string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

func (f *Target) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, Request{
		Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Auth: r.Header.Get("Authorization"),
		IfMatch: r.Header.Get("If-Match"), ContentType: r.Header.Get("Content-Type"), At: time.Now(),
	})
	f.mu.Unlock()
	if f.Token != "" && r.Header.Get("Authorization") != "Bearer "+f.Token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	id := r.URL.Query().Get("session")
	if id == "" && strings.HasPrefix(r.URL.Path, "/resource/") {
		id = strings.TrimPrefix(r.URL.Path, "/resource/")
	}
	switch {
	case r.Method == http.MethodPost && id == "":
		if f.Before != nil && f.Before(w, r) {
			return
		}
		f.post(w, r)
	case r.Method == http.MethodPatch && id != "":
		f.patch(w, r, id)
	case r.Method == http.MethodDelete && id != "":
		f.mu.Lock()
		s, ok := f.sessions[id]
		delete(f.sessions, id)
		f.mu.Unlock()
		if !ok {
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		_ = s.PC.Close()
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "not here", http.StatusMethodNotAllowed)
	}
}

func (f *Target) newETag() string {
	f.nextID++
	return fmt.Sprintf(`"tag-%d"`, f.nextID)
}

func (f *Target) post(w http.ResponseWriter, r *http.Request) {
	offer, _ := io.ReadAll(r.Body)
	if ct := r.Header.Get("Content-Type"); ct != "application/sdp" {
		http.Error(w, "want application/sdp, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	pc, err := f.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.nextID++
	s := &TargetSession{id: fmt.Sprintf("s%d", f.nextID), PC: pc, packets: map[string]*atomic.Int64{}, mimes: map[string]string{},
		received: map[string]*Received{}}
	f.mu.Unlock()
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		key := tr.RID()
		if key == "" {
			key = tr.Kind().String()
		}
		c := s.counter(key)
		s.mu.Lock()
		s.mimes[key] = tr.Codec().MimeType
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			s.ssrcs = append(s.ssrcs, uint32(tr.SSRC()))
		}
		got := &Received{Packets: map[uint16]ReceivedPacket{}}
		s.received[key] = got
		s.mu.Unlock()
		// Reading RTCP is what hands our sender reports to pion's
		// receiver reports (their LSR/DLSR give the sender its RTT).
		rid := tr.RID()
		f.wg.Go(func() {
			for {
				pkts, err := ReadRTCP(recv, rid)
				if err != nil {
					return
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(tr.SSRC()) {
						s.mu.Lock()
						got.SenderReports = append(got.SenderReports, *sr)
						s.mu.Unlock()
					}
				}
			}
		})
		f.wg.Go(func() {
			for {
				p, attrs, err := tr.ReadRTP()
				if err != nil {
					return
				}
				c.Add(1)
				s.mu.Lock()
				got.Packets[p.SequenceNumber] = ReceivedPacket{Timestamp: p.Timestamp, Size: len(p.Payload)}
				if attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil {
					got.Repaired++
				}
				s.mu.Unlock()
			}
		})
	})
	fail := func(err error) {
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		fail(err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		fail(err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		fail(err)
		return
	}
	AwaitGathering(gathered)
	body := pc.LocalDescription().SDP
	if f.EditAnswer != nil {
		body = f.EditAnswer(body)
	}
	f.mu.Lock()
	switch f.ETag {
	case "strong":
		s.etag = f.newETag()
	case "*":
		s.etag = "*"
	}
	f.sessions[s.id] = s
	f.mu.Unlock()
	loc := "/resource/" + s.id
	if f.Location != nil {
		loc = f.Location(s.id)
	}
	w.Header().Set("Location", loc)
	if s.etag != "" {
		w.Header().Set("ETag", s.etag)
	}
	for _, l := range f.Links {
		w.Header().Add("Link", l)
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, body)
}

func (f *Target) patch(w http.ResponseWriter, r *http.Request, id string) {
	if f.PatchStatus != 0 {
		http.Error(w, "no PATCH here", f.PatchStatus)
		return
	}
	f.mu.Lock()
	s, ok := f.sessions[id]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/trickle-ice-sdpfrag" {
		http.Error(w, "want application/trickle-ice-sdpfrag, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, _ := io.ReadAll(r.Body)
	frag, err := sdpfrag.ParseLenient(string(body))
	if err != nil || (frag.Ufrag == "") != (frag.Pwd == "") || frag.Ufrag == "" {
		http.Error(w, fmt.Sprintf("bad sdpfrag (%v)", err), http.StatusBadRequest)
		return
	}
	rd := s.PC.RemoteDescription()
	cur, _ := sdpfrag.FromDescription(rd.SDP)
	if frag.Ufrag == cur.Ufrag { // trickle
		for _, c := range frag.Candidates {
			_ = s.PC.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Value, SDPMid: &cur.Mid})
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if im := r.Header.Get("If-Match"); im != "*" && im != s.etag {
		http.Error(w, "If-Match "+im, http.StatusPreconditionFailed)
		return
	}
	if f.OnRestart != nil {
		f.OnRestart()
	}
	// An ICE restart: the client's new credentials and candidates as a
	// new remote offer, answered with ours.
	var d sdp.SessionDescription
	if err := d.UnmarshalString(rd.SDP); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	frag.End = true
	sdpfrag.Apply(&d, frag)
	offer, err := d.Marshal()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer, err := s.PC.CreateAnswer(nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	gathered := webrtc.GatheringCompletePromise(s.PC)
	if err := s.PC.SetLocalDescription(answer); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	AwaitGathering(gathered)
	local, err := sdpfrag.FromDescription(s.PC.LocalDescription().SDP)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	local.End = true
	f.mu.Lock()
	s.etag = f.newETag()
	f.mu.Unlock()
	w.Header().Set("ETag", s.etag)
	w.Header().Set("Content-Type", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, local.String())
}

// Blackhole drops (on) or passes (off) all UDP of the target's peers in
// both directions, as a broken path would; HTTP is unaffected.
func (f *Target) Blackhole(on bool) { f.net.hole.Store(on) }

// holeNet is the real network with a switch to cut the target's UDP, and
// a loss of some of what it receives.
type holeNet struct {
	transport.Net
	hole atomic.Bool
	drop func([]byte) bool
}

func newHoleNet(base transport.Net) *holeNet {
	n := &holeNet{}
	n.Net = WrapNet(base, func(c transport.UDPConn) transport.UDPConn {
		return &FilterConn{UDPConn: c, DropRead: n.lost, DropWrite: func([]byte) bool { return n.hole.Load() }}
	})
	return n
}

// lost says whether a datagram read is lost on the way.
func (n *holeNet) lost(d []byte) bool {
	return n.hole.Load() || n.drop != nil && n.drop(d)
}

// Synth publishes a synthetic H.264 stream into a hub: per layer 30
// frames/s, a keyframe (parameter sets aggregated in one packet, then an
// IDR in fragments) every 15 frames, P slices between; Opus every frame if
// audio is set.
func Synth(t testing.TB, hub *gateway.Hub, stream string, layers []string, audio bool) {
	t.Helper()
	var infos []gateway.TrackInfo
	for _, l := range layers {
		infos = append(infos, gateway.TrackInfo{Name: l, Codec: gateway.H264,
			Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"})
	}
	if audio {
		infos = append(infos, gateway.TrackInfo{Name: "audio", Codec: gateway.Opus, Channels: 2})
	}
	SynthTracks(t, hub, stream, infos)
}

// SynthFrame returns the RTP payloads of one synthetic frame of codec c
// (H.264 or H.265): a keyframe or a P frame.
func SynthFrame(c gateway.Codec, key bool) [][]byte {
	frag := func(hdr []byte, n int) []byte {
		p := make([]byte, n)
		copy(p, hdr)
		return p
	}
	// idr is an IDR in three fragmentation units led by hdr, whose last
	// byte is the FU header: the start bit on the first, the end bit on
	// the last.
	idr := func(hdr []byte) [][]byte {
		fus := make([][]byte, 3)
		for k := range fus {
			fus[k] = frag(hdr, 1000)
		}
		fus[0][len(hdr)-1] |= 0x80
		fus[2][len(hdr)-1] |= 0x40
		return fus
	}
	if c == gateway.H265 {
		if !key {
			return [][]byte{frag([]byte{1 << 1, 1}, 600)} // TRAIL_R
		}
		// AP (48) of VPS (32), SPS (33), PPS (34), then an IDR_W_RADL
		// (19) in three FUs (49).
		ap := []byte{48 << 1, 1, 0, 3, 32 << 1, 1, 0xc0, 0, 3, 33 << 1, 1, 0xa0, 0, 3, 34 << 1, 1, 0xc1}
		return append([][]byte{ap}, idr([]byte{49 << 1, 1, 19})...)
	}
	if !key {
		return [][]byte{frag([]byte{0x41}, 600)}
	}
	stapA := []byte{24, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 0, 2, 0x68, 0xce} // SPS, PPS
	return append([][]byte{stapA}, idr([]byte{28 | 0x60, 5})...)        // FU-A
}

// SynthTracks publishes tracks (H.264, H.265 video; Opus audio). The
// publication's keyframe requests are the caller's to read.
func SynthTracks(t testing.TB, hub *gateway.Hub, stream string, infos []gateway.TrackInfo) *gateway.Publication {
	t.Helper()
	pub, err := hub.Publish(stream, infos, gateway.PublishOptions{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		seq := make([]uint16, len(infos))
		opus := make([]byte, 80)
		write := func(i int, ts uint32, marker bool, payload []byte) {
			pub.WriteRTP(i, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[i], Timestamp: ts, Marker: marker}, Payload: payload})
			seq[i]++
		}
		for frame := uint32(0); ; frame++ {
			for i, info := range infos {
				if info.Codec == gateway.Opus {
					write(i, frame*1584, false, opus)
					continue
				}
				pkts := SynthFrame(info.Codec, frame%15 == 0)
				for k, p := range pkts {
					write(i, frame*3000, k == len(pkts)-1, p)
				}
			}
			select {
			case <-ctx.Done():
				_ = pub.Close()
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return pub
}

// VerifyTestMain runs a package's tests (m.Run) and then fails if
// goroutines are left, but for the keep-alive connections of net/http's
// default client and transport to servers the tests started.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// LeakCheck fails the test if goroutines started during it outlive its
// cleanups. Call it first, so its cleanup runs last.
func LeakCheck(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// Eventually polls cond every 20 ms until it holds or limit passes.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// Returned waits up to limit for the error a goroutine sends on done and
// returns it; the test fails if none comes (what names the wait).
func Returned(t testing.TB, done <-chan error, limit time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("%s: not within %v", what, limit)
		return nil
	}
}

// Counter counts from callbacks on other goroutines.
type Counter struct{ n atomic.Int64 }

// Add counts one.
func (c *Counter) Add() { c.n.Add(1) }

// Get is the count.
func (c *Counter) Get() int { return int(c.n.Load()) }

// LoopbackUDP is a UDP socket on network's loopback address (udp4:
// 127.0.0.1, udp6: ::1) on a port of the kernel's choosing, closed when
// the test ends.
func LoopbackUDP(t testing.TB, network string) *net.UDPConn {
	t.Helper()
	ip := net.IPv4(127, 0, 0, 1)
	if network == "udp6" {
		ip = net.IPv6loopback
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatalf("listen %s on loopback: %v", network, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// StdNet is the real network, for pion's SettingEngine.SetNet.
func StdNet(t testing.TB) transport.Net {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// WrapNet is base with every UDP socket it opens replaced by what wrap
// makes of it: a test's path in front of a peer.
func WrapNet(base transport.Net, wrap func(transport.UDPConn) transport.UDPConn) transport.Net {
	return &wrapNet{Net: base, wrap: wrap}
}

type wrapNet struct {
	transport.Net
	wrap func(transport.UDPConn) transport.UDPConn
}

func (n *wrapNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return n.wrap(c), nil
}

// FilterConn is a UDP socket behind a lossy path: a datagram read that
// DropRead returns true for is lost, and the read waits for the next; one
// written that DropWrite returns true for is lost as if sent. Either may
// be nil. ReadMsgUDP and WriteMsgUDP pass everything.
type FilterConn struct {
	transport.UDPConn
	DropRead, DropWrite func([]byte) bool
}

func (c *FilterConn) lostRead(p []byte) bool { return c.DropRead != nil && c.DropRead(p) }

func (c *FilterConn) lostWrite(p []byte) bool { return c.DropWrite != nil && c.DropWrite(p) }

func (c *FilterConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.UDPConn.ReadFrom(p)
		if err != nil || !c.lostRead(p[:n]) {
			return n, a, err
		}
	}
}

func (c *FilterConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	for {
		n, a, err := c.UDPConn.ReadFromUDP(p)
		if err != nil || !c.lostRead(p[:n]) {
			return n, a, err
		}
	}
}

func (c *FilterConn) Read(p []byte) (int, error) {
	for {
		n, err := c.UDPConn.Read(p)
		if err != nil || !c.lostRead(p[:n]) {
			return n, err
		}
	}
}

func (c *FilterConn) WriteTo(p []byte, a net.Addr) (int, error) {
	if c.lostWrite(p) {
		return len(p), nil
	}
	return c.UDPConn.WriteTo(p, a)
}

func (c *FilterConn) WriteToUDP(p []byte, a *net.UDPAddr) (int, error) {
	if c.lostWrite(p) {
		return len(p), nil
	}
	return c.UDPConn.WriteToUDP(p, a)
}

func (c *FilterConn) Write(p []byte) (int, error) {
	if c.lostWrite(p) {
		return len(p), nil
	}
	return c.UDPConn.Write(p)
}
