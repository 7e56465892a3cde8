package client

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc"
	"whipgate/whip/sdpfrag"
	"whipgate/whip/session"
)

// linkSeeds are the header lines of the golden files (testdata/link):
// what WHIP servers send, one string per response, lines joined by "\n".
func linkSeeds(f *testing.F) []string {
	f.Helper()
	files, err := filepath.Glob("testdata/link/*.txt")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files in testdata/link (err %v)", err)
	}
	var out []string
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		input, _, _ := strings.Cut(string(raw), linkGoldenSep+"\n")
		out = append(out, strings.TrimSuffix(input, "\n"))
	}
	return out
}

// FuzzParseLinkHeader checks the lenient Link parser and the choice of ICE
// servers. Every link has a URI and lower-case parameter names; a link
// rendered in the canonical form (<uri>; name="value" with \ escapes)
// parses back to itself; every ICE server LinkICEServers keeps is one pion
// accepts (one that it would refuse fails the whole configuration), and
// every link it leaves out has a reason.
func FuzzParseLinkHeader(f *testing.F) {
	for _, s := range linkSeeds(f) {
		f.Add(s)
	}
	api := webrtc.NewAPI()
	f.Fuzz(func(t *testing.T, header string) {
		links := ParseLinkHeader(strings.Split(header, "\n"))
		for _, l := range links {
			if l.URI == "" {
				t.Fatalf("link without a URI: %+v", l)
			}
			for name := range l.Params {
				if name == "" || name != strings.ToLower(name) || name != strings.TrimSpace(name) {
					t.Fatalf("parameter name %q", name)
				}
			}
			if !linkCanonical(l) {
				continue
			}
			text := linkRender(l)
			if again := ParseLinkHeader([]string{text}); len(again) != 1 || !reflect.DeepEqual(again[0], l) {
				t.Fatalf("%+v rendered as %q parses as %+v", l, text, again)
			}
		}
		servers, skipped := LinkICEServers(links)
		if len(servers)+len(skipped) > len(links) {
			t.Fatalf("%d servers and %d skipped of %d links", len(servers), len(skipped), len(links))
		}
		for _, err := range skipped {
			if !errors.Is(err, errLinkSkipped) {
				t.Fatalf("skip reason %v does not wrap errLinkSkipped", err)
			}
		}
		for _, s := range servers {
			if len(s.URLs) != 1 {
				t.Fatalf("server %+v", s)
			}
			if _, err := api.NewICEGatherer(webrtc.ICEGatherOptions{ICEServers: rtc.PionICEServers([]rtc.ICEServer{s})}); err != nil {
				t.Fatalf("LinkICEServers kept %+v, which pion refuses: %v", s, err)
			}
		}
	})
}

// linkCanonical reports whether l can be written in the canonical form:
// a URI without <, >, " or \ (RFC 3986 has none of them) and parameter
// names that are tokens.
func linkCanonical(l LinkEntry) bool {
	if strings.ContainsAny(l.URI, "<>\"\\") || l.URI != strings.TrimSpace(l.URI) {
		return false
	}
	for name := range l.Params {
		if strings.ContainsAny(name, "<>\"\\,;=: \t") {
			return false
		}
	}
	return true
}

func linkRender(l LinkEntry) string {
	var b strings.Builder
	b.WriteString("<" + l.URI + ">")
	names := make([]string, 0, len(l.Params))
	for name := range l.Params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(l.Params[name])
		b.WriteString("; " + name + `="` + v + `"`)
	}
	return b.String()
}

