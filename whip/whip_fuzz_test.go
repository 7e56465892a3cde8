package whip

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"whipgate/gateway"
	"whipgate/whip/session"
)

// FuzzShapeOffer feeds offers through session.ParseOffer into shapeOffer,
// as a POST to /whip does. The seeds are offers of the publishers whipgate
// serves (testdata/offers). An offer shapeOffer accepts must be one the
// hub takes: the track names it leads to are unique and not empty. What it
// lists must come from the offer: payload types of the m= line, codecs of
// the section's kind, RTX that names its codec; and it lists the same on
// every call.
func FuzzShapeOffer(f *testing.F) {
	files, err := filepath.Glob("testdata/offers/*.sdp")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed offers in testdata/offers (err %v)", err)
	}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	hub := gateway.NewHub(gateway.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Cleanup(hub.Close)
	var limits session.Limits
	limits.ApplyDefaults()
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := limits.ParseOffer(raw)
		if err != nil {
			return
		}
		sections, err := shapeOffer(d)
		again, err2 := shapeOffer(d)
		if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(sections, again) {
			t.Fatalf("shapeOffer differs between two calls:\n%+v, %v\n%+v, %v", sections, err, again, err2)
		}
		if err != nil {
			return
		}
		if len(sections) == 0 {
			t.Fatal("no error and no sections")
		}
		kinds := map[gateway.Kind]int{}
		var tracks []gateway.TrackInfo
		for i, sec := range sections {
			if i > 0 && sec.index <= sections[i-1].index {
				t.Fatalf("section indexes out of order: %d after %d", sec.index, sections[i-1].index)
			}
			kinds[sec.kind]++
			m := d.MediaDescriptions[sec.index]
			if m.MediaName.Media != sec.kind.String() {
				t.Fatalf("section %d is %s, listed as %s", sec.index, m.MediaName.Media, sec.kind)
			}
			if len(sec.codecs) == 0 {
				t.Fatalf("section %d accepted without a codec", sec.index)
			}
			for _, c := range sec.codecs {
				checkOfferedCodec(t, m.MediaName.Formats, sec.kind, c)
			}
			if sec.kind == gateway.KindVideo && len(sec.rids) > 0 {
				for _, rid := range sec.rids {
					tracks = append(tracks, gateway.TrackInfo{Name: rid, Codec: sec.codecs[0].codec})
				}
				continue
			}
			// The names chooseCodecs gives the hub's tracks.
			name := "main"
			if sec.kind == gateway.KindAudio {
				name = "audio"
			}
			tracks = append(tracks, gateway.TrackInfo{Name: name, Codec: sec.codecs[0].codec})
		}
		if kinds[gateway.KindAudio] > 1 || kinds[gateway.KindVideo] > 1 {
			t.Fatalf("accepted %d audio and %d video sections", kinds[gateway.KindAudio], kinds[gateway.KindVideo])
		}
		pub, err := hub.Publish("fuzz", tracks, gateway.PublishOptions{Kind: "whip"})
		if err != nil {
			t.Fatalf("shapeOffer accepted an offer the hub refuses (a 500, not a 400): %v", err)
		}
		pub.Close()
	})
}

// checkOfferedCodec checks that c is one of formats, of kind, and that its
// RTX (if any) is one of formats too and repairs c.
func checkOfferedCodec(t *testing.T, formats []string, kind gateway.Kind, c offeredCodec) {
	t.Helper()
	pt := strconv.Itoa(int(c.params.PayloadType))
	if !slices.Contains(formats, pt) || c.params.PayloadType > 127 {
		t.Fatalf("codec %s has payload type %d, not one of the m= line's %q", c.codec, c.params.PayloadType, formats)
	}
	if c.codec.Kind() != kind {
		t.Fatalf("codec %s in a %s section", c.codec, kind)
	}
	if got, err := gateway.ParseCodec(c.params.MimeType); err != nil || got != c.codec {
		t.Fatalf("codec %s has MimeType %q (%v)", c.codec, c.params.MimeType, err)
	}
	if c.rtx == nil {
		return
	}
	rtxPT := strconv.Itoa(int(c.rtx.PayloadType))
	if !slices.Contains(formats, rtxPT) || c.rtx.PayloadType > 127 {
		t.Fatalf("RTX of %s has payload type %d, not one of the m= line's %q", c.codec, c.rtx.PayloadType, formats)
	}
	if !strings.EqualFold(c.rtx.MimeType, kind.String()+"/rtx") || c.rtx.SDPFmtpLine != "apt="+pt {
		t.Fatalf("RTX of %s (PT %s) is %s %q", c.codec, pt, c.rtx.MimeType, c.rtx.SDPFmtpLine)
	}
}
