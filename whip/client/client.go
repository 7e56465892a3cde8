// Package client is whipgate's WHIP client (RFC 9725), usable alone: it
// publishes a pion PeerConnection to any WHIP endpoint the way OBS does
// (offer, POST, ICE servers from the 201's Link headers, trickle by PATCH,
// ICE restarts, DELETE), follows the redirects WHIP allows and tells the
// errors worth a quick retry from those that are not. Link header parsing
// is here too; the sdpfrag bodies it shares with the server.
//
// It must not import the WHIP or WHEP endpoints, the session package or
// cmd; egress (whip/egress) builds on it.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc"
)

// Config configures a WHIP client (RFC 9725) for one endpoint. The
// zero value of each optional field means its default.
type Config struct {
	// URL is the WHIP endpoint (http or https). Required.
	URL string
	// Token is sent as "Authorization: Bearer <token>" on every request;
	// empty sends no Authorization at all. Default empty.
	Token string
	// ICEServers, when set, replace the servers the endpoint offers in its
	// Link headers. Default none: use the Link servers.
	ICEServers []rtc.ICEServer
	// RelayOnly sends media through TURN only; Publish fails when neither
	// ICEServers nor the Link headers name a TURN server. Default false.
	RelayOnly bool
	// Timeout bounds each HTTP request. Default 15 s.
	Timeout time.Duration
	// Transport carries the HTTP requests. Default: a clone of
	// http.DefaultTransport owned by the client.
	Transport http.RoundTripper
}

func (c *Config) applyDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("whip client: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("whip client: url %q: scheme must be http or https", Redact(c.URL))
	}
	if u.Host == "" {
		return fmt.Errorf("whip client: url %q has no host", Redact(c.URL))
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		return errors.New("whip client: token contains a line break")
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return errors.New("whip client: an ice_servers entry has no urls")
		}
		for _, u := range s.URLs {
			if _, err := rtc.ParseICEURL(u); err != nil {
				return fmt.Errorf("whip client: ice server %q: %w", u, err)
			}
		}
	}
	return nil
}

// Client publishes to one WHIP endpoint. It is safe for concurrent use;
// each Publish makes an independent session.
type Client struct {
	cfg       Config
	log       *slog.Logger
	http      *http.Client
	transport *http.Transport // ours to close, nil if the caller gave one
}

// New returns a client for cfg.URL.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	c := &Client{cfg: cfg, log: log.With("component", "whip-client", "endpoint", Redact(cfg.URL))}
	rt := cfg.Transport
	if rt == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		rt = c.transport
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: c.checkRedirect}
	return c, nil
}

// Close drops the client's idle HTTP connections. Sessions stay usable
// (a later request dials again). It is idempotent.
func (c *Client) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

// PeerConfiguration is what the session's PeerConnection must be created
// with: pion fixes the candidate types (relay only or all) when the offer
// is created, before the endpoint has answered.
func (c *Client) PeerConfiguration() webrtc.Configuration {
	conf := webrtc.Configuration{
		ICEServers:   rtc.PionICEServers(c.cfg.ICEServers),
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	}
	if c.cfg.RelayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return conf
}

// outliveBy returns a context that ends DeleteWait after ctx does
// (or when done is called). A caller that cancels while the POST is out (a
// SIGTERM during setup) must not abandon it: the server may already have
// made the session and only its answer says where. The answer and the
// DELETE of what it made share that time, so a stop stays bounded.
func outliveBy(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.NewTimer(DeleteWait)
		defer t.Stop()
		select {
		case <-t.C:
			stop()
		case <-gctx.Done():
		}
	})
	return gctx, func() { stopGrace(); stop() }
}

