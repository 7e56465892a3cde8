// Package whep serves WHEP playback (draft-ietf-wish-whep): a player POSTs
// an SDP offer to /whep/{stream} or /whep/{stream}/{layer} and receives the
// stream's layer (and its audio) from the media hub.
package whep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip"
)

// Config configures the WHEP endpoints. The zero value means the defaults.
type Config struct {
	// PublicURL is the externally visible base URL ("https://box:8443")
	// for Location headers. Default: taken from the request's Host.
	PublicURL string `yaml:"public_url"`
	// AllowOrigin is the CORS origin allowed. Default "*".
	AllowOrigin string `yaml:"allow_origin"`
	// GatherTimeout bounds candidate gathering before the answer. Default 5 s.
	GatherTimeout time.Duration `yaml:"gather_timeout"`
	// ConnectTimeout ends a session that never connects. Default 30 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PionSRTP sends media through pion's SRTP session and ICE connection
	// instead of sealing it beneath them (whip.DirectSRTP), which costs
	// about twice the CPU per packet and viewer. Default false.
	PionSRTP bool `yaml:"pion_srtp"`
}

// Handler serves the WHEP endpoints.
type Handler struct {
	cfg      Config
	hub      *gateway.Hub
	rtc      *whip.RTC
	api      *webrtc.API
	sessions *whip.Sessions
	log      *slog.Logger
	// token returns the Bearer token needed to watch a stream ("" = none).
	token func(stream string) string
}

// New builds the handler. token may be nil (no stream needs a token).
func New(cfg Config, hub *gateway.Hub, rtc *whip.RTC, sessions *whip.Sessions, token func(string) string, log *slog.Logger) (*Handler, error) {
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 5 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if token == nil {
		token = func(string) string { return "" }
	}
	api, err := rtc.NewAPI(whip.APIOptions{})
	if err != nil {
		return nil, fmt.Errorf("whep: %w", err)
	}
	return &Handler{cfg: cfg, hub: hub, rtc: rtc, api: api, sessions: sessions, token: token, log: log.With("component", "whep")}, nil
}

