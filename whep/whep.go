// Package whep serves WHEP playback (draft-ietf-wish-whep): a player POSTs
// an SDP offer to /whep/{stream} or /whep/{stream}/{layer} and receives the
// stream's layer (and its audio) from the media hub. The session resource
// and the answer path are whip/session's, shared with WHIP ingest; the
// media is sent beneath pion by the transport (whip/rtc).
//
// It must not import the WHIP ingest endpoint (whipgate/whip) or cmd.
package whep

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip/problem"
	"whipgate/whip/rtc"
	"whipgate/whip/rtc/codecs"
	"whipgate/whip/rtc/nack"
	"whipgate/whip/session"
)

// Config configures the WHEP endpoints. The zero value means the defaults.
type Config = session.EndpointConfig

// Handler serves the WHEP endpoints.
type Handler struct {
	cfg Config
	hub *gateway.Hub
	t   *rtc.Transport
	ep  *session.Endpoint
	log *slog.Logger
	// token returns the Bearer token needed to watch a stream ("" = none).
	token func(stream string) string
	// repairs sums the viewers' loss repair per stream (Repair).
	repairs *repairBook
}

// New builds the handler on the shared transport and session registry.
// token may be nil (no stream needs a token).
func New(cfg Config, hub *gateway.Hub, t *rtc.Transport, sessions *session.Registry, token func(string) string, log *slog.Logger) *Handler {
	cfg.ApplyDefaults()
	if token == nil {
		token = func(string) string { return "" }
	}
	log = log.With("component", "whep")
	return &Handler{cfg: cfg, hub: hub, t: t, token: token, log: log, repairs: newRepairBook(), ep: &session.Endpoint{
		Kind: "whep", Who: "viewer", ProbeStatus: http.StatusOK,
		Config: cfg, Sessions: sessions, ICEServers: t.ICEServers(), Log: log,
	}}
}

// ServeEndpoint handles /whep/{stream} and /whep/{stream}/{layer}.
func (h *Handler) ServeEndpoint(w http.ResponseWriter, r *http.Request, stream, layer string) {
	h.ep.Serve(w, r, stream, func(w http.ResponseWriter, r *http.Request) error {
		if err := gateway.ValidStreamName(stream); err != nil {
			return problem.Errorf(http.StatusBadRequest, "%v", err)
		}
		if layer != "" {
			if err := gateway.ValidLayerName(layer); err != nil {
				return problem.Errorf(http.StatusBadRequest, "%v", err)
			}
		}
		return h.post(w, r, stream, layer)
	})
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, name, layer string) error {
	limits := h.ep.Sessions.Limits()
	body, err := limits.ReadBody(r, "application/sdp")
	if err != nil {
		return err
	}
	token := h.token(name)
	if err := session.CheckBearer(r, token); err != nil {
		return err
	}
	offer, err := limits.ReadOffer(body)
	if err != nil {
		return err
	}
	stream, ok := h.hub.Stream(name)
	if !ok {
		return problem.Errorf(http.StatusNotFound, "no stream %q", name)
	}
	tracks := stream.Tracks()
	if tracks == nil {
		return noPublisher(name)
	}
	video, audio, err := pickTracks(tracks, layer)
	if err != nil {
		return err
	}
	if !offerHas(offer.SDP, "video", video.Codec) {
		return problem.Errorf(http.StatusUnprocessableEntity, "the offer has no video section with %s, the codec of layer %q", video.Codec.Name(), video.Name)
	}
	infos := []gateway.TrackInfo{video}
	if audio != nil && offerHas(offer.SDP, "audio", audio.Codec) {
		infos = append(infos, *audio)
	}
	sess, err := h.ep.NewSession(r, name, video.Name, token)
	if err != nil {
		return err
	}
	snd, err := h.t.NewSender(offer.SDP, h.ep.PeerConfiguration(), rtc.PeerOptions{PionSRTP: h.cfg.PionSRTP, Log: h.log.With("session", sess.ID)})
	if err != nil {
		h.ep.Sessions.Release(sess)
		return fmt.Errorf("whep: %w", err)
	}
	answer, err := h.answer(r.Context(), snd, offer, sess, infos)
	if err != nil {
		_ = snd.Close()
		return err
	}
	return h.ep.Created(w, r, sess, answer)
}