// Publish negotiates pc, which holds its senders and no description yet,
// with the endpoint, the way OBS does: offer without candidates → POST →
// ICE servers from the 201's Link headers → SetConfiguration → gather
// (pion ≥ 4.2.2 gives a gatherer's new servers to the next gathering,
// and gathering starts at SetLocalDescription) → answer. Candidates are
// trickled with PATCH where the server signalled support with an ETag;
// elsewhere it learns them from our connectivity checks. The caller keeps
// ownership of pc and closes it; the session's Close sends DELETE.
func (c *Client) Publish(ctx context.Context, pc *webrtc.PeerConnection) (*Session, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("whip: create offer: %w", err)
	}
	info, err := ownOffer(offer.SDP)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("whip: publish to %s: %w", Redact(c.cfg.URL), context.Cause(ctx))
	}
	pctx, done := outliveBy(ctx)
	defer done()
	resp, body, err := c.do(pctx, clientRequest{method: http.MethodPost, url: c.cfg.URL, contentType: "application/sdp", body: offer.SDP})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("whip: publish to %s: %w (%w)", Redact(c.cfg.URL), context.Cause(ctx), err)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, clientHTTPError(http.MethodPost, c.cfg.URL, resp, body)
	}
	final := resp.Request.URL // after redirects: relative Locations resolve against it
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%w: POST %s: 201 without a Location header", ErrProtocol, Redact(c.cfg.URL))
	}
	resURL, err := final.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: POST %s: bad Location %q: %w", ErrProtocol, Redact(c.cfg.URL), loc, err)
	}
	s := &Session{
		c:        c,
		pc:       pc,
		log:      c.log.With("resource", Redact(resURL.String())),
		resource: resURL.String(),
		etag:     strings.TrimSpace(resp.Header.Get("ETag")),
		offer:    info,
		gather:   newClientGather(),
	}
	if err := ctx.Err(); err != nil {
		// Cancelled while the POST was out: the server made a session
		// nobody will use; delete it now rather than leave a publisher
		// there until its ICE timeout.
		s.abort(pctx)
		return nil, fmt.Errorf("whip: publish to %s: %w", Redact(c.cfg.URL), context.Cause(ctx))
	}
	// Some servers put text ahead of the SDP (OBS skips to "v=0" too).
	if i := bytes.Index(body, []byte("v=0")); i > 0 {
		body = body[i:]
	}
	s.answer = string(body)
	fail := func(err error) (*Session, error) {
		s.abort(ctx)
		return nil, err
	}
	if err := clientCheckAnswer(offer.SDP, s.answer); err != nil {
		return fail(fmt.Errorf("POST %s: %w", Redact(c.cfg.URL), err))
	}

	links, skipped := LinkICEServers(ParseLinkHeader(resp.Header.Values("Link")))
	for _, e := range skipped {
		s.log.Warn("ignoring a Link ICE server", "err", e)
	}
	servers := links
	if len(c.cfg.ICEServers) > 0 {
		servers = c.cfg.ICEServers // configured locally: they win (RFC 9725 §4.6)
	}
	s.iceServers = servers
	if c.cfg.RelayOnly && !HasTURN(servers) {
		return fail(fmt.Errorf("whip: relay_only is set but no TURN server is configured or offered in Link headers"))
	}
	if len(servers) > 0 {
		conf := pc.GetConfiguration()
		conf.ICEServers = rtc.PionICEServers(servers)
		if err := pc.SetConfiguration(conf); err != nil {
			return fail(fmt.Errorf("whip: apply ICE servers: %w", err))
		}
	}

	pc.OnICECandidate(s.gather.add)
	trickle := s.etag != ""
	s.trickleOK = trickle // before the trickle goroutine exists
	if trickle {
		s.startTrickle(ctx)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(fmt.Errorf("whip: set offer: %w", err))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.answer}); err != nil {
		return fail(fmt.Errorf("%w: the answer does not apply: %w", ErrProtocol, err))
	}
	s.log.Info("published", "ice_servers", len(servers), "trickle", trickle, "etag", s.etag != "")
	return s, nil
}