// FuzzLinkHeadersRoundTrip checks that what the server writes the client
// reads: the Link headers session.LinkHeaders makes of an ICE server give
// that server back through ParseLinkHeader and LinkICEServers, whatever
// its username and credential hold.
func FuzzLinkHeadersRoundTrip(f *testing.F) {
	f.Add("stun:stun.l.google.com:19302", "", "")
	f.Add("turn:turn.example.net:3478?transport=udp", "1700000000:alice", "dGhpcyBpcyBub3QgYSBzZWNyZXQ=")
	f.Add("turns:turn.example.net:443?transport=tcp", "user", "pass")
	api := webrtc.NewAPI()
	f.Fuzz(func(t *testing.T, url, username, credential string) {
		if _, err := api.NewICEGatherer(webrtc.ICEGatherOptions{ICEServers: []webrtc.ICEServer{{URLs: []string{url}, Username: username, Credential: credential}}}); err != nil {
			return // not a server whipgate could be configured with
		}
		if strings.ContainsAny(url, "<>\"\\,;") || url != strings.ToLower(url) || url != strings.TrimSpace(url) {
			return // not in RFC 3986's alphabet, or not as the client writes it back
		}
		if username == "" {
			credential = "" // LinkHeaders writes no credential without a username
		}
		if strings.HasPrefix(url, "turn") && (username == "" || credential == "") {
			return // whipgate's configs want both for TURN, though pion takes ""
		}
		want := rtc.ICEServer{URLs: []string{url}, Username: username, Credential: credential}
		header := session.LinkHeaders([]webrtc.ICEServer{{URLs: want.URLs, Username: username, Credential: credential}})
		servers, skipped := LinkICEServers(ParseLinkHeader(header))
		if len(servers) != 1 || !reflect.DeepEqual(servers[0], want) {
			t.Fatalf("%+v written as %q read back as %+v (skipped %v)", want, header, servers, skipped)
		}
	})
}

// FuzzClientCheckAnswer checks clientCheckAnswer on any offer and answer,
// and on an answer that mirrors the offer (every section accepted, every
// rid received): that one passes, and without one of its rids it fails
// naming the rid.
func FuzzClientCheckAnswer(f *testing.F) {
	offer := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 H264/90000\r\n" +
		"a=rid:0 send\r\na=rid:1 send\r\na=rid:2 send\r\na=simulcast:send 0;1;2\r\n"
	f.Add(offer, clientMirror(offer))
	f.Add(offer, strings.Replace(clientMirror(offer), "m=video 9", "m=video 0", 1))
	f.Add(offer, strings.Replace(clientMirror(offer), "recv 0;1;2", "recv 0;~1", 1))
	sora := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=rid:r0 send\r\na=rid:r1 send\r\na=simulcast:send r0;r1\r\n"
	f.Add(sora, strings.Replace(clientMirror(sora), "a=simulcast:recv r0;r1\r\n", "", 1))
	f.Fuzz(func(t *testing.T, offer, answer string) {
		_ = clientCheckAnswer(offer, answer)

		var o sdp.SessionDescription
		if o.UnmarshalString(offer) != nil {
			return
		}
		for _, m := range o.MediaDescriptions {
			if _, inactive := m.Attribute("inactive"); inactive || m.MediaName.Port.Value == 0 {
				return // not an offer the client makes
			}
			if _, ok := m.Attribute("simulcast"); ok && !slices.Equal(clientSimulcastRIDs(m, "send"), clientRIDs(m, "send")) {
				return // nor is one whose simulcast line and rids differ
			}
		}
		mirror := clientMirror(offer)
		var a sdp.SessionDescription
		if a.UnmarshalString(mirror) != nil {
			return
		}
		if err := clientCheckAnswer(offer, mirror); err != nil {
			t.Fatalf("the mirror of the offer is refused: %v\noffer %q\nanswer %q", err, offer, mirror)
		}
		for i, om := range o.MediaDescriptions {
			rids := clientRIDs(om, "send")
			if len(rids) == 0 || slices.Contains(rids, "") {
				continue
			}
			drop := rids[len(rids)-1]
			if slices.Contains(rids[:len(rids)-1], drop) {
				continue
			}
			am := a.MediaDescriptions[i]
			am.Attributes = slices.DeleteFunc(slices.Clone(am.Attributes), func(x sdp.Attribute) bool {
				return x.Key == "simulcast" || x.Key == "rid" && strings.Fields(x.Value)[0] == drop
			})
			out, err := a.Marshal()
			if err != nil {
				return
			}
			err = clientCheckAnswer(offer, string(out))
			if err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), strconv.Quote(drop)) {
				t.Fatalf("an answer without rid %q: got %v, want a protocol error naming it", drop, err)
			}
			return
		}
	})
}