func noPublisher(name string) error {
	return &problem.Error{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q has no live publisher; retry later", name), RetryAfter: 2}
}

// answer adds a track per hub track, answers the offer and starts the
// session that subscribes to the hub once connected and forwards into the
// PeerConnection.
func (h *Handler) answer(ctx context.Context, snd *rtc.Sender, offer *session.Offer, sess *session.Session, infos []gateway.TrackInfo) (string, error) {
	pc := snd.PeerConnection()
	writers := make([]rtc.RTPWriter, len(infos))
	senders := make([]*webrtc.RTPSender, len(infos))
	tracks := make([]*codecs.OneCodecTrack, len(infos))
	trs := make([]*webrtc.RTPTransceiver, len(infos))
	names := make([]string, len(infos))
	for i, info := range infos {
		t, err := codecs.NewOneCodecTrack(codecs.Capability(info), info.Codec.Kind().String(), sess.Stream)
		if err != nil {
			return "", fmt.Errorf("whep: %w", err)
		}
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return "", fmt.Errorf("whep: add track: %w", err)
		}
		writers[i], senders[i], tracks[i], trs[i], names[i] = t, tr.Sender(), t, tr, info.Name
	}
	// Once the offer is applied, each section answers with the one codec
	// its track sends (and its RTX), and a section with nothing to send
	// (audio of a video-only stream) is answered inactive, not sendonly
	// with no source.
	prepare := func() error {
		for i, t := range tracks {
			if err := t.Limit(trs[i]); err != nil {
				return problem.Errorf(http.StatusUnprocessableEntity, "answering for %s: %v", names[i], err)
			}
		}
		for _, tr := range pc.GetTransceivers() {
			if !slices.Contains(trs, tr) {
				if err := tr.Stop(); err != nil {
					return fmt.Errorf("whep: stop an unused section: %w", err)
				}
			}
		}
		return nil
	}
	var sub atomic.Pointer[gateway.Subscription] // set once connected
	resp := snd.Responder()                      // kept: the transport forgets it once closed
	sess.Stats = func() any {
		st := SessionStats{SenderSRTP: snd.Stats(), Repair: resp.Stats()}
		if s := sub.Load(); s != nil {
			st.SubscriberStats = s.Stats()
		}
		if rtt, ok := rtc.PeerRTT(pc); ok {
			st.RTTMillis = float64(rtt.Microseconds()) / 1000
		}
		return st
	}
	run := func(ctx context.Context) error {
		h.repairs.add(sess.Stream, resp)
		defer h.repairs.retire(sess.Stream, resp)
		sess.Go(func() { snd.FollowRTT(ctx) })
		for i, s := range senders {
			sess.Go(func() {
				rtc.ReadRTCP(s, func() {
					if sb := sub.Load(); sb != nil {
						sb.RequestKeyframe(i)
					}
				}, nil)
			})
		}
		// Packets written before DTLS is up are lost; and a viewer takes
		// a hub queue only once connected, so one that never connects
		// costs the hub nothing.
		select {
		case <-sess.Connected():
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		sb, err := h.hub.Subscribe(sess.Stream, names, gateway.SubscribeOptions{Kind: "whep", Remote: sess.Remote})
		if err != nil {
			return fmt.Errorf("whep: subscribe once connected: %w", err)
		}
		defer sb.Close()
		for i, t := range sb.Tracks() {
			if t.Codec != infos[i].Codec {
				return fmt.Errorf("whep: layer %s changed codec from %s to %s before the viewer connected", t.Name, infos[i].Codec, t.Codec)
			}
		}
		sub.Store(sb)
		askKeyframes(resp, senders, sb)
		return snd.Forward(ctx, sb, writers)
	}
	return h.ep.Answer(ctx, pc, offer, sess, prepare, run)
}

// askKeyframes has the viewer's responder ask the publisher for a
// keyframe (merged and rate-limited by the hub, as the viewer's own PLIs)
// when the viewer asks for packets it can no longer have: the frame they
// belong to is lost, and re-sending the rest of it would not save it.
func askKeyframes(resp *nack.Responder, senders []*webrtc.RTPSender, sb *gateway.Subscription) {
	track := map[uint32]int{}
	for i, s := range senders {
		for _, e := range s.GetParameters().Encodings {
			track[uint32(e.SSRC)] = i
		}
	}
	resp.OnHopeless(func(ssrc uint32) {
		if i, ok := track[ssrc]; ok {
			sb.RequestKeyframe(i)
		}
	})
}

// SessionStats is a WHEP session's figures for the API: its subscription's,
// which path its SRTP takes, the round trip to the viewer and its loss
// repair.
type SessionStats struct {
	gateway.SubscriberStats
	rtc.SenderSRTP
	// RTTMillis is the round trip to the viewer in milliseconds, as ICE
	// last measured it (every 2 s); absent until measured. The NACK
	// responder's resend interval follows it.
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	// Repair is what the viewer's NACK responder did with its requests.
	Repair nack.ResponderStats `json:"repair"`
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
			return gateway.TrackInfo{}, nil, problem.Errorf(http.StatusNotFound, "stream has no video layer")
		}
		return gateway.TrackInfo{}, nil, problem.Errorf(http.StatusNotFound, "no layer %q; layers: %s", layer, strings.Join(names, ", "))
	}
	return *video, audio, nil
}

// offerHasKind reports whether the offer has a section of kind.
func offerHasKind(d *sdp.SessionDescription, kind string) bool {
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == kind {
			return true
		}
	}
	return false
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
