// Package cmd is whipgate's wiring: configuration, the HTTP routes, the
// control API and the lifecycle of everything the server runs. main only
// calls Run; tests call Start.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"whipgate/certs"
	"whipgate/cmd/config"
	"whipgate/gateway"
	"whipgate/hwaccel"
	"whipgate/whep"
	"whipgate/whip"
	"whipgate/whip/egress"
	"whipgate/whip/rtc"
	"whipgate/whip/session"
)

// App is a running whipgate.
type App struct {
	cfg      Config
	log      *slog.Logger
	hub      *gateway.Hub
	rtc      *rtc.Transport
	sessions *session.Registry
	whep     *whep.Handler
	whip     *whip.Server
	certs    *certs.Manager
	egress   *egress.Registry

	// live is the configuration requests read (tokens, streams): a reload
	// replaces it. cfg is what the App started with.
	live      atomic.Pointer[Config]
	encoderMu sync.Mutex
	encoder   *encoderRun // nil without an hwaccel section
	sourceCtx context.Context
	reloader  reloader
	getenv    func(string) string

	events     *events
	eventsDone chan struct{} // closed when Close begins: event streams end

	httpRequests *prometheus.CounterVec

	ln     net.Listener
	srv    *http.Server
	scheme string

	build   BuildInfo // read once: it cannot change while the process runs
	started time.Time

	stopSources context.CancelFunc
	wg          sync.WaitGroup
	closeOnce   sync.Once
	closeErr    error
}

