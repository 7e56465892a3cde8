package gateway

import (
	"fmt"
	"strings"
	"testing"
)

// layers lists a stream's tracks as "name" or "name(off)" for one nobody
// publishes, in the stream's order; "gone" when the stream is not there.
func layers(hub *Hub, name string) string {
	s, ok := hub.Stream(name)
	if !ok {
		return "gone"
	}
	var out []string
	for _, t := range s.Stats().Tracks {
		if t.Live {
			out = append(out, t.Name)
		} else {
			out = append(out, t.Name+"(off)")
		}
	}
	return strings.Join(out, " ")
}

// A track no publication owns and no subscriber uses is removed from its
// stream, pinned or not, whichever of the two lets go last.
func TestTracksAreFreed(t *testing.T) {
	mainPreview := []TrackInfo{{Name: "main", Codec: H264}, {Name: "preview", Codec: H264}}
	mainOnly := []TrackInfo{{Name: "main", Codec: H264}}

	type env struct {
		t    *testing.T
		hub  *Hub
		pubs map[string]*Publication
		subs map[string]*Subscription
	}
	publish := func(e *env, id string, tracks []TrackInfo) {
		e.t.Helper()
		p, err := e.hub.Publish("cam", tracks, PublishOptions{Takeover: true})
		if err != nil {
			e.t.Fatalf("publish %s: %v", id, err)
		}
		e.pubs[id] = p
		for i := range tracks {
			src := newH264Source(p, i)
			src.writeFrame() // a keyframe: the GOP cache holds something
		}
	}
	subscribeTo := func(e *env, id, layer string) {
		e.t.Helper()
		e.subs[id] = subscribe(e.t, e.hub, "cam", layer)
	}

	for _, tc := range []struct {
		name   string
		pinned bool
		steps  []func(*env)
		want   []string // layers("cam") after each step
	}{
		{
			name:   "publisher ends",
			pinned: true,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainPreview) },
				func(e *env) { e.pubs["a"].Close() },
				func(e *env) { publish(e, "b", mainOnly) },
			},
			want: []string{"main preview", "", "main"},
		},
		{
			name:   "publisher ends, a subscriber stays",
			pinned: true,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainPreview) },
				func(e *env) { subscribeTo(e, "s", "preview") },
				func(e *env) { e.pubs["a"].Close() },
				func(e *env) { e.subs["s"].Close() },
			},
			want: []string{"main preview", "main preview", "preview(off)", ""},
		},
		{
			name:   "new publisher without an old layer",
			pinned: true,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainPreview) },
				func(e *env) { publish(e, "b", mainOnly) },
				func(e *env) { e.pubs["a"].Close() }, // late Close of the replaced one
				func(e *env) { publish(e, "c", mainPreview) },
			},
			want: []string{"main preview", "main", "main", "main preview"},
		},
		{
			name:   "new publisher without a watched layer",
			pinned: false,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainPreview) },
				func(e *env) { subscribeTo(e, "s", "preview") },
				func(e *env) { publish(e, "b", mainOnly) },
				func(e *env) { e.subs["s"].Close() },
				func(e *env) { e.pubs["b"].Close() },
			},
			want: []string{"main preview", "main preview", "main preview(off)", "main", "gone"},
		},
		{
			name:   "last subscriber of an unowned track leaves",
			pinned: true,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainOnly) },
				func(e *env) { subscribeTo(e, "s1", "main") },
				func(e *env) { subscribeTo(e, "s2", "main") },
				func(e *env) { e.pubs["a"].Close() },
				func(e *env) { e.subs["s1"].Close() },
				func(e *env) { e.subs["s2"].Close() },
			},
			want: []string{"main", "main", "main", "main(off)", "main(off)", ""},
		},
		{
			name:   "a subscriber leaves a live track",
			pinned: true,
			steps: []func(*env){
				func(e *env) { publish(e, "a", mainOnly) },
				func(e *env) { subscribeTo(e, "s", "main") },
				func(e *env) { e.subs["s"].Close() },
			},
			want: []string{"main", "main", "main"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := newTestHub(t, Config{})
			if tc.pinned {
				if _, err := hub.Pin("cam"); err != nil {
					t.Fatal(err)
				}
			}
			e := &env{t: t, hub: hub, pubs: map[string]*Publication{}, subs: map[string]*Subscription{}}
			for i, step := range tc.steps {
				step(e)
				if got := layers(hub, "cam"); got != tc.want[i] {
					t.Fatalf("after step %d: got layers %q, want %q", i+1, got, tc.want[i])
				}
			}
		})
	}
}

// A new publisher gets fresh tracks where the old ones were freed: the
// subscriber of the new publication gets its packets from its keyframe.
func TestFreedTrackComesBack(t *testing.T) {
	hub := newTestHub(t, Config{})
	if _, err := hub.Pin("cam"); err != nil {
		t.Fatal(err)
	}
	for run := range 3 {
		pub := publishH264(t, hub, "cam")
		src := newH264Source(pub, 0)
		src.writeFrame()
		sub := subscribe(t, hub, "cam", "main")
		src.writeFrame()
		if got := drain(t, sub); len(got) != 25 {
			t.Fatalf("run %d: got %d packets, want the cached keyframe's 20 and a delta's 5", run, len(got))
		}
		sub.Close()
		pub.Close()
		if got := layers(hub, "cam"); got != "" {
			t.Fatalf("run %d: got layers %q after publisher and subscriber left, want none", run, got)
		}
	}
}

// Many publishers, each with other layer names, on one pinned stream: the
// stream keeps only the live publisher's layers.
func TestPinnedStreamDoesNotGrow(t *testing.T) {
	hub := newTestHub(t, Config{})
	if _, err := hub.Pin("cam"); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		name := fmt.Sprintf("r%d", i)
		pub, err := hub.Publish("cam", []TrackInfo{{Name: name, Codec: H264}}, PublishOptions{Takeover: true})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		newH264Source(pub, 0).writeFrame()
		if got := layers(hub, "cam"); got != name {
			t.Fatalf("publisher %d: got layers %q, want %q", i, got, name)
		}
	}
}
