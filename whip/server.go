package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// ServerConfig configures WHIP ingest. The zero value means the defaults.
type ServerConfig struct {
	// PublicURL is the externally visible base URL for Location headers.
	// Default: from each request's Host (always absolute).
	PublicURL string `yaml:"public_url"`
	// AllowOrigin is the CORS origin. Default "*".
	AllowOrigin string `yaml:"allow_origin"`
	// StaleAfter lets a new POST replace a publisher that has sent nothing
	// for this long: OBS re-POSTs without DELETE after a network drop.
	// Default 3 s.
	StaleAfter time.Duration `yaml:"stale_after"`
	// GatherTimeout bounds candidate gathering before the answer. Default
	// 5 s (OBS gives up on the POST after 8 s, FFmpeg after 5 s).
	GatherTimeout time.Duration `yaml:"gather_timeout"`
	// ConnectTimeout ends a session that never connects. Default 30 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PionSRTP reads publishers' media through pion's UDP mux, ICE
	// connection and SRTP session instead of beneath them (DirectIngest).
	// Default false.
	PionSRTP bool `yaml:"pion_srtp"`
}

// PublishPolicy says whether a publisher may publish to a stream: the stream
// key it needs ("" = none), whether publishing without a key is allowed at
// all, and whether a new publisher takes over a live one.
type PublishPolicy func(stream string) (token string, open bool, takeover bool)

// Server is the WHIP ingest endpoint: OBS, browsers, GStreamer and FFmpeg
// publish into the hub through it.
type Server struct {
	cfg      ServerConfig
	hub      *gateway.Hub
	rtc      *RTC
	api      *webrtc.API
	sessions *Sessions
	policy   PublishPolicy
	log      *slog.Logger
}

// NewServer builds the WHIP ingest handler.
func NewServer(cfg ServerConfig, hub *gateway.Hub, rtc *RTC, sessions *Sessions, policy PublishPolicy, log *slog.Logger) (*Server, error) {
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 3 * time.Second
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 5 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if policy == nil {
		policy = func(string) (string, bool, bool) { return "", true, false }
	}
	api, err := rtc.NewAPI(APIOptions{})
	if err != nil {
		return nil, fmt.Errorf("whip server: %w", err)
	}
	return &Server{cfg: cfg, hub: hub, rtc: rtc, api: api, sessions: sessions, policy: policy, log: log.With("component", "whip")}, nil
}

// ServeEndpoint handles /whip/{stream}.
func (s *Server) ServeEndpoint(w http.ResponseWriter, r *http.Request, stream string) {
	CORS(w, s.cfg.AllowOrigin)
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		if err := s.post(w, r, stream); err != nil {
			if he, ok := errors.AsType[*HTTPError](err); !ok || he.Code >= 500 {
				s.log.Error("whip post failed", "stream", stream, "err", err)
			} else {
				s.log.Info("whip post refused", "stream", stream, "status", he.Code, "reason", he.Msg)
			}
			WriteProblem(w, err)
		}
	default:
		w.Header().Set("Allow", "OPTIONS, GET, HEAD, POST")
		WriteProblem(w, Errorf(http.StatusMethodNotAllowed, "method %s not allowed on a WHIP endpoint", r.Method))
	}
}

// offerSection is one audio or video section of an offer.
type offerSection struct {
	index  int
	mid    string
	kind   gateway.Kind
	rids   []string       // simulcast rids, full size first as the client lists them
	codecs []offeredCodec // what the hub forwards, in the offer's order
}

// offeredCodec is one payload type of an offer, with its RTX, if any.
type offeredCodec struct {
	codec  gateway.Codec
	params webrtc.RTPCodecParameters
	rtx    *webrtc.RTPCodecParameters
}

