// Package problem is the one error format of every HTTP surface of
// whipgate: RFC 9457 problem documents (application/problem+json), with the
// message a client sees kept apart from the cause that goes to the log.
//
// It is a leaf: it imports nothing of whipgate and nothing of pion, so the
// WHIP and WHEP endpoints, the session resource and the control API can all
// use it.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error is an error with the status and message a client sees; Err, if
// set, is the cause that goes to the log only.
type Error struct {
	Code       int
	Msg        string
	Err        error
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted client message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// StatusClientClosed is nginx's "client closed request": it names, in the
// access log, a request whose client left before its answer.
const StatusClientClosed = 499

// ClientLeft is the error of a request whose client (who) hung up before
// its answer; nobody reads it, the access log does.
func ClientLeft(who string, err error) *Error {
	return &Error{Code: StatusClientClosed, Msg: "the " + who + " left before the answer", Err: err}
}

// Write answers with an RFC 9457 problem document, so every error says
// what was wrong in a form both people and programs read. An error that is
// not an *Error is a 500 whose cause is not shown.
func Write(w http.ResponseWriter, err error) {
	he, ok := errors.AsType[*Error](err)
	if !ok {
		he = &Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	if he.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(he.RetryAfter))
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
