package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// TestFreshJoin (issue 16): a publisher that makes a keyframe only when
// asked (PLI or FIR), as browsers do, has published for 5 s, so the GOP
// cache is that old (past hub.gop_join_max_age, 2 s, short of
// hub.gop_cache_max_age, 10 s). Every frame carries its number.
//   - answering requests: a viewer joining then starts on a keyframe the
//     publisher made on a request after the join, within 1 s of its POST,
//     a picture under 1 s old, not the cached 5 s old one;
//   - ignoring requests (OBS, ffmpeg): the viewer starts on the cached
//     keyframe after all, rather than on nothing.
func TestFreshJoin(t *testing.T) {
	for _, answers := range []bool{true, false} {
		t.Run(map[bool]string{true: "publisher answers requests", false: "publisher ignores requests"}[answers], func(t *testing.T) {
			app := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
			pub := publish(t, app.URL()+"/whip/cam", publishOptions{video: h264Video})
			src := &onRequestSource{pub: pub, answers: answers}
			keepPlaying(t, pacedSource{stream: newSendStream(pub.video[0], &codecs.H264Payloader{}),
				interval: time.Second / 30, ticks: 3000, next: src.next})
			certstest.Eventually(t, 20*time.Second, "5 s of video published", func() bool { return src.count() >= 150 })
			if age := src.keyAge(); age < 2*time.Second {
				t.Fatalf("the newest keyframe is %v old at the join: the cache is not stale, so this tests nothing", age)
			}
			if st, ok := app.Hub().Stream("cam"); !ok || st.Stats().Tracks[0].GOPCachePackets == 0 {
				t.Fatal("no GOP cache to join on")
			}

			plis := pub.pli[0].Load()
			v := watch(t, app.URL()+"/whep/cam")
			var first accessUnit
			certstest.Eventually(t, 10*time.Second, "the viewer's first frame", func() bool {
				f := v.frames()
				if len(f) > 0 {
					first = f[0]
				}
				return len(f) > 0
			})
			n := frameNumber(t, first)
			made, wasKey := src.frame(n)
			after, age := first.arrived.Sub(v.posted), first.arrived.Sub(made)
			fmt.Fprintf(t.Output(), "first frame %d (keyframe %v) arrived %v after the POST, %v after it was sent\n", n, wasKey, after, age)
			if !first.key || !wasKey {
				t.Fatalf("the viewer started on frame %d, not a keyframe", n)
			}
			if !answers {
				if n != 0 {
					t.Fatalf("started on frame %d; the only keyframe is the cached frame 0", n)
				}
				return
			}
			if pub.pli[0].Load() == plis {
				t.Fatal("the publisher got no keyframe request after the join")
			}
			if made.Before(v.posted) {
				t.Fatalf("the viewer started on keyframe %d, made %v before its POST: a cached one", n, v.posted.Sub(made))
			}
			if after > time.Second || age > time.Second {
				t.Fatalf("the first keyframe arrived %v after the POST, a picture %v old; want both within 1 s", after, age)
			}
		})
	}
}

// onRequestSource is a publisher's encoder that makes a keyframe first
// and then only when asked, if it answers requests at all; each frame
// carries its number (frameNumber reads it back).
type onRequestSource struct {
	pub     *publisher
	answers bool

	mu   sync.Mutex
	sent []time.Time // when frame n went out
	keys []int       // the keyframes' numbers
}

func (s *onRequestSource) next() ([]byte, bool) {
	asked := s.pub.wantKey[0].Swap(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.sent)
	key := n == 0 || asked && s.answers
	header, size := byte(0x41), 2_000 // a P slice
	if key {
		header, size = 0x65, 20_000 // an IDR slice
		s.keys = append(s.keys, n)
	}
	s.sent = append(s.sent, time.Now())
	b := fakeNAL(header, size)
	copy(b[1:], fmt.Sprintf("frame %08d;", n))
	return b, true
}

func (s *onRequestSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// keyAge is how long ago the newest keyframe went out.
func (s *onRequestSource) keyAge() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.sent[s.keys[len(s.keys)-1]])
}

// frame says when frame n went out and whether it was a keyframe.
func (s *onRequestSource) frame(n int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n >= len(s.sent) {
		return time.Time{}, false
	}
	for _, k := range s.keys {
		if k == n {
			return s.sent[n], true
		}
	}
	return s.sent[n], false
}

var frameNumberRE = regexp.MustCompile(`frame (\d{8});`)

// frameNumber reads the number onRequestSource put in a frame.
func frameNumber(t testing.TB, au accessUnit) int {
	t.Helper()
	m := frameNumberRE.FindSubmatch(au.data)
	if m == nil {
		t.Fatalf("a frame of %d bytes carries no number", len(au.data))
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
