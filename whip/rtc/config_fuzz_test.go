package rtc

import (
	"testing"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// FuzzParseICEURL checks the guard in front of pion's STUN/TURN URL parser:
// it returns on every input (pion's own recursion never ends on some), and
// a URL it accepts is one pion takes in a configuration, with the scheme
// it reported. Seeds are the forms of RFC 7064 and RFC 7065 that configs
// and Link headers carry.
func FuzzParseICEURL(f *testing.F) {
	for _, s := range []string{
		"stun:stun.l.google.com:19302", "stun:192.0.2.1", "stuns:stun.example.net:5349",
		"turn:turn.example.net:3478?transport=udp", "turn:[2001:db8::1]:3478", "turns:turn.example.net?transport=tcp",
		"turn:turn.example.net", "STUN:Stun.Example.Net", "stun:", "http://x",
	} {
		f.Add(s)
	}
	api := webrtc.NewAPI()
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseICEURL(raw)
		if err != nil {
			return
		}
		s := webrtc.ICEServer{URLs: []string{raw}}
		if u.Scheme == stun.SchemeTypeTURN || u.Scheme == stun.SchemeTypeTURNS {
			s.Username, s.Credential = "u", "p"
		}
		if _, err := api.NewICEGatherer(webrtc.ICEGatherOptions{ICEServers: []webrtc.ICEServer{s}}); err != nil {
			t.Fatalf("ParseICEURL took %q (%v), pion refuses it: %v", raw, u.Scheme, err)
		}
	})
}
