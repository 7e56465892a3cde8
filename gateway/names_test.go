package gateway

import (
	"errors"
	"strings"
	"testing"
)

// nameCase is a name and what a name rule says of it: "" for valid, else
// the error's whole message.
type nameCase struct{ name, want string }

func TestValidStreamName(t *testing.T) {
	checkNameRule(t, "ValidStreamName", ValidStreamName, []nameCase{
		{"cam", ""},
		{"Box-1_main.v2~x", ""},
		{strings.Repeat("a", 255), ""},
		{"", `stream name "": must be 1 to 255 characters`},
		{strings.Repeat("a", 256), `stream name "` + strings.Repeat("a", 256) + `": must be 1 to 255 characters`},
		{"a b", `stream name "a b": only letters, digits and -_.~ are allowed`},
		{"a/b", `stream name "a/b": only letters, digits and -_.~ are allowed`},
		{"..%2f", `stream name "..%2f": only letters, digits and -_.~ are allowed`},
		{"cam\n", `stream name "cam\n": only letters, digits and -_.~ are allowed`},
		{"kamera-ü", `stream name "kamera-ü": only letters, digits and -_.~ are allowed`},
		{"\xff", `stream name "\xff": only letters, digits and -_.~ are allowed`},
	})
}

func TestValidLayerName(t *testing.T) {
	checkNameRule(t, "ValidLayerName", ValidLayerName, []nameCase{
		{"main", ""},
		{"preview", ""},
		{"audio", ""},
		{"0", ""},
		{"r2", ""},
		{"hi-res_1", ""},
		{strings.Repeat("x", 16), ""},
		{"", `layer name "": must be 1 to 16 characters (RFC 8851 rid-id)`},
		{strings.Repeat("x", 17), `layer name "xxxxxxxxxxxxxxxxx": must be 1 to 16 characters (RFC 8851 rid-id)`},
		{"a.b", `layer name "a.b": only letters, digits, - and _ are allowed (RFC 8851 rid-id)`},
		{"a~b", `layer name "a~b": only letters, digits, - and _ are allowed (RFC 8851 rid-id)`},
		{"main ", `layer name "main ": only letters, digits, - and _ are allowed (RFC 8851 rid-id)`},
		{"a\x00", `layer name "a\x00": only letters, digits, - and _ are allowed (RFC 8851 rid-id)`},
		{"é", `layer name "é": only letters, digits, - and _ are allowed (RFC 8851 rid-id)`},
	})
}

// checkNameRule checks rule, called fn in messages, on every case: a valid
// name gives nil, an invalid one exactly its message, matching ErrBadName.
func checkNameRule(t *testing.T, fn string, rule func(string) error, cases []nameCase) {
	t.Helper()
	for _, tc := range cases {
		err := rule(tc.name)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s(%.20q) = %v, want nil", fn, tc.name, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s(%.20q) = %v, want %s", fn, tc.name, err, tc.want)
		}
		if !errors.Is(err, ErrBadName) {
			t.Errorf("%s(%.20q) = %v, does not match ErrBadName", fn, tc.name, err)
		}
	}
}

// The hub refuses bad names wherever a name comes in, before it registers
// anything.
func TestHubRefusesBadNames(t *testing.T) {
	hub := newTestHub(t, Config{})
	main := []TrackInfo{{Name: "main", Codec: H264}}
	for _, tc := range []struct {
		call       string
		do         func() error
		alsoTracks bool // the error matches ErrBadTracks too
	}{
		{"Publish stream", func() error { _, err := hub.Publish("a b", main, PublishOptions{}); return err }, false},
		{"Publish empty stream", func() error { _, err := hub.Publish("", main, PublishOptions{}); return err }, false},
		{"Publish track", func() error {
			_, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}, {Name: "pre view", Codec: H264}}, PublishOptions{})
			return err
		}, true},
		{"Publish unnamed track", func() error {
			_, err := hub.Publish("cam", []TrackInfo{{Codec: H264}}, PublishOptions{})
			return err
		}, true},
		{"Publish long track", func() error {
			_, err := hub.Publish("cam", []TrackInfo{{Name: strings.Repeat("r", 17), Codec: H264}}, PublishOptions{})
			return err
		}, true},
		{"Subscribe", func() error { _, err := hub.Subscribe("../cam", []string{"main"}, SubscribeOptions{}); return err }, false},
		{"Pin", func() error { _, err := hub.Pin(strings.Repeat("p", 256)); return err }, false},
	} {
		t.Run(tc.call, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("got %v, want ErrBadName", err)
			}
			if got := errors.Is(err, ErrBadTracks); got != tc.alsoTracks {
				t.Errorf("got %v: matches ErrBadTracks %v, want %v", err, got, tc.alsoTracks)
			}
			if st := hub.Streams(); len(st) != 0 {
				t.Errorf("got streams %+v after a refused call, want none", st)
			}
		})
	}
}