// Start validates cfg, binds every listener synchronously and starts serving.
// On error, whatever had started is stopped again. getenv may be nil.
func Start(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (_ *App, err error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg.ApplyDefaults(getenv)
	if err := cfg.ReadSecretFiles(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.OpenPublish && !config.IsLoopback(cfg.Listen) {
		log.Warn("open_publish: anyone who can reach this server may publish to any stream that has no publish_token", "listen", cfg.Listen)
	}
	// Warnings from every component also go out as events.
	ev := newEvents(cfg.HTTP.MaxEventStreams)
	log = slog.New(eventHandler{Handler: log.Handler(), ev: ev})
	warnShortTokens(cfg, log)
	a := &App{cfg: cfg, log: log, scheme: "http", build: ReadBuildInfo(), started: time.Now(), getenv: getenv,
		events: ev, eventsDone: make(chan struct{}), httpRequests: newHTTPRequests()}
	defer func() {
		if err != nil {
			_ = a.Close(context.WithoutCancel(ctx))
		}
	}()
	a.hub = gateway.NewHub(cfg.Hub, log.With("component", "hub"))
	for name := range cfg.Streams {
		if _, err := a.hub.Pin(name); err != nil {
			return nil, err
		}
	}
	if a.rtc, err = rtc.New(cfg.WebRTC, log.With("component", "webrtc")); err != nil {
		return nil, err
	}
	a.sessions = session.NewRegistry(cfg.Limits.Limits, log.With("component", "sessions"))
	a.sessions.Notify(a.sessionEvent)
	a.whep = whep.New(cfg.WHEP, a.hub, a.rtc, a.sessions, a.viewToken, log)
	a.whip = whip.NewServer(cfg.WHIP, a.hub, a.rtc, a.sessions, a.publishPolicy, log)
	if a.certs, err = certs.New(ctx, cfg.TLS, log); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}

	a.live.Store(&cfg)
	sourceCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.sourceCtx, a.stopSources = sourceCtx, stop
	if err := a.startSources(sourceCtx); err != nil {
		return nil, err
	}
	a.egress = egress.NewRegistry(a.hub, a.rtc, filepath.Join(cfg.StateDir, "egress.json"), cfg.Limits.MaxEgress, log)
	if err := a.egress.Start(cfg.Egress); err != nil {
		return nil, err
	}
	a.wg.Go(func() { a.watchStates(sourceCtx) })

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	a.ln = netutil.LimitListener(ln, cfg.HTTP.MaxConnections)
	a.srv = &http.Server{
		Handler:           a.routes(),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if tc := a.certs.TLSConfig(); tc != nil {
		a.srv.TLSConfig = tc
		a.scheme = "https"
		a.srv.Handler = a.certs.HTTPHandler(a.srv.Handler)
	}
	a.wg.Go(func() {
		var err error
		if a.scheme == "https" {
			err = a.srv.ServeTLS(a.ln, "", "")
		} else {
			err = a.srv.Serve(a.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	})
	if w := tlsWarning(cfg.Listen, a.certs.Mode()); w != "" {
		log.Warn(w, "listen", cfg.Listen)
	}
	log.Info("whipgate started", "url", a.URL(), "webrtc_udp", a.rtc.Addr().String(), "tls", a.certs.Mode())
	return a, nil
}

// URL is the base URL the server answers on. With ACME it names the
// certificate's first domain, so the printed URL verifies.
func (a *App) URL() string {
	host, port, _ := net.SplitHostPort(a.ln.Addr().String())
	if a.certs.Mode() == certs.ModeACME && len(a.cfg.TLS.Domains) > 0 {
		host = a.cfg.TLS.Domains[0]
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return a.scheme + "://" + net.JoinHostPort(host, port)
}

// Hub is the media hub, for tests and in-process sources.
func (a *App) Hub() *gateway.Hub { return a.hub }

// Sessions is the WHIP/WHEP session registry.
func (a *App) Sessions() *session.Registry { return a.sessions }

// RTC is the shared WebRTC transport.
func (a *App) RTC() *rtc.Transport { return a.rtc }

// Encoder is the hwaccel supervisor, nil without an hwaccel section.
func (a *App) Encoder() *hwaccel.Supervisor {
	a.encoderMu.Lock()
	defer a.encoderMu.Unlock()
	if a.encoder == nil {
		return nil
	}
	return a.encoder.sup
}

// conf is the live configuration: the one the App started with, or the
// last reload's.
func (a *App) conf() *Config {
	if c := a.live.Load(); c != nil {
		return c
	}
	return &a.cfg
}

// Certs is the certificate manager (mode off when TLS is off).
func (a *App) Certs() *certs.Manager { return a.certs }

// Close stops everything: HTTP first (no new sessions), then the sessions
// (Shutdown does not wait for WebRTC), the sources, the hub, the UDP port
// and the certificates. ctx bounds the HTTP drain. Idempotent.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		var errs []error
		// Event streams never go idle: end them, or Shutdown waits out
		// its grace period for them.
		close(a.eventsDone)
		if a.srv != nil {
			sctx, cancel := context.WithTimeoutCause(ctx, a.cfg.ShutdownGrace, errors.New("shutdown grace period over"))
			if err := a.srv.Shutdown(sctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
				_ = a.srv.Close()
			}
			cancel()
		} else if a.ln != nil {
			_ = a.ln.Close()
		}
		// Egress DELETE their sessions upstream (bounded) while the local
		// sessions close.
		var stopping sync.WaitGroup
		if a.egress != nil {
			stopping.Go(a.egress.Close)
		}
		if a.sessions != nil {
			a.sessions.Close()
		}
		stopping.Wait()
		if a.stopSources != nil {
			a.stopSources()
		}
		a.wg.Wait()
		if a.hub != nil {
			a.hub.Close()
		}
		if a.rtc != nil {
			if err := a.rtc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("webrtc close: %w", err))
			}
		}
		if a.certs != nil {
			if err := a.certs.Close(); err != nil {
				errs = append(errs, fmt.Errorf("certs close: %w", err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

func (a *App) viewToken(stream string) string { return a.conf().Streams[stream].ViewToken }

// publishPolicy: a configured key is always required; without one,
// publishing is open on loopback or with open_publish.
func (a *App) publishPolicy(stream string) (string, bool, bool) {
	c := a.conf()
	sc := c.Streams[stream]
	return sc.PublishToken, c.OpenPublish || config.IsLoopback(c.Listen), sc.Takeover
}

// minTokenLen is the shortest token not warned about: 16 random characters
// resist guessing even at the API's pace.
const minTokenLen = 16

// warnShortTokens warns about tokens that are easy to guess, naming the
// setting, never the token.
func warnShortTokens(cfg Config, log *slog.Logger) {
	short := func(setting, token string) {
		if token != "" && len(token) < minTokenLen {
			log.Warn("a token shorter than 16 characters is easy to guess", "setting", setting)
		}
	}
	short("api_token", cfg.APIToken)
	for name, sc := range cfg.Streams {
		short("streams."+name+".publish_token", sc.PublishToken)
		short("streams."+name+".view_token", sc.ViewToken)
	}
}

// tlsWarning is what to tell an operator about the TLS mode a listen
// address gets: OBS (and browsers, without an exception) refuse a
// certificate no CA vouches for, so WHIP from the LAN fails before it
// starts.
func tlsWarning(listen, mode string) string {
	if mode != certs.ModeSelfSigned || config.IsLoopback(listen) {
		return ""
	}
	return "serving WHIP beyond loopback with a self-signed certificate: OBS cannot publish to it; " +
		"use tls.mode acme with a domain name, or manual files from a CA the publishers trust (README, TLS)"
}
