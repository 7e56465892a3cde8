package cmd

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Each page is rendered from its template and layout.html: served as
// HTML, whole (from the doctype to the closing tag), the nav marking its
// own link and no other, its own script after the shared one, and no
// template text left. The built-in templates are not served as files.
func TestPagesShareOneLayout(t *testing.T) {
	app := startApp(t, nil)
	current := regexp.MustCompile(`<a [^>]*aria-current="page"[^>]*>([a-z]+)</a>`)
	for _, p := range []struct{ path, nav, script, title string }{
		{"/", "dashboard", "dashboard.js", "<title>whipgate</title>"},
		{"/play/box", "player", "play.js", "<title>whipgate player</title>"},
		{"/publish/box", "publish", "publish.js", "<title>whipgate publish</title>"},
	} {
		resp, body := requestResp(t, http.MethodGet, app.URL()+p.path, "", "")
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/html; charset=utf-8" {
			t.Errorf("%s: %d %q, want 200 text/html", p.path, resp.StatusCode, ct)
			continue
		}
		if !strings.HasPrefix(body, "<!doctype html>\n") || !strings.HasSuffix(body, "</body></html>\n") || strings.Contains(body, "{{") {
			t.Errorf("%s: not one whole rendered page:\n%s", p.path, body)
		}
		if m := current.FindAllStringSubmatch(body, -1); len(m) != 1 || m[0][1] != p.nav {
			t.Errorf("%s: nav marks %v as current, want %s only", p.path, m, p.nav)
		}
		if !strings.Contains(body, p.title) || !strings.Contains(body, `<script src="/static/whipgate.js"></script>
<script src="/static/`+p.script+`"></script>`) {
			t.Errorf("%s: want %s and whipgate.js then %s:\n%s", p.path, p.title, p.script, body)
		}
	}
	for _, path := range []string{"/static/layout.html", "/static/pages/play.html", "/static/play.html"} {
		if code, _ := request(t, "GET", app.URL()+path, "", ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404: templates are not files to serve", path, code)
		}
	}
}
