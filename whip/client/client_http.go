package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrProtocol marks a server reply that breaks WHIP in a way a quick
// retry will not mend (no Location, no SDP, rejected media or rids).
var ErrProtocol = errors.New("whip: server broke the protocol")

// HTTPError is a WHIP request the server answered with an
// unexpected status.
type HTTPError struct {
	Method string
	// URL is the request URL without its query (which may carry secrets).
	URL    string
	Status int
	// RetryAfter is the server's Retry-After (503, 429), zero if none.
	RetryAfter time.Duration
	// Detail is the problem detail or the start of the body.
	Detail string
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "whip: %s %s: server answered %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
		b.WriteString(" (a redirect WHIP forbids: only 307 and 308 are followed)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// Permanent reports whether retrying soon is pointless: a client error
// (bad token, unknown endpoint) or a forbidden redirect. Timeouts, rate
// limits and server errors are not.
func (e *HTTPError) Permanent() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return e.Status >= 300 && e.Status < 500
}

// Permanent reports whether err, from Publish or Restart, says
// the target refuses this publisher as configured (so retry slowly), as
// opposed to being down or busy.
func Permanent(err error) bool {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.Permanent()
	}
	return errors.Is(err, ErrProtocol)
}

// RetryAfter is the Retry-After carried by err, zero if none.
func RetryAfter(err error) time.Duration {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.RetryAfter
	}
	return 0
}

// clientMaxBody bounds what is read of any response: an answer SDP with
// every candidate is a few kB.
const clientMaxBody = 1 << 20

// clientRequest is one HTTP exchange with a WHIP endpoint or session.
type clientRequest struct {
	method, url, contentType, ifMatch string
	body                              string
}

// do sends r with the Bearer token, reads the body and returns the
// response (body closed, read into the second result).
func (c *Client) do(ctx context.Context, r clientRequest) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, nil, fmt.Errorf("whip: %s %s: %w", r.method, Redact(r.url), err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	req.Header.Set("User-Agent", "whipgate")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("whip: %s %s: %w", r.method, Redact(r.url), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, clientMaxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("whip: %s %s: read response: %w", r.method, Redact(r.url), err)
	}
	return resp, data, nil
}

// checkRedirect follows 307 and 308 only, and carries the Bearer token
// across hosts: Go drops Authorization when a redirect leaves the domain
// (golang/go#65065), but an SFU cluster redirects to another node that
// wants the same token (OBS keeps it too). It never sends the token from
// https down to plain http.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("whip: stopped after %d redirects", len(via))
	}
	if s := req.Response.StatusCode; s != http.StatusTemporaryRedirect && s != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse // reported as an error naming the status
	}
	if c.cfg.Token != "" {
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			c.log.Warn("not sending the token over a redirect from https to http", "to", Redact(req.URL.String()))
			req.Header.Del("Authorization")
		} else {
			req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
		}
	}
	c.log.Debug("following redirect", "status", req.Response.StatusCode, "to", Redact(req.URL.String()))
	return nil
}

// clientHTTPError builds the error for an unexpected status.
func clientHTTPError(method, rawURL string, resp *http.Response, body []byte) *HTTPError {
	return &HTTPError{
		Method:     method,
		URL:        Redact(rawURL),
		Status:     resp.StatusCode,
		RetryAfter: clientParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Detail:     clientDetail(resp.Header.Get("Content-Type"), body),
	}
}

// clientParseRetryAfter reads delay-seconds or an HTTP date (RFC 9110
// §10.2.3), capped at an hour so a bogus value cannot park a publisher.
func clientParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Capped before it is multiplied: 9227000000 s overflow a Duration.
		d = time.Duration(min(max(n, 0), int64(time.Hour/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// clientDetail is the human part of an error body: an RFC 9457 problem's
// detail or title, else the body's first line.
func clientDetail(contentType string, body []byte) string {
	if strings.Contains(contentType, "json") {
		var p struct{ Title, Detail string }
		if json.Unmarshal(body, &p) == nil && (p.Detail != "" || p.Title != "") {
			if p.Detail != "" {
				return p.Detail
			}
			return p.Title
		}
	}
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	if len(line) > 200 {
		line = line[:200]
	}
	return strings.ToValidUTF8(string(line), "?")
}

// Redact drops the query and user info from a URL for logs and
// errors: some services put their secret there.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	// Cut rather than re-render, so a {layer} placeholder stays readable.
	out, _, _ := strings.Cut(raw, "#")
	out, _, _ = strings.Cut(out, "?")
	if u.User != nil {
		if i := strings.Index(out, "@"); i >= 0 {
			out = u.Scheme + "://" + out[i+1:]
		}
	}
	return out
}
