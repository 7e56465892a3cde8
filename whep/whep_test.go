package whep

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"

	"whipgate/gateway"
)

func TestPickTracks(t *testing.T) {
	main := gateway.TrackInfo{Name: "main", Codec: gateway.H265}
	preview := gateway.TrackInfo{Name: "preview", Codec: gateway.H264}
	audio := gateway.TrackInfo{Name: "audio", Codec: gateway.Opus}
	rids := []gateway.TrackInfo{{Name: "0", Codec: gateway.VP8}, {Name: "1", Codec: gateway.VP8}}
	for _, tc := range []struct {
		name      string
		tracks    []gateway.TrackInfo
		layer     string
		wantVideo string
		wantAudio bool
		wantErr   string
	}{
		{"default is main", []gateway.TrackInfo{preview, main, audio}, "", "main", true, ""},
		{"named layer", []gateway.TrackInfo{main, preview}, "preview", "preview", false, ""},
		{"default without main is the first video", rids, "", "0", false, ""},
		{"rid layer", rids, "1", "1", false, ""},
		{"unknown layer lists the others", []gateway.TrackInfo{main, preview}, "huge", "", false, "layers: main, preview"},
		{"audio only", []gateway.TrackInfo{audio}, "", "", false, "no video layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, a, err := pickTracks(tc.tracks, tc.layer)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || v.Name != tc.wantVideo || (a != nil) != tc.wantAudio {
				t.Fatalf("got video %q audio %v err %v", v.Name, a, err)
			}
		})
	}
}

func TestOfferHas(t *testing.T) {
	raw := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 45\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:45 AV1/90000\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind  string
		codec gateway.Codec
		want  bool
	}{
		{"video", gateway.AV1, true}, {"video", gateway.VP8, true}, {"video", gateway.H265, false},
		{"audio", gateway.Opus, true}, {"audio", gateway.AV1, false},
	} {
		if got := offerHas(&d, tc.kind, tc.codec); got != tc.want {
			t.Errorf("offerHas(%s, %s) = %v, want %v", tc.kind, tc.codec, got, tc.want)
		}
	}
}
