package client

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"whipgate/whip/rtc"
)

// The golden files hold the header lines, a separator line and what
// ParseLinkHeader and LinkICEServers make of them. Refresh with
// go test ./whip -run TestParseLinkHeaderGolden -update-link.
var linkUpdateGolden = flag.Bool("update-link", false, "rewrite whip/testdata/link/*.txt with the current output")

const linkGoldenSep = "----------"

func TestParseLinkHeaderGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/link/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in testdata/link (err %v)", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			input, want, _ := strings.Cut(string(raw), linkGoldenSep+"\n")
			lines := strings.Split(strings.TrimSuffix(input, "\n"), "\n")
			got := linkGoldenRender(t, lines)
			if *linkUpdateGolden {
				if err := os.WriteFile(path, []byte(input+linkGoldenSep+"\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
			}
		})
	}
}

func linkGoldenRender(t *testing.T, lines []string) string {
	t.Helper()
	links := ParseLinkHeader(lines)
	servers, skipped := LinkICEServers(links)
	reasons := make([]string, len(skipped))
	for i, e := range skipped {
		reasons[i] = e.Error()
	}
	out, err := json.MarshalIndent(struct {
		Links   []LinkEntry     `json:"links"`
		Servers []rtc.ICEServer `json:"servers"`
		Skipped []string        `json:"skipped"`
	}{links, servers, reasons}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

func TestLinkICEServersPlainCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
		want   []string // URLs, in order
	}{
		{"empty", nil, nil},
		{"one", []string{`<stun:a.example:3478>; rel="ice-server"`}, []string{"stun:a.example:3478"}},
		{"two lines", []string{`<stun:a.example>; rel="ice-server"`, `<stun:b.example>; rel="ice-server"`}, []string{"stun:a.example", "stun:b.example"}},
		{"joined", []string{`<stun:a.example>; rel="ice-server", <stun:b.example>; rel="ice-server"`}, []string{"stun:a.example", "stun:b.example"}},
		{"quoted comma in credential", []string{`<turn:t.example>; rel="ice-server"; username="u"; credential="a,b", <stun:c.example>; rel="ice-server"`}, []string{"turn:t.example", "stun:c.example"}},
		{"other rel", []string{`<stun:a.example>; rel="next"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers, _ := LinkICEServers(ParseLinkHeader(tc.header))
			var got []string
			for _, s := range servers {
				got = append(got, s.URLs...)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
