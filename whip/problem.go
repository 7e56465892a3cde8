package whip

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/pion/sdp/v3"
)

// HTTPError is an error with the status and message a client sees; Err, if
// set, is the cause that goes to the log only.
type HTTPError struct {
	Code       int
	Msg        string
	Err        error
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Errorf builds an HTTPError with a formatted client message.
func Errorf(code int, format string, args ...any) *HTTPError {
	return &HTTPError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// StatusClientClosed is nginx's "client closed request": it names, in the
// access log, a request whose client left before its answer.
const StatusClientClosed = 499

// ClientLeft is the error of a request whose client (who) hung up before
// its answer; nobody reads it, the access log does.
func ClientLeft(who string, err error) *HTTPError {
	return &HTTPError{Code: StatusClientClosed, Msg: "the " + who + " left before the answer", Err: err}
}

// WriteProblem answers with an RFC 9457 problem document, so every error
// says what was wrong in a form both people and programs read.
func WriteProblem(w http.ResponseWriter, err error) {
	he, ok := errors.AsType[*HTTPError](err)
	if !ok {
		he = &HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	if he.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(he.RetryAfter))
	}
	if he.Code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="whipgate"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(he.Code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(he.Code),
		"status": he.Code,
		"detail": he.Msg,
	})
}

// CORS sets the headers browsers need to use WHIP/WHEP across origins.
func CORS(w http.ResponseWriter, origin string) {
	h := w.Header()
	if origin == "" {
		origin = "*"
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "OPTIONS, GET, HEAD, POST, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After")
}

// CheckBearer compares the request's Bearer token with want in constant
// time. An empty want means no token is needed.
func CheckBearer(r *http.Request, want string) error {
	if want == "" {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return Errorf(http.StatusUnauthorized, "this stream needs an Authorization: Bearer token")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		return Errorf(http.StatusUnauthorized, "wrong Bearer token")
	}
	return nil
}

// maxSDP bounds request bodies; real offers are a few kilobytes.
const maxSDP = 256 << 10

// ReadBody checks the Content-Type (parameters such as charset are
// tolerated) and reads a bounded body.
func ReadBody(r *http.Request, wantType string) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, wantType) {
		return nil, Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s, got %q", wantType, ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSDP+1))
	if err != nil {
		return nil, &HTTPError{Code: http.StatusBadRequest, Msg: "cannot read the request body", Err: err}
	}
	if len(body) > maxSDP {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxSDP)
	}
	return body, nil
}

// ParseOffer reads an SDP offer and says precisely what is wrong with a bad one.
func ParseOffer(body []byte) (*sdp.SessionDescription, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, Errorf(http.StatusBadRequest, "empty SDP offer")
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(body)); err != nil {
		return nil, Errorf(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, Errorf(http.StatusBadRequest, "SDP offer has no media sections")
	}
	for i, m := range d.MediaDescriptions {
		if ufrag, _ := iceAttr(&d, m, "ice-ufrag"); ufrag == "" {
			return nil, Errorf(http.StatusBadRequest, "SDP offer media section %d has no a=ice-ufrag", i)
		}
		if fp, _ := iceAttr(&d, m, "fingerprint"); fp == "" {
			return nil, Errorf(http.StatusBadRequest, "SDP offer media section %d has no a=fingerprint", i)
		}
	}
	return &d, nil
}

// iceAttr finds an attribute at media level, falling back to session level.
func iceAttr(d *sdp.SessionDescription, m *sdp.MediaDescription, key string) (string, bool) {
	if v, ok := m.Attribute(key); ok {
		return v, true
	}
	return d.Attribute(key)
}

// LinkHeaders formats one Link line per ICE server: OBS reads only the first
// of comma-joined entries.
func LinkHeaders(servers []ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			v := fmt.Sprintf(`<%s>; rel="ice-server"`, u)
			if s.Username != "" {
				v += fmt.Sprintf(`; username="%s"; credential="%s"; credential-type="password"`, s.Username, s.Credential)
			}
			out = append(out, v)
		}
	}
	return out
}