// shapeOffer checks the offer against RFC 9725 §4.4.2 (at most one audio
// and one video section, each sending) and lists the codecs of each
// section that the hub can forward.
func shapeOffer(d *sdp.SessionDescription) ([]offerSection, error) {
	var out []offerSection
	var audio, video int
	for i, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 {
			continue // rejected/disabled section
		}
		var kind gateway.Kind
		switch m.MediaName.Media {
		case "audio":
			kind = gateway.KindAudio
			audio++
		case "video":
			kind = gateway.KindVideo
			video++
		default:
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				return nil, Errorf(http.StatusBadRequest, "media section %d is %s; a WHIP publisher must send (sendonly or sendrecv)", i, a.Key)
			}
		}
		if audio > 1 || video > 1 {
			return nil, Errorf(http.StatusUnprocessableEntity, "WHIP takes at most one audio and one video track (RFC 9725 §4.4.2); the offer has more %s", kind)
		}
		sec := offerSection{index: i, kind: kind, codecs: offeredCodecs(m, kind)}
		sec.mid, _ = m.Attribute("mid")
		if len(sec.codecs) == 0 {
			return nil, Errorf(http.StatusUnprocessableEntity, "media section %d offers no codec whipgate forwards (H264, H265, AV1, VP8, VP9, opus)", i)
		}
		if kind == gateway.KindVideo {
			sec.rids = sendRIDs(m)
		}
		out = append(out, sec)
	}
	if audio+video == 0 {
		return nil, Errorf(http.StatusBadRequest, "the offer has no audio or video section")
	}
	return out, nil
}

// offeredCodecs reads a section's payload types the way pion does (rtpmap,
// fmtp, rtcp-fb) and keeps those of a codec the hub forwards.
func offeredCodecs(m *sdp.MediaDescription, kind gateway.Kind) []offeredCodec {
	type pt struct {
		name     string
		clock    uint32
		channels uint16
		fmtp     string
		fb       []webrtc.RTCPFeedback
	}
	pts := map[string]*pt{}
	get := func(id string) *pt {
		if pts[id] == nil {
			pts[id] = &pt{}
		}
		return pts[id]
	}
	var wildFB []webrtc.RTCPFeedback
	for _, a := range m.Attributes {
		id, v, _ := strings.Cut(a.Value, " ")
		switch a.Key {
		case "rtpmap":
			p := get(id)
			parts := strings.Split(v, "/")
			p.name = parts[0]
			if len(parts) > 1 {
				if n, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
					p.clock = uint32(n)
				}
			}
			if len(parts) > 2 {
				if n, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					p.channels = uint16(n)
				}
			}
		case "fmtp":
			get(id).fmtp = v
		case "rtcp-fb":
			typ, param, _ := strings.Cut(v, " ")
			fb := webrtc.RTCPFeedback{Type: typ, Parameter: param}
			if id == "*" {
				wildFB = append(wildFB, fb)
			} else {
				get(id).fb = append(get(id).fb, fb)
			}
		}
	}
	params := func(id string, p *pt) webrtc.RTPCodecParameters {
		n, _ := strconv.ParseUint(id, 10, 8)
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(n), RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: kind.String() + "/" + p.name, ClockRate: p.clock, Channels: p.channels, SDPFmtpLine: p.fmtp,
			RTCPFeedback: append(slices.Clone(wildFB), p.fb...)}}
	}
	var out []offeredCodec
	for _, id := range m.MediaName.Formats {
		p, ok := pts[id]
		if !ok || p.name == "" {
			continue
		}
		c, err := gateway.ParseCodec(p.name)
		if err != nil || c.Kind() != kind {
			continue
		}
		oc := offeredCodec{codec: c, params: params(id, p)}
		for rtxPT, r := range pts {
			if strings.EqualFold(r.name, "rtx") && r.fmtp == "apt="+id {
				x := params(rtxPT, r)
				oc.rtx = &x
			}
		}
		out = append(out, oc)
	}
	return out
}

