package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/problem"
)

// EndpointConfig is what a WHIP and a WHEP endpoint share. The zero value
// means the defaults.
type EndpointConfig struct {
	// PublicURL is the externally visible base URL ("https://box:8443")
	// for Location headers. Default: from each request's Host (always
	// absolute).
	PublicURL string `yaml:"public_url"`
	// AllowOrigin is the CORS origin. Default "*".
	AllowOrigin string `yaml:"allow_origin"`
	// GatherTimeout bounds candidate gathering before the answer. Default
	// 5 s (OBS gives up on the POST after 8 s, FFmpeg after 5 s).
	GatherTimeout time.Duration `yaml:"gather_timeout"`
	// ConnectTimeout ends a session that never connects. Default 10 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PionSRTP moves the endpoint's media through pion's UDP mux, ICE
	// connection and SRTP session instead of beneath them (whip/rtc),
	// which costs about twice the CPU per packet. Default false.
	PionSRTP bool `yaml:"pion_srtp"`
}

// ApplyDefaults fills the zero fields.
func (c *EndpointConfig) ApplyDefaults() {
	if c.GatherTimeout <= 0 {
		c.GatherTimeout = 5 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
}

// Endpoint is what a WHIP or a WHEP endpoint URL does the same: the
// methods it answers, how a POST's offer is read and answered, and the 201
// that hands the session out. Each endpoint keeps only what differs: what
// it does with the offer's media.
type Endpoint struct {
	// Kind is "whip" or "whep": the session kind and the log's component.
	Kind string
	// Who is the client in messages: "publisher" or "viewer".
	Who string
	// ProbeStatus answers GET and HEAD on the endpoint URL (RFC 9725 §4.1
	// and the WHEP draft ask for a 2xx with no content).
	ProbeStatus int
	Config      EndpointConfig
	Sessions    *Registry
	// ICEServers are the STUN/TURN servers answering PeerConnections
	// gather with, handed to clients in Link headers too.
	ICEServers []webrtc.ICEServer
	Log        *slog.Logger
}

// Serve handles the endpoint URL: OPTIONS and GET/HEAD, POST through post,
// any other method 405. post's error is answered as problem+json and
// logged: a refusal at info, a failure of ours at error.
func (e *Endpoint) Serve(w http.ResponseWriter, r *http.Request, stream string, post func(http.ResponseWriter, *http.Request) error) {
	CORS(w, e.Config.AllowOrigin)
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Accept-Post", "application/sdp")
		if e.ProbeStatus == http.StatusOK {
			w.Header().Set("Content-Type", "application/sdp")
		}
		w.WriteHeader(e.ProbeStatus)
	case http.MethodPost:
		if err := post(w, r); err != nil {
			if he, ok := errors.AsType[*problem.Error](err); !ok || he.Code >= 500 {
				e.Log.Error(e.Kind+" post failed", "stream", stream, "err", err)
			} else {
				e.Log.Info(e.Kind+" post refused", "stream", stream, "status", he.Code, "reason", he.Msg)
			}
			problem.Write(w, err)
		}
	default:
		w.Header().Set("Allow", "OPTIONS, GET, HEAD, POST")
		problem.Write(w, problem.Errorf(http.StatusMethodNotAllowed, "method %s not allowed on a %s endpoint", r.Method, e.upperKind()))
	}
}

func (e *Endpoint) upperKind() string {
	if e.Kind == "whep" {
		return "WHEP"
	}
	return "WHIP"
}

// NewSession makes the session of a POST to this endpoint and admits it
// within the registry's limits (503 with Retry-After past one). If the
// POST fails before Answer, give it back with Sessions.Release.
func (e *Endpoint) NewSession(r *http.Request, stream, layer, token string) (*Session, error) {
	s := &Session{ID: NewID(), Kind: e.Kind, Stream: stream, Layer: layer, Remote: r.RemoteAddr, Token: token}
	if err := e.Sessions.Admit(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Offer is a POST's SDP offer: as sent, and parsed.
type Offer struct {
	Raw string
	SDP *sdp.SessionDescription
}

// ReadOffer checks and parses an offer body read with ReadBody.
func (l Limits) ReadOffer(body []byte) (*Offer, error) {
	d, err := l.ParseOffer(body)
	if err != nil {
		return nil, err
	}
	return &Offer{Raw: string(body), SDP: d}, nil
}

// PeerConfiguration is the configuration of an answering PeerConnection:
// the transport's STUN/TURN servers.
func (e *Endpoint) PeerConfiguration() webrtc.Configuration {
	return webrtc.Configuration{ICEServers: e.ICEServers}
}

// Answer applies offer to pc, calls prepare (which may be nil) between the
// remote description and the answer, answers with all our candidates (or
// what was gathered within the gather timeout), and starts the admitted
// sess on pc with run. It returns the answer SDP. On error nothing was
// started and sess is released: the caller releases pc and what prepare
// made; once started, run owns them.
func (e *Endpoint) Answer(ctx context.Context, pc *webrtc.PeerConnection, offer *Offer, sess *Session, prepare func() error, run func(context.Context) error) (_ string, err error) {
	defer func() {
		if err != nil {
			e.Sessions.Release(sess)
		}
	}()
	sess.candidates = countCandidates(offer.SDP)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.Raw}); err != nil {
		return "", problem.Errorf(http.StatusBadRequest, "cannot apply the offer: %v", err)
	}
	if prepare != nil {
		if err := prepare(); err != nil {
			return "", err
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", problem.Errorf(http.StatusBadRequest, "cannot answer the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", &problem.Error{Code: http.StatusInternalServerError, Msg: "cannot set the answer", Err: err}
	}
	t := time.NewTimer(e.Config.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		e.Log.Warn("candidate gathering timed out; answering with what we have", "stream", sess.Stream)
	case <-ctx.Done():
		return "", problem.ClientLeft(e.Who, ctx.Err())
	}
	if err := e.Sessions.Start(sess, pc, e.Config.ConnectTimeout, run); err != nil {
		return "", &problem.Error{Code: http.StatusServiceUnavailable, Msg: "shutting down", Err: err}
	}
	return pc.LocalDescription().SDP, nil
}

// Created answers a POST with its session: 201, the absolute session URL,
// its ETag (ICE restarts are supported), trickle, one Link line per ICE
// server and the answer. If the client hung up before its answer, nobody
// will connect: the session ends at once rather than holding its stream
// until the connect timeout.
func (e *Endpoint) Created(w http.ResponseWriter, r *http.Request, sess *Session, answer string) error {
	if err := r.Context().Err(); err != nil {
		e.Sessions.End(sess.ID)
		return problem.ClientLeft(e.Who, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", Location(r, e.Config.PublicURL, sess.ID))
	h.Set("ETag", sess.ETag())
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	for _, l := range LinkHeaders(e.ICEServers) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated) // exactly 201: OBS fails on anything else
	_, _ = w.Write([]byte(answer))
	return nil
}

// countCandidates counts the candidates of an offer, all sections.
func countCandidates(d *sdp.SessionDescription) int {
	n := 0
	for _, m := range d.MediaDescriptions {
		for _, a := range m.Attributes {
			if a.Key == "candidate" {
				n++
			}
		}
	}
	return n
}
