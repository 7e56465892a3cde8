package session

import (
	"crypto/subtle"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/problem"
	"whipgate/whip/sdpfrag"
)

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
// time; the scheme is case-insensitive (RFC 9110 §11.1). An empty want
// means no token is needed. A wrong token costs the caller a short random
// wait, so that guessing is slow and its timing tells nothing.
func CheckBearer(r *http.Request, want string) error {
	if want == "" {
		return nil
	}
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return problem.Errorf(http.StatusUnauthorized, "this resource needs an Authorization: Bearer token")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		time.Sleep(failedTokenWait + rand.N(failedTokenWait))
		return problem.Errorf(http.StatusUnauthorized, "wrong Bearer token")
	}
	return nil
}

// failedTokenWait is the least a wrong token waits (up to twice that).
const failedTokenWait = 50 * time.Millisecond

// ReadBody checks the Content-Type (parameters such as charset are
// tolerated) and reads a body of at most MaxSDPBytes.
func (l Limits) ReadBody(r *http.Request, wantType string) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, wantType) {
		return nil, problem.Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s, got %q", wantType, ct)
	}
	max := l.MaxSDPBytes
	if r.ContentLength > int64(max) {
		return nil, problem.Errorf(http.StatusRequestEntityTooLarge, "body of %d bytes, larger than %d (limits.max_sdp_bytes)", r.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, &problem.Error{Code: http.StatusBadRequest, Msg: "cannot read the request body", Err: err}
	}
	if len(body) > max {
		return nil, problem.Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes (limits.max_sdp_bytes)", max)
	}
	return body, nil
}

// ParseOffer reads an SDP offer within the limits and says precisely what
// is wrong with a bad one.
func (l Limits) ParseOffer(body []byte) (*sdp.SessionDescription, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, problem.Errorf(http.StatusBadRequest, "empty SDP offer")
	}
	if err := l.checkShape(body); err != nil {
		return nil, err
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(body)); err != nil {
		return nil, problem.Errorf(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, problem.Errorf(http.StatusBadRequest, "SDP offer has no media sections")
	}
	for i, m := range d.MediaDescriptions {
		if sdpfrag.Attribute(&d, m, "ice-ufrag") == "" {
			return nil, problem.Errorf(http.StatusBadRequest, "SDP offer media section %d has no a=ice-ufrag", i)
		}
		if sdpfrag.Attribute(&d, m, "fingerprint") == "" {
			return nil, problem.Errorf(http.StatusBadRequest, "SDP offer media section %d has no a=fingerprint", i)
		}
	}
	return &d, nil
}

// LinkHeaders formats one Link line per ICE server: OBS reads only the first
// of comma-joined entries.
func LinkHeaders(servers []webrtc.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			v := fmt.Sprintf(`<%s>; rel="ice-server"`, u)
			if s.Username != "" {
				v += fmt.Sprintf(`; username=%s; credential=%s; credential-type="password"`, quote(s.Username), quote(fmt.Sprint(s.Credential)))
			}
			out = append(out, v)
		}
	}
	return out
}

// quote renders s as an RFC 9110 quoted-string: a credential may hold
// " or \, which unescaped would end the value early.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
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
