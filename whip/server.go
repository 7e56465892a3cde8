package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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

// offerShape is what the hub needs to know of an offer before answering.
type offerShape struct {
	tracks []gateway.TrackInfo // video layers first, then audio
	rids   []string
}

// shapeOffer checks the offer against RFC 9725 §4.4.2 (at most one audio
// and one video section) and picks the codec each will use: the first one
// in the offer we forward, which is what pion's answer puts first.
func shapeOffer(d *sdp.SessionDescription) (offerShape, error) {
	var sh offerShape
	var audio, video int
	for i, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if m.MediaName.Port.Value == 0 {
			continue // rejected/disabled section
		}
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				return sh, Errorf(http.StatusBadRequest, "media section %d is %s; a WHIP publisher must send (sendonly or sendrecv)", i, a.Key)
			}
		}
		switch kind {
		case "audio":
			audio++
		case "video":
			video++
		default:
			continue
		}
		if audio > 1 || video > 1 {
			return sh, Errorf(http.StatusUnprocessableEntity, "WHIP takes at most one audio and one video track (RFC 9725 §4.4.2); the offer has more %s", kind)
		}
		codec, fmtp, ok := firstCodec(m)
		if !ok {
			return sh, Errorf(http.StatusUnprocessableEntity, "media section %d offers no codec whipgate forwards (H264, H265, AV1, VP8, VP9, opus)", i)
		}
		if kind == "audio" {
			sh.tracks = append(sh.tracks, gateway.TrackInfo{Name: "audio", Codec: codec, Fmtp: fmtp, Channels: 2})
			continue
		}
		rids := sendRIDs(m)
		if len(rids) == 0 {
			sh.tracks = append([]gateway.TrackInfo{{Name: "main", Codec: codec, Fmtp: fmtp}}, sh.tracks...)
			continue
		}
		sh.rids = rids
		layers := make([]gateway.TrackInfo, 0, len(rids))
		for _, rid := range rids {
			layers = append(layers, gateway.TrackInfo{Name: rid, Codec: codec, Fmtp: fmtp})
		}
		sh.tracks = append(layers, sh.tracks...)
	}
	if audio+video == 0 {
		return sh, Errorf(http.StatusBadRequest, "the offer has no audio or video section")
	}
	return sh, nil
}

func firstCodec(m *sdp.MediaDescription) (gateway.Codec, string, bool) {
	fmtps := map[string]string{}
	for _, a := range m.Attributes {
		if a.Key == "fmtp" {
			pt, v, _ := strings.Cut(a.Value, " ")
			fmtps[pt] = v
		}
	}
	for _, pt := range m.MediaName.Formats {
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" || !strings.HasPrefix(a.Value, pt+" ") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(a.Value, pt+" "), "/")
			if c, err := gateway.ParseCodec(name); err == nil {
				return c, fmtps[pt], true
			}
		}
	}
	return "", "", false
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
	shape, err := shapeOffer(offer)
	if err != nil {
		return err
	}
	pub, err := s.hub.Publish(name, shape.tracks, gateway.PublishOptions{Kind: "whip", Remote: r.RemoteAddr, Takeover: takeover, StaleAfter: s.cfg.StaleAfter})
	if errors.Is(err, gateway.ErrStreamBusy) {
		return &HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q already has a live publisher", name), RetryAfter: int(s.cfg.StaleAfter / time.Second)}
	}
	if err != nil {
		return fmt.Errorf("whip: publish: %w", err)
	}
	sess, answer, err := s.negotiate(r.Context(), pub, shape, string(body), name, r.RemoteAddr, token)
	if err != nil {
		pub.Close()
		return err
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

func (s *Server) negotiate(ctx context.Context, pub *gateway.Publication, shape offerShape, raw, name, remote, token string) (*Session, string, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.rtc.ICEServers()})
	if err != nil {
		return nil, "", fmt.Errorf("whip: new peer connection: %w", err)
	}
	fail := func(err error) (*Session, string, error) {
		_ = pc.Close()
		return nil, "", err
	}
	index := make(map[string]int, len(shape.tracks))
	for i, t := range shape.tracks {
		index[t.Name] = i
	}
	in := &ingestTracks{pub: pub, ssrcs: make([]webrtc.SSRC, len(shape.tracks)), log: s.log.With("stream", name)}
	sess := &Session{ID: NewID(), Kind: "whip", Stream: name, Remote: remote, Token: token,
		Stats: func() any { st := pub.Stream().Stats(); return st.Tracks }}
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
		if got := t.Codec().MimeType; !strings.EqualFold(got, string(shape.tracks[i].Codec)) {
			s.log.Warn("publisher sends another codec than negotiated first", "stream", name, "layer", key, "announced", shape.tracks[i].Codec, "got", got)
		}
		in.setSSRC(i, t.SSRC())
		sess.Go(func() { in.read(t, i) })
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: raw}); err != nil {
		return fail(Errorf(http.StatusBadRequest, "cannot apply the offer: %v", err))
	}
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
		return fail(ctx.Err())
	}
	run := func(ctx context.Context) error {
		defer pub.Close()
		connectBy := time.NewTimer(s.cfg.ConnectTimeout)
		defer connectBy.Stop()
		for {
			select {
			case <-sess.Connected():
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

// ingestTracks moves a publisher's remote tracks into the hub.
type ingestTracks struct {
	pub *gateway.Publication
	log *slog.Logger

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
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
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
