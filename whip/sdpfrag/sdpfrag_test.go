package sdpfrag

import (
	"strings"
	"testing"
)

// A control character inside a line is refused by both parsers: written
// into an SDP again it would end or break the line (a lone CR in
// a=ice-pwd gave a restarted answer with an empty password).
func TestParseRefusesControlCharacters(t *testing.T) {
	for _, body := range []string{
		"a=ice-ufrag:abcd\r\na=ice-pwd:\r0123456789012345678901\r\n",
		"a=ice-ufrag:ab\x00cd\r\na=ice-pwd:0123456789012345678901\r\n",
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=candidate:1 1 udp 1 192.0.2.1 9 typ host\x7f\r\n",
	} {
		for name, parse := range map[string]func(string) (Frag, error){"Parse": Parse, "ParseLenient": ParseLenient} {
			if _, err := parse(body); err == nil || !strings.Contains(err.Error(), "control character") {
				t.Errorf("%s(%q) = %v, want a control character refused", name, body, err)
			}
		}
	}
	if f, err := Parse("a=ice-ufrag:abcd\r\n\ta=ice-pwd:0123456789012345678901 \t\r\n"); err != nil || f.Pwd != "0123456789012345678901" {
		t.Errorf("white space at a line's ends: %+v, %v", f, err)
	}
}