// sendRIDs returns the rids of the offer's a=simulcast:send line, in order,
// taking the first alternative of each and ignoring the paused marker.
func sendRIDs(m *sdp.MediaDescription) []string {
	v, ok := m.Attribute("simulcast")
	if !ok {
		return nil
	}
	fields := strings.Fields(v)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != "send" {
			continue
		}
		var rids []string
		for _, alt := range strings.Split(fields[i+1], ";") {
			first, _, _ := strings.Cut(alt, ",")
			rids = append(rids, strings.TrimPrefix(first, "~"))
		}
		return rids
	}
	return nil
}

// chooseCodecs answers each section with one codec, the first of the offer
// that pion can receive (and its RTX): the publisher may send any codec
// of the answer, so a single one makes what the hub announces to viewers
// what actually arrives. A pion offer lists every codec it knows, VP8
// first, whatever its track sends; browsers and OBS list theirs first.
// It returns the hub's tracks: video layers first, then audio.
func chooseCodecs(pc *webrtc.PeerConnection, sections []offerSection) ([]gateway.TrackInfo, error) {
	byMid := map[string]*webrtc.RTPTransceiver{}
	for _, tr := range pc.GetTransceivers() {
		byMid[tr.Mid()] = tr
	}
	var video, audio []gateway.TrackInfo
	for _, sec := range sections {
		tr, ok := byMid[sec.mid]
		if !ok {
			return nil, Errorf(http.StatusBadRequest, "media section %d (mid %q) was not accepted", sec.index, sec.mid)
		}
		c, ok := pickCodec(tr, sec.codecs)
		if !ok {
			names := make([]string, 0, len(sec.codecs))
			for _, c := range sec.codecs {
				names = append(names, c.params.MimeType+" "+c.params.SDPFmtpLine)
			}
			return nil, Errorf(http.StatusUnprocessableEntity, "media section %d: none of its codecs can be received (%s)", sec.index, strings.Join(names, ", "))
		}
		if sec.kind == gateway.KindAudio {
			audio = append(audio, gateway.TrackInfo{Name: "audio", Codec: c.codec, Fmtp: c.params.SDPFmtpLine, Channels: 2})
			continue
		}
		if len(sec.rids) == 0 {
			video = append(video, gateway.TrackInfo{Name: "main", Codec: c.codec, Fmtp: c.params.SDPFmtpLine})
			continue
		}
		for _, rid := range sec.rids {
			video = append(video, gateway.TrackInfo{Name: rid, Codec: c.codec, Fmtp: c.params.SDPFmtpLine})
		}
	}
	return append(video, audio...), nil
}

