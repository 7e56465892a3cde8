package egress

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRegistryLoad puts random bytes in the egress state file and reads
// it as Start does: load, then Validate for each egress (as Add does).
// Neither may panic. The egresses that Validate passes (one per id, as
// Add keeps them) are written back with Save: the file is its owner's
// only, it loads again to egresses that all pass Validate under the same
// ids, and saving what it loads gives the same bytes. Seeds are state
// files as Save writes them, and a hand-edited one.
func FuzzRegistryLoad(f *testing.F) {
	f.Add([]byte(`{
  "egress": [
    {
      "id": "sora",
      "stream": "box",
      "url": "https://sora.example.com/whip/my-channel",
      "token": "access-token",
      "layers": [
        "main",
        "preview"
      ],
      "mode": "simulcast",
      "rid_style": "sora",
      "pacing_factor": 3
    },
    {
      "id": "relay",
      "stream": "test",
      "url": "http://127.0.0.1:8081/whip/relay-{layer}",
      "ice_servers": [
        {
          "urls": [
            "turn:turn.example.net:3478?transport=udp"
          ],
          "username": "1700000000:box",
          "credential": "c2VjcmV0"
        }
      ],
      "relay_only": true
    }
  ]
}
`))
	f.Add([]byte(`{"egress":[{"stream":"cam","url":"https://mediamtx.local:8889/cam/whip"},{"stream":"cam","url":"https://x/whip"}]}`))
	f.Add([]byte(`{"egress":null}`))
	f.Add([]byte(""))
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state", "egress.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		g := NewRegistry(nil, nil, path, 32, log)
		saved, err := g.load()
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("load error %q does not name the file", err)
			}
			return
		}
		// What Start keeps: what passes Validate, under its id, the first
		// of each id.
		for _, c := range saved {
			if c.Validate() != nil {
				continue
			}
			c.ID = c.EffectiveID()
			if _, dup := g.m[c.ID]; !dup {
				g.m[c.ID] = &entry{cfg: c, persist: true}
			}
		}
		if err := g.Save(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("state file mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		first, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		back, err := g.load()
		if err != nil {
			t.Fatalf("a state file Save wrote does not load: %v\n%s", err, first)
		}
		if len(back) != len(g.m) {
			t.Fatalf("saved %d egresses, loaded %d", len(g.m), len(back))
		}
		g2 := NewRegistry(nil, nil, path, 32, log)
		for _, c := range back {
			if err := c.Validate(); err != nil {
				t.Fatalf("egress %q passed Validate before it was saved, not after: %v", c.ID, err)
			}
			if _, ok := g.m[c.ID]; !ok || c.ID != c.EffectiveID() {
				t.Fatalf("loaded egress id %q, saved ids %v", c.ID, g.m)
			}
			g2.m[c.ID] = &entry{cfg: c, persist: true}
		}
		if err := g2.Save(); err != nil {
			t.Fatal(err)
		}
		if second, err := os.ReadFile(path); err != nil || !bytes.Equal(first, second) {
			t.Fatalf("saving what was loaded changed the file:\n%s\n%s", first, second)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Fatalf("%d files beside the state file, want none (temporary files left)", len(entries)-1)
		}
	})
}
