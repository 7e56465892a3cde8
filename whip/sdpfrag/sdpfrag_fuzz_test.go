package sdpfrag

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// Fragments as clients send them: a trickled candidate (Chrome, OBS), the
// end of gathering, an ICE restart (credentials, RFC 8840 §4.4), and a
// fragment with several sections as the RFC's examples have.
var fragSeeds = []string{
	"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n",
	"a=ice-ufrag:nxcM\r\na=ice-pwd:ezjAjgSSLLvbRhUA1zc6Se\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n",
	"a=ice-ufrag:ysXw\r\na=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k\r\na=ice-options:trickle,ice2\r\n",
	"a=group:BUNDLE 1\r\nm=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n" +
		"a=candidate:1 1 UDP 2130706431 198.51.100.1 39132 typ host\r\n" +
		"m=video 9 RTP/AVP 96\r\na=mid:2\r\na=candidate:2 1 UDP 1694498815 203.0.113.7 40048 typ srflx raddr 0.0.0.0 rport 0\r\n",
	"a=candidate:3 1 tcp 1518280447 192.0.2.5 9 typ host tcptype active\na=end-of-candidates\n",
	"a=ice-ufrag:a\r\n",
	"x=unknown\r\n",
}

// FuzzParse checks the RFC 8840 reader: Parse (client fragments) and
// ParseLenient (server answers). Whatever Parse accepts ParseLenient reads
// the same; credentials come both or not at all; a parsed fragment
// rendered with String and parsed again has the same credentials, options,
// candidates (values, in order) and end marker; and rendering it again
// gives the same text.
func FuzzParse(f *testing.F) {
	for _, s := range fragSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		strict, err := Parse(body)
		lenient, lerr := ParseLenient(body)
		if err == nil {
			if lerr != nil || !reflect.DeepEqual(strict, lenient) {
				t.Fatalf("Parse read %+v, ParseLenient %+v, %v", strict, lenient, lerr)
			}
		}
		if lerr != nil {
			return
		}
		if (lenient.Ufrag == "") != (lenient.Pwd == "") {
			t.Fatalf("credentials accepted half: ufrag %q pwd %q", lenient.Ufrag, lenient.Pwd)
		}
		for _, c := range lenient.Candidates {
			if !strings.HasPrefix(c.Value, "candidate:") || c.MLine < 0 {
				t.Fatalf("candidate %+v", c)
			}
		}
		text := lenient.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(String()) = %v\n%q", err, text)
		}
		checkSame(t, lenient, again)
		if again.String() != text {
			t.Fatalf("String is not stable:\n%q\n%q", text, again.String())
		}
	})
}

// FuzzFromDescription checks FromDescription, which the WHIP client uses on
// its own offer: its fragment of a description with credentials renders to
// a body that Parse reads back the same, candidates with the section's mid;
// and Apply of that fragment to the description gives it back.
func FuzzFromDescription(f *testing.F) {
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"a=ice-ufrag:QpRm\r\na=ice-pwd:IjKlMnOpQrStUvWxYzAbCdEf\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-options:trickle\r\n" +
		"a=candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host\r\na=end-of-candidates\r\na=rtpmap:96 VP8/90000\r\n")
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a\r\na=ice-ufrag:x\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=candidate:2 1 udp 1 192.0.2.2 9 typ host\r\n")
	for _, s := range fragSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		frag, err := FromDescription(raw)
		if err != nil {
			return
		}
		for _, c := range frag.Candidates {
			if c.Mid != frag.Mid || c.MLine != 0 {
				t.Fatalf("candidate %+v of section mid %q", c, frag.Mid)
			}
		}
		if frag.Ufrag == "" || frag.Pwd == "" || !clean(frag) {
			return // not a fragment anyone renders: no credentials, or values with spaces at an end
		}
		again, err := Parse(frag.String())
		if err != nil {
			t.Fatalf("Parse(String()) = %v\n%q", err, frag.String())
		}
		checkSame(t, frag, again)
		for i, c := range again.Candidates {
			if c != frag.Candidates[i] {
				t.Fatalf("candidate %d: rendered %+v, read back %+v", i, frag.Candidates[i], c)
			}
		}

		var d sdp.SessionDescription
		if err := d.UnmarshalString(raw); err != nil {
			t.Fatal(err)
		}
		Apply(&d, frag)
		out, err := d.Marshal()
		if err != nil {
			return
		}
		back, err := FromDescription(string(out))
		if err != nil {
			t.Fatalf("FromDescription after Apply: %v\n%q", err, out)
		}
		if back.Ufrag != frag.Ufrag || back.Pwd != frag.Pwd || !reflect.DeepEqual(back.Candidates, frag.Candidates) {
			t.Fatalf("Apply then FromDescription gave %+v, want %+v", back, frag)
		}
	})
}

// checkSame fails unless b has a's credentials, options, candidate values
// and end marker.
func checkSame(t *testing.T, a, b Frag) {
	t.Helper()
	if a.Ufrag != b.Ufrag || a.Pwd != b.Pwd || a.ICEOptions != b.ICEOptions || a.End != b.End {
		t.Fatalf("read back %+v, want %+v", b, a)
	}
	if len(a.Candidates) != len(b.Candidates) {
		t.Fatalf("read back %d candidates, want %d", len(b.Candidates), len(a.Candidates))
	}
	for i := range a.Candidates {
		if a.Candidates[i].Value != b.Candidates[i].Value {
			t.Fatalf("candidate %d: read back %q, want %q", i, b.Candidates[i].Value, a.Candidates[i].Value)
		}
	}
}

// clean reports whether f's values are what Parse could have read: no
// space at either end, no line break.
func clean(f Frag) bool {
	vals := []string{f.Ufrag, f.Pwd, f.ICEOptions, f.Mid}
	for _, c := range f.Candidates {
		vals = append(vals, c.Value)
	}
	for _, v := range vals {
		if v != strings.TrimSpace(v) || strings.ContainsAny(v, "\r\n") {
			return false
		}
	}
	return true
}