// clientMirror answers an offer by accepting all of it: each section
// recvonly, its rids and simulcast line turned from send to recv.
func clientMirror(offer string) string {
	var d sdp.SessionDescription
	if d.UnmarshalString(offer) != nil {
		return ""
	}
	for _, m := range d.MediaDescriptions {
		for i, a := range m.Attributes {
			switch a.Key {
			case "sendonly":
				m.Attributes[i].Key = "recvonly"
			case "rid":
				if f := strings.Fields(a.Value); len(f) >= 2 && f[1] == "send" {
					f[1] = "recv"
					m.Attributes[i].Value = strings.Join(f, " ")
				}
			case "simulcast":
				f := strings.Fields(a.Value)
				for j := 0; j < len(f); j += 2 {
					if f[j] == "send" {
						f[j] = "recv"
					} else if f[j] == "recv" {
						f[j] = "send"
					}
				}
				m.Attributes[i].Value = strings.Join(f, " ")
			}
		}
	}
	out, err := d.Marshal()
	if err != nil {
		return ""
	}
	return string(out)
}

// FuzzParseRestartAnswer checks the client's reading of a server's reply
// to an ICE restart and its use: a reply it accepts has both credentials,
// and applyRestart puts them and its candidates in the answer it restarts.
func FuzzParseRestartAnswer(f *testing.F) {
	answer := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=ice-lite\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:old\r\na=ice-pwd:oldoldoldoldoldoldoldold\r\n" +
		"a=candidate:1 1 udp 2130706431 192.0.2.1 8189 typ host\r\na=end-of-candidates\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n"
	f.Add("a=ice-ufrag:NeW1\r\na=ice-pwd:PwdPwdPwdPwdPwdPwdPwdPwd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"+
		"a=candidate:2 1 udp 2130706431 192.0.2.1 8189 typ host\r\na=end-of-candidates\r\n", answer)
	f.Add("a=ice-ufrag:u\r\na=ice-pwd:p\r\na=ice-lite\r\nx-vendor: yes\r\n", answer)
	f.Add("a=ice-ufrag:u\r\n", answer)
	f.Fuzz(func(t *testing.T, body, answer string) {
		frag, err := parseRestartAnswer(body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if frag.Ufrag == "" || frag.Pwd == "" {
			t.Fatalf("accepted without credentials: %+v", frag)
		}
		restarted, err := applyRestart(answer, frag)
		if err != nil {
			return
		}
		got, err := sdpfrag.FromDescription(restarted)
		if err != nil {
			return // the answer has no media section
		}
		values := func(cs []sdpfrag.Candidate) []string {
			var out []string
			for _, c := range cs {
				out = append(out, c.Value)
			}
			return out
		}
		if got.Ufrag != frag.Ufrag || got.Pwd != frag.Pwd || !slices.Equal(values(got.Candidates), values(frag.Candidates)) {
			t.Fatalf("restarted answer has %+v, want the credentials and candidates of %+v\n%q", got, frag, restarted)
		}
	})
}

// FuzzClientParseRetryAfter checks that a Retry-After value, seconds or an
// HTTP date, gives a wait between 0 and the hour cap, and exactly the
// seconds given (capped) when it is a number.
func FuzzClientParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{"", "5", "-3", "junk", "999999", "3600", "120 ", now.Add(90 * time.Second).Format(http.TimeFormat),
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"} {
		f.Add(s, now.Unix())
	}
	f.Fuzz(func(t *testing.T, v string, unix int64) {
		now := time.Unix(unix, 0)
		got := clientParseRetryAfter(v, now)
		if got < 0 || got > time.Hour {
			t.Fatalf("Retry-After %q: %v, want 0 to 1h", v, got)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return
		}
		want := time.Duration(min(max(n, 0), int64(time.Hour/time.Second))) * time.Second
		if got != want {
			t.Fatalf("Retry-After %q: %v, want %v", v, got, want)
		}
	})
}