func pickCodec(tr *webrtc.RTPTransceiver, offered []offeredCodec) (offeredCodec, bool) {
	for _, c := range offered {
		if c.rtx != nil && tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c.params, *c.rtx}) == nil {
			return c, true
		}
		if tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c.params}) == nil {
			return c, true
		}
	}
	return offeredCodec{}, false
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, name string) error {
	body, err := ReadBody(r, "application/sdp")
	if err != nil {
		return err
	}
	token, open, takeover := s.policy(name)
	if token != "" {
		if err := CheckBearer(r, token); err != nil {
			return err
		}
	} else if !open {
		return Errorf(http.StatusForbidden, "publishing to %q needs a stream key configured for it (streams.%s.publish_token), or open_publish: true", name, name)
	}
	offer, err := ParseOffer(body)
	if err != nil {
		return err
	}
	sections, err := shapeOffer(offer)
	if err != nil {
		return err
	}
	opts := gateway.PublishOptions{Kind: "whip", Remote: r.RemoteAddr, Takeover: takeover, StaleAfter: s.cfg.StaleAfter}
	sess, answer, err := s.negotiate(r.Context(), offer, sections, opts, string(body), name, token)
	if err != nil {
		return err
	}
	if err := r.Context().Err(); err != nil {
		// The publisher hung up before its answer: nobody will connect,
		// and holding the stream until the connect timeout would refuse
		// its next POST with 409.
		s.sessions.End(sess.ID)
		return ClientLeft("publisher", err)
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", Location(r, s.cfg.PublicURL, sess.ID))
	w.Header().Set("ETag", sess.ETag())
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	for _, l := range LinkHeaders(s.rtc.Config().ICEServers) {
		w.Header().Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated) // exactly 201: OBS fails on anything else
	_, _ = w.Write([]byte(answer))
	return nil
}

// negotiate applies the offer, claims the stream in the hub (409 if it
// has a live publisher), answers with all our candidates and starts the
// session that moves the publisher's media into the hub.
func (s *Server) negotiate(ctx context.Context, offer *sdp.SessionDescription, sections []offerSection, opts gateway.PublishOptions, raw, name, token string) (*Session, string, error) {
	api := s.api
	var direct *DirectIngest
	if !s.cfg.PionSRTP && !OffersDTLSServer(offer) {
		// An API of its own: the keys come from hooks that must see this
		// PeerConnection's handshake only, as DTLS server.
		direct = NewDirectIngest(s.log.With("stream", name))
		a, err := s.rtc.NewAPI(APIOptions{Ingest: direct})
		if err != nil {
			return nil, "", fmt.Errorf("whip: %w", err)
		}
		api = a
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: s.rtc.ICEServers()})
	if err != nil {
		return nil, "", fmt.Errorf("whip: new peer connection: %w", err)
	}
	if direct != nil {
		direct.Declare(offer)
		if err := direct.Watch(s.rtc, pc); err != nil {
			_ = pc.Close()
			return nil, "", fmt.Errorf("whip: %w", err)
		}
	}
	var pub *gateway.Publication
	gated := s.rtc.gatePublisher(pc)
	fail := func(err error) (*Session, string, error) {
		s.rtc.ungate(gated)
		direct.Unwatch(s.rtc)
		_ = pc.Close()
		if pub != nil {
			pub.Close()
		}
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: raw}); err != nil {
		return fail(Errorf(http.StatusBadRequest, "cannot apply the offer: %v", err))
	}
	tracks, err := chooseCodecs(pc, sections)
	if err != nil {
		return fail(err)
	}
	pub, err = s.hub.Publish(name, tracks, opts)
	if errors.Is(err, gateway.ErrStreamBusy) {
		return fail(&HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q already has a live publisher", name), RetryAfter: int(s.cfg.StaleAfter / time.Second)})
	}
	if err != nil {
		return fail(fmt.Errorf("whip: publish: %w", err))
	}
	index := make(map[string]int, len(tracks))
	for i, t := range tracks {
		index[t.Name] = i
	}
	in := &ingestTracks{pub: pub, gate: gated, nacks: s.rtc.nacks.of(pc), ssrcs: make([]webrtc.SSRC, len(tracks)), log: s.log.With("stream", name)}
	sess := &Session{ID: NewID(), Kind: "whip", Stream: name, Remote: opts.Remote, Token: token,
		Stats: func() any { return ingestStats(pub, direct) }}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		key := t.RID()
		switch {
		case t.Kind() == webrtc.RTPCodecTypeAudio:
			key = "audio"
		case key == "":
			key = "main"
		}
		i, ok := index[key]
		if !ok {
			s.log.Warn("ignoring a track the offer did not announce", "stream", name, "rid", t.RID(), "kind", t.Kind())
			return
		}
		if got := t.Codec().MimeType; !strings.EqualFold(got, string(tracks[i].Codec)) {
			s.log.Warn("publisher sends another codec than the answer named", "stream", name, "layer", key, "announced", tracks[i].Codec, "got", got)
		}
		in.setSSRC(i, t.SSRC())
		sess.Go(func() { in.read(t, i) })
	})
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(Errorf(http.StatusBadRequest, "cannot answer the offer: %v", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("whip: set local description: %w", err))
	}
	select {
	case <-gathered:
	case <-time.After(s.cfg.GatherTimeout):
		s.log.Warn("candidate gathering timed out; answering with what we have", "stream", name)
	case <-ctx.Done():
		return fail(ClientLeft("publisher", ctx.Err()))
	}
	run := func(ctx context.Context) error {
		defer pub.Close()
		defer s.rtc.ungate(gated)
		defer direct.Unwatch(s.rtc)
		connectBy := time.NewTimer(s.cfg.ConnectTimeout)
		defer connectBy.Stop()
		// Connected stays closed once connected: select on it only until
		// then, or this loop spins a core for the life of the session.
		connected := sess.Connected()
		for {
			select {
			case <-connected:
				connected = nil
				connectBy.Stop()
			case <-connectBy.C:
				return errors.New("never connected")
			case <-ctx.Done():
				return ctx.Err()
			case <-pub.Done():
				return pub.Err()
			case i := <-pub.KeyframeRequests():
				if ssrc := in.ssrc(i); ssrc != 0 {
					_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
				}
			}
		}
	}
	if err := s.sessions.Start(sess, pc, run); err != nil {
		return fail(&HTTPError{Code: http.StatusServiceUnavailable, Msg: "shutting down", Err: err})
	}
	return sess, pc.LocalDescription().SDP, nil
}