// ServeEndpoint handles /whep/{stream} and /whep/{stream}/{layer}.
func (h *Handler) ServeEndpoint(w http.ResponseWriter, r *http.Request, stream, layer string) {
	whip.CORS(w, h.cfg.AllowOrigin)
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		// RFC 9725 §4.1 and the WHEP editor's copy: 2xx, no content, so
		// players can probe the URL.
		w.Header().Set("Accept-Post", "application/sdp")
		w.Header().Set("Content-Type", "application/sdp")
		w.WriteHeader(http.StatusOK)
	case http.MethodPost:
		if err := h.post(w, r, stream, layer); err != nil {
			if he, ok := errors.AsType[*whip.HTTPError](err); !ok || he.Code >= 500 {
				h.log.Error("whep post failed", "stream", stream, "err", err)
			}
			whip.WriteProblem(w, err)
		}
	default:
		w.Header().Set("Allow", "OPTIONS, GET, HEAD, POST")
		whip.WriteProblem(w, whip.Errorf(http.StatusMethodNotAllowed, "method %s not allowed on a WHEP endpoint", r.Method))
	}
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, name, layer string) error {
	body, err := whip.ReadBody(r, "application/sdp")
	if err != nil {
		return err
	}
	offer, err := whip.ParseOffer(body)
	if err != nil {
		return err
	}
	if err := whip.CheckBearer(r, h.token(name)); err != nil {
		return err
	}
	stream, ok := h.hub.Stream(name)
	if !ok {
		return whip.Errorf(http.StatusNotFound, "no stream %q", name)
	}
	tracks := stream.Tracks()
	if tracks == nil {
		return &whip.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q has no live publisher; retry later", name), RetryAfter: 2}
	}
	video, audio, err := pickTracks(tracks, layer)
	if err != nil {
		return err
	}
	if !offerHas(offer, "video", video.Codec) {
		return whip.Errorf(http.StatusUnprocessableEntity, "the offer has no video section with %s, the codec of layer %q", video.Codec.Name(), video.Name)
	}
	names := []string{video.Name}
	if audio != nil && offerHas(offer, "audio", audio.Codec) {
		names = append(names, audio.Name)
	} else {
		audio = nil
	}

	sub, err := h.hub.Subscribe(name, names, gateway.SubscribeOptions{Kind: "whep", Remote: r.RemoteAddr})
	switch {
	case errors.Is(err, gateway.ErrNoPublisher):
		return &whip.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q has no live publisher; retry later", name), RetryAfter: 2}
	case errors.Is(err, gateway.ErrNotFound), errors.Is(err, gateway.ErrNoTrack):
		return &whip.HTTPError{Code: http.StatusNotFound, Msg: err.Error()}
	case err != nil:
		return fmt.Errorf("whep: subscribe: %w", err)
	}
	sess, answer, err := h.negotiate(r.Context(), sub, offer, string(body), name, r.RemoteAddr, video, audio)
	if err != nil {
		sub.Close()
		return err
	}
	if err := r.Context().Err(); err != nil {
		// The viewer hung up before its answer: nobody will connect.
		h.sessions.End(sess.ID)
		return whip.ClientLeft("viewer", err)
	}

	loc := whip.Location(r, h.cfg.PublicURL, sess.ID)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", sess.ETag())
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	for _, l := range whip.LinkHeaders(h.rtc.Config().ICEServers) {
		w.Header().Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
	return nil
}

// negotiate builds the PeerConnection, answers the offer with all our
// candidates, and starts the session that forwards sub into it.
func (h *Handler) negotiate(ctx context.Context, sub *gateway.Subscription, offer *sdp.SessionDescription, raw, name, remote string, video gateway.TrackInfo, audio *gateway.TrackInfo) (*whip.Session, string, error) {
	api := h.api
	var direct *whip.DirectSRTP
	if !h.cfg.PionSRTP && !whip.OffersDTLSServer(offer) {
		// An API of its own: DirectSRTP learns the keys from hooks that
		// must see this PeerConnection's handshake only. It answers as
		// DTLS server, which an offer of setup:passive rules out.
		direct = whip.NewDirectSRTP(h.log)
		a, err := h.rtc.NewAPI(whip.APIOptions{Direct: direct})
		if err != nil {
			return nil, "", fmt.Errorf("whep: %w", err)
		}
		api = a
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: h.rtc.ICEServers()})
	if err != nil {
		return nil, "", fmt.Errorf("whep: new peer connection: %w", err)
	}
	fail := func(err error) (*whip.Session, string, error) {
		_ = pc.Close()
		return nil, "", err
	}
	infos := []gateway.TrackInfo{video}
	if audio != nil {
		infos = append(infos, *audio)
	}
	writers := make([]whip.RTPWriter, len(infos))
	senders := make([]*webrtc.RTPSender, len(infos))
	for i, info := range infos {
		t, err := webrtc.NewTrackLocalStaticRTP(whip.Capability(info), info.Codec.Kind().String(), name)
		if err != nil {
			return fail(fmt.Errorf("whep: new track: %w", err))
		}
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fail(fmt.Errorf("whep: add track: %w", err))
		}
		writers[i], senders[i] = t, tr.Sender()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: raw}); err != nil {
		return fail(whip.Errorf(http.StatusBadRequest, "cannot apply the offer: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(whip.Errorf(http.StatusBadRequest, "cannot answer the offer: %v", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("whep: set local description: %w", err))
	}
	select {
	case <-gathered:
	case <-time.After(h.cfg.GatherTimeout):
		h.log.Warn("candidate gathering timed out; answering with what we have", "stream", name)
	case <-ctx.Done():
		return fail(whip.ClientLeft("viewer", ctx.Err()))
	}

	sess := &whip.Session{ID: whip.NewID(), Kind: "whep", Stream: name, Layer: video.Name, Remote: remote, Token: h.token(name),
		Stats: func() any { return sessionStats(sub, direct) }}
	run := func(ctx context.Context) error {
		defer sub.Close()
		for i, s := range senders {
			sess.Go(func() { whip.ReadRTCP(s, func() { sub.RequestKeyframe(i) }, nil) })
		}
		select {
		case <-sess.Connected():
		case <-time.After(h.cfg.ConnectTimeout):
			return errors.New("never connected")
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Done():
			return sub.Err()
		}
		if direct != nil {
			if err := direct.Activate(h.rtc, pc); err != nil {
				h.log.Info("media goes through pion's SRTP path", "session", sess.ID, "why", err)
			}
		}
		// A frame's packets leave in one sendmmsg (UDP GSO where the kernel
		// has it) instead of a syscall each.
		batch := h.rtc.NewPeerBatch(pc)
		defer batch.Close()
		return whip.ForwardBatched(ctx, sub, writers, batch)
	}
	if err := h.sessions.Start(sess, pc, run); err != nil {
		return fail(&whip.HTTPError{Code: http.StatusServiceUnavailable, Msg: "shutting down", Err: err})
	}
	return sess, pc.LocalDescription().SDP, nil
}

// SessionStats is a WHEP session's figures for the API: its subscription's,
// and which path its SRTP takes.
type SessionStats struct {
	gateway.SubscriberStats
	// SRTP is "direct" when the session's media is sealed and sent beneath
	// pion (whip.DirectSRTP), else "pion".
	SRTP string `json:"srtp"`
	// DirectSent and DirectDropped count packets on the direct path.
	DirectSent    uint64 `json:"direct_sent,omitempty"`
	DirectDropped uint64 `json:"direct_dropped,omitempty"`
}

func sessionStats(sub *gateway.Subscription, direct *whip.DirectSRTP) SessionStats {
	st := SessionStats{SubscriberStats: sub.Stats(), SRTP: "pion"}
	if direct.Active() {
		st.SRTP = "direct"
		st.DirectSent, st.DirectDropped = direct.Stats()
	}
	return st
}

// pickTracks finds the video layer asked for ("" = "main", else the first
// video layer) and the stream's audio, if any.
func pickTracks(tracks []gateway.TrackInfo, layer string) (gateway.TrackInfo, *gateway.TrackInfo, error) {
	var video *gateway.TrackInfo
	var audio *gateway.TrackInfo
	var names []string
	for i := range tracks {
		t := &tracks[i]
		if t.Codec.Kind() == gateway.KindAudio {
			if audio == nil {
				audio = t
			}
			continue
		}
		names = append(names, t.Name)
		if (layer == "" && video == nil) || t.Name == layer || (layer == "" && t.Name == "main") {
			video = t
		}
	}
	if video == nil {
		if layer == "" {
			return gateway.TrackInfo{}, nil, whip.Errorf(http.StatusNotFound, "stream has no video layer")
		}
		return gateway.TrackInfo{}, nil, whip.Errorf(http.StatusNotFound, "no layer %q; layers: %s", layer, strings.Join(names, ", "))
	}
	return *video, audio, nil
}

func offerHas(d *sdp.SessionDescription, kind string, c gateway.Codec) bool {
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != kind {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "96 H264/90000"
			_, enc, ok := strings.Cut(a.Value, " ")
			name, _, _ := strings.Cut(enc, "/")
			if ok && strings.EqualFold(name, c.Name()) {
				return true
			}
		}
	}
	return false
}
