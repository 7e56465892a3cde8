package cmd

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"whipgate/whip/problem"

	"github.com/go-chi/chi/v5"
)

//go:embed web
var webFS embed.FS

//go:embed pages
var pagesFS embed.FS

// page is one HTML page: its route, and what its template in pages/
// (Name.html, which takes the head, header and scripts from layout.html)
// is rendered with.
type page struct {
	Route, Name, Title, Script string
	html                       []byte
}

// renderPages renders the pages once, when a server first builds its
// routes (not for the CLI's other commands).
var renderPages = sync.OnceValue(func() []page {
	t := template.Must(template.ParseFS(pagesFS, "pages/*.html"))
	pages := []page{
		{Route: "/", Name: "index", Title: "whipgate", Script: "dashboard.js"},
		{Route: "/play/{stream}", Name: "play", Title: "whipgate player", Script: "play.js"},
		{Route: "/publish/{stream}", Name: "publish", Title: "whipgate publish", Script: "publish.js"},
	}
	for i, p := range pages {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, p.Name+".html", p); err != nil {
			panic(fmt.Sprintf("cmd: render page %s: %v", p.Name, err)) // a broken embedded template
		}
		pages[i].html = b.Bytes()
	}
	return pages
})

// routes is every HTTP route in one place. The WHIP/WHEP paths are
// operators' bookmarks and player settings: keep them stable.
func (a *App) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.logRequests, securityHeaders)

	// A viewer's goroutines (its PeerConnection's, its sender) start in
	// the POST: the label they inherit counts their CPU as the viewers'.
	r.HandleFunc("/whep/{stream}", func(w http.ResponseWriter, r *http.Request) {
		labelled(r.Context(), partViewers, func(context.Context) {
			a.whep.ServeEndpoint(w, r, chi.URLParam(r, "stream"), "")
		})
	})
	r.HandleFunc("/whep/{stream}/{layer}", func(w http.ResponseWriter, r *http.Request) {
		labelled(r.Context(), partViewers, func(context.Context) {
			a.whep.ServeEndpoint(w, r, chi.URLParam(r, "stream"), chi.URLParam(r, "layer"))
		})
	})
	r.HandleFunc("/whip/{stream}", func(w http.ResponseWriter, r *http.Request) {
		a.whip.ServeEndpoint(w, r, chi.URLParam(r, "stream"))
	})
	r.HandleFunc("/session/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.sessions.ServeResource(w, r, chi.URLParam(r, "id"), a.cfg.AllowOrigin)
	})

	r.Route("/api/v1", a.apiRoutes)

	r.With(a.apiTrust, a.apiAuth).Get("/metrics", newMetricsHandler(a).ServeHTTP)
	if a.cfg.HTTP.Pprof {
		r.With(a.apiTrust, a.apiAuth).Mount("/debug/pprof", pprofRoutes())
	}
	r.Get("/readyz", a.readyz)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	static, _ := fs.Sub(webFS, "web")
	for _, p := range renderPages() {
		r.Get(p.Route, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(p.html)
		})
	}
	r.Get("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "favicon.svg")
	})
	r.Get("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)).ServeHTTP)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Errorf(http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
	})
	return r
}

// contentSecurityPolicy lets the pages load only their own scripts and
// styles, talk only to this server, and never be framed: data shown on a
// page (stream names, rids, errors) cannot become script.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sends the CSP on every response (pages and API), and
// keeps a token in a page's URL out of Referer headers.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		a.countRequest(route, rec.status)
		level := slog.LevelDebug
		if rec.status >= 400 || r.Method != http.MethodGet {
			level = slog.LevelInfo
		}
		if strings.HasPrefix(r.URL.Path, "/static/") {
			level = slog.LevelDebug
		}
		a.log.Log(r.Context(), level, "http", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"remote", r.RemoteAddr, "duration", time.Since(start).Round(time.Microsecond))
	})
}

// writeJSON answers with a JSON document.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError answers an API error as RFC 9457 problem+json, like every
// other surface (WHIP, WHEP, the router): one format for programs to read.
// A failure of ours (not a *problem.Error) is logged with its cause and
// answered without it.
func (a *App) apiError(w http.ResponseWriter, err error) {
	if he, ok := errors.AsType[*problem.Error](err); !ok || he.Code >= 500 {
		a.log.Error("api request failed", "err", err)
	}
	problem.Write(w, err)
}