// IngestStats is a WHIP session's detail in the API.
type IngestStats struct {
	Tracks []gateway.TrackStats `json:"tracks"`
	// SRTP is "direct" when the publisher's media is read beneath pion
	// (DirectIngest), else "pion"; the counts are the direct path's.
	SRTP                string `json:"srtp"`
	DirectReceived      uint64 `json:"direct_received,omitempty"`
	DirectDropped       uint64 `json:"direct_dropped,omitempty"`
	DirectUndecryptable uint64 `json:"direct_undecryptable,omitempty"`
}

func ingestStats(pub *gateway.Publication, direct *DirectIngest) IngestStats {
	st := IngestStats{Tracks: pub.Stream().Stats().Tracks, SRTP: "pion"}
	if direct.Active() {
		st.SRTP = "direct"
		st.DirectReceived, st.DirectDropped, st.DirectUndecryptable = direct.Stats()
	}
	return st
}

// ingestTracks moves a publisher's remote tracks into the hub.
type ingestTracks struct {
	pub   *gateway.Publication
	gate  *gatedPeer
	nacks *nackGenerator // nil: pion's (APIOptions.PionNACK)
	log   *slog.Logger

	mu    sync.Mutex
	ssrcs []webrtc.SSRC
}

func (in *ingestTracks) setSSRC(i int, s webrtc.SSRC) {
	in.mu.Lock()
	in.ssrcs[i] = s
	in.mu.Unlock()
}

func (in *ingestTracks) ssrc(i int) webrtc.SSRC {
	in.mu.Lock()
	defer in.mu.Unlock()
	if i < 0 || i >= len(in.ssrcs) {
		return 0
	}
	return in.ssrcs[i]
}

// read forwards one remote track until it ends. One buffer and one packet
// are reused for every read: at 10,000 packets/s nothing is allocated.
func (in *ingestTracks) read(t *webrtc.TrackRemote, i int) {
	buf := make([]byte, 1600)
	var pkt rtp.Packet
	in.gate.StartReader()
	defer in.gate.StopReader()
	for {
		in.gate.Reading()
		n, attrs, err := t.Read(buf)
		if err != nil {
			return
		}
		in.gate.delivered()
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil {
			// Recovered through RTX, past the interceptors: the NACK
			// generator would otherwise ask for it again.
			in.nacks.Received(pkt.SSRC, pkt.SequenceNumber)
		}
		in.pub.WriteRTP(i, &pkt)
	}
}

// Location makes a session URL absolute: OBS resolves relative ones by
// replacing the path, so a full URL is safest for every client.
func Location(r *http.Request, publicURL, id string) string {
	path := "/session/" + id
	if publicURL != "" {
		return strings.TrimSuffix(publicURL, "/") + path
	}
	u := url.URL{Scheme: "http", Host: r.Host, Path: path}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return u.String()
}
