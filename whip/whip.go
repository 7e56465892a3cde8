// Package whip is the WHIP ingest endpoint (RFC 9725): OBS, browsers,
// GStreamer and FFmpeg POST an SDP offer to /whip/{stream} and publish into
// the media hub. The session resource after the POST, the answer path and
// the transport beneath are shared with WHEP (whip/session, whip/rtc); the
// WHIP client and egress live in whip/client and whip/egress.
//
// It must not import whep or cmd.
package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip/problem"
	"whipgate/whip/rtc"
	"whipgate/whip/session"
)

// ServerConfig configures WHIP ingest. The zero value means the defaults.
type ServerConfig struct {
	session.EndpointConfig `yaml:",inline"`
	// StaleAfter lets a new POST replace a publisher that has sent nothing
	// for this long: OBS re-POSTs without DELETE after a network drop
	// (and does not retry a 409). Default 3 s.
	StaleAfter time.Duration `yaml:"stale_after"`
	// TokenStaleAfter is StaleAfter for a stream with a publish token: a
	// POST that holds the stream's key is its owner coming back (a crashed
	// encoder restarting), so a silence this short lets it take over.
	// Default 1 s.
	TokenStaleAfter time.Duration `yaml:"token_stale_after"`
}

// PublishPolicy says whether a publisher may publish to a stream: the stream
// key it needs ("" = none), whether publishing without a key is allowed at
// all, and whether a new publisher takes over a live one.
type PublishPolicy func(stream string) (token string, open bool, takeover bool)

// Server is the WHIP ingest endpoint: OBS, browsers, GStreamer and FFmpeg
// publish into the hub through it.
type Server struct {
	cfg    ServerConfig
	hub    *gateway.Hub
	t      *rtc.Transport
	ep     *session.Endpoint
	policy PublishPolicy
	log    *slog.Logger
}

// NewServer builds the WHIP ingest handler on the shared transport and
// session registry.
func NewServer(cfg ServerConfig, hub *gateway.Hub, t *rtc.Transport, sessions *session.Registry, policy PublishPolicy, log *slog.Logger) *Server {
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 3 * time.Second
	}
	if cfg.TokenStaleAfter <= 0 {
		cfg.TokenStaleAfter = time.Second
	}
	cfg.ApplyDefaults()
	if policy == nil {
		policy = func(string) (string, bool, bool) { return "", true, false }
	}
	log = log.With("component", "whip")
	return &Server{cfg: cfg, hub: hub, t: t, policy: policy, log: log, ep: &session.Endpoint{
		Kind: "whip", Who: "publisher", ProbeStatus: http.StatusNoContent,
		Config: cfg.EndpointConfig, Sessions: sessions, ICEServers: t.ICEServers(), Log: log,
	}}
}

// ServeEndpoint handles /whip/{stream}.
func (s *Server) ServeEndpoint(w http.ResponseWriter, r *http.Request, stream string) {
	s.ep.Serve(w, r, stream, func(w http.ResponseWriter, r *http.Request) error {
		if err := gateway.ValidStreamName(stream); err != nil {
			return problem.Errorf(http.StatusBadRequest, "%v", err)
		}
		return s.post(w, r, stream)
	})
}

// offerSection is one audio or video section of an offer.
type offerSection struct {
	index  int
	mid    string
	kind   gateway.Kind
	rids   []string       // simulcast rids, full size first as the client lists them
	codecs []offeredCodec // what the hub forwards, in the offer's order
}

// offeredCodec is one payload type of an offer, with its RTX, if any.
type offeredCodec struct {
	codec  gateway.Codec
	params webrtc.RTPCodecParameters
	rtx    *webrtc.RTPCodecParameters
}

// shapeOffer checks the offer against RFC 9725 §4.4.2 (at most one audio
// and one video section, each sending) and lists the codecs of each
// section that the hub can forward.
func shapeOffer(d *sdp.SessionDescription) ([]offerSection, error) {
	var out []offerSection
	var audio, video int
	for i, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 {
			continue // rejected/disabled section
		}
		var kind gateway.Kind
		switch m.MediaName.Media {
		case "audio":
			kind = gateway.KindAudio
			audio++
		case "video":
			kind = gateway.KindVideo
			video++
		default:
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				return nil, problem.Errorf(http.StatusBadRequest, "media section %d is %s; a WHIP publisher must send (sendonly or sendrecv)", i, a.Key)
			}
		}
		if audio > 1 || video > 1 {
			return nil, problem.Errorf(http.StatusUnprocessableEntity, "WHIP takes at most one audio and one video track (RFC 9725 §4.4.2); the offer has more %s", kind)
		}
		sec := offerSection{index: i, kind: kind, codecs: offeredCodecs(m, kind)}
		sec.mid, _ = m.Attribute("mid")
		if len(sec.codecs) == 0 {
			return nil, problem.Errorf(http.StatusUnprocessableEntity, "media section %d offers no codec whipgate forwards (H264, H265, AV1, VP8, VP9, opus)", i)
		}
		if kind == gateway.KindVideo {
			sec.rids = sendRIDs(m)
			if err := checkRIDs(sec.rids); err != nil {
				return nil, problem.Errorf(http.StatusBadRequest, "media section %d: %v", i, err)
			}
		}
		out = append(out, sec)
	}
	if audio+video == 0 {
		return nil, problem.Errorf(http.StatusBadRequest, "the offer has no audio or video section")
	}
	for _, sec := range out {
		if audio > 0 && slices.Contains(sec.rids, "audio") {
			return nil, problem.Errorf(http.StatusBadRequest, `media section %d: a=simulcast rid "audio" is the name of the offer's audio track`, sec.index)
		}
	}
	return out, nil
}

// maxRIDs bounds the simulcast layers of an offer: browsers send three.
const maxRIDs = 16

// checkRIDs checks the rids of a=simulcast:send, which become the names of
// the hub's video tracks: each a layer name (an RFC 8851 rid-id of up to
// 16 characters), and none twice.
func checkRIDs(rids []string) error {
	if len(rids) > maxRIDs {
		return fmt.Errorf("a=simulcast lists %d rids, more than %d", len(rids), maxRIDs)
	}
	for i, rid := range rids {
		if err := gateway.ValidLayerName(rid); err != nil {
			return fmt.Errorf("a=simulcast rid: %w", err) // the rule the hub names tracks by
		}
		if slices.Contains(rids[:i], rid) {
			return fmt.Errorf("a=simulcast lists rid %q twice", rid)
		}
	}
	return nil
}

// offeredCodecs reads a section's payload types the way pion does (rtpmap,
// fmtp, rtcp-fb) and keeps those of a codec the hub forwards.
func offeredCodecs(m *sdp.MediaDescription, kind gateway.Kind) []offeredCodec {
	type pt struct {
		name     string
		clock    uint32
		channels uint16
		fmtp     string
		fb       []webrtc.RTCPFeedback
	}
	pts := map[string]*pt{}
	get := func(id string) *pt {
		if pts[id] == nil {
			pts[id] = &pt{}
		}
		return pts[id]
	}
	var wildFB []webrtc.RTCPFeedback
	for _, a := range m.Attributes {
		id, v, _ := strings.Cut(a.Value, " ")
		switch a.Key {
		case "rtpmap":
			p := get(id)
			parts := strings.Split(v, "/")
			p.name = parts[0]
			if len(parts) > 1 {
				if n, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
					p.clock = uint32(n)
				}
			}
			if len(parts) > 2 {
				if n, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					p.channels = uint16(n)
				}
			}
		case "fmtp":
			get(id).fmtp = v
		case "rtcp-fb":
			typ, param, _ := strings.Cut(v, " ")
			fb := webrtc.RTCPFeedback{Type: typ, Parameter: param}
			if id == "*" {
				wildFB = append(wildFB, fb)
			} else {
				get(id).fb = append(get(id).fb, fb)
			}
		}
	}
	params := func(n webrtc.PayloadType, p *pt, mime string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: n, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mime, ClockRate: p.clock, Channels: p.channels, SDPFmtpLine: p.fmtp,
			RTCPFeedback: append(slices.Clone(wildFB), p.fb...)}}
	}
	// The RTX that repairs each payload type (apt), in one pass over the
	// m= line (an offer's formats are bounded, but not small): the first
	// one the line lists, so the same one every time.
	rtxFor := map[string]webrtc.RTPCodecParameters{}
	for _, id := range m.MediaName.Formats {
		r, ok := pts[id]
		rn, err := strconv.ParseUint(id, 10, 7)
		if !ok || err != nil || !strings.EqualFold(r.name, "rtx") {
			continue
		}
		if apt, ok := strings.CutPrefix(r.fmtp, "apt="); ok {
			if _, dup := rtxFor[apt]; !dup {
				rtxFor[apt] = params(webrtc.PayloadType(rn), r, kind.String()+"/"+r.name)
			}
		}
	}
	var out []offeredCodec
	for _, id := range m.MediaName.Formats {
		p, ok := pts[id]
		n, err := strconv.ParseUint(id, 10, 7) // RTP payload types are 0-127
		if !ok || p.name == "" || err != nil {
			continue
		}
		c, err := gateway.ParseCodec(p.name)
		if err != nil || c.Kind() != kind {
			continue
		}
		oc := offeredCodec{codec: c, params: params(webrtc.PayloadType(n), p, string(c))}
		if x, ok := rtxFor[id]; ok {
			oc.rtx = &x
		}
		out = append(out, oc)
	}
	return out
}

// sendRIDs returns the rids of the offer's a=simulcast:send line, in order,
// taking the first alternative of each and ignoring the paused marker.
func sendRIDs(m *sdp.MediaDescription) []string {
	v, ok := m.Attribute("simulcast")
	if !ok {
		return nil
	}
	fields := strings.Fields(v)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != "send" {
			continue
		}
		var rids []string
		for _, alt := range strings.Split(fields[i+1], ";") {
			first, _, _ := strings.Cut(alt, ",")
			rids = append(rids, strings.TrimPrefix(first, "~"))
		}
		return rids
	}
	return nil
}

// chooseCodecs answers each section with one codec, the first of the offer
// that pion can receive (and its RTX): the publisher may send any codec
// of the answer, so a single one makes what the hub announces to viewers
// what actually arrives. A pion offer lists every codec it knows, VP8
// first, whatever its track sends; browsers and OBS list theirs first.
// It returns the hub's tracks: video layers first, then audio.
func chooseCodecs(pc *webrtc.PeerConnection, sections []offerSection) ([]gateway.TrackInfo, error) {
	byMid := map[string]*webrtc.RTPTransceiver{}
	for _, tr := range pc.GetTransceivers() {
		byMid[tr.Mid()] = tr
	}
	var video, audio []gateway.TrackInfo
	for _, sec := range sections {
		tr, ok := byMid[sec.mid]
		if !ok {
			return nil, problem.Errorf(http.StatusBadRequest, "media section %d (mid %q) was not accepted", sec.index, sec.mid)
		}
		c, ok := pickCodec(tr, sec.codecs)
		if !ok {
			names := make([]string, 0, len(sec.codecs))
			for _, c := range sec.codecs {
				names = append(names, c.params.MimeType+" "+c.params.SDPFmtpLine)
			}
			return nil, problem.Errorf(http.StatusUnprocessableEntity, "media section %d: none of its codecs can be received (%s)", sec.index, strings.Join(names, ", "))
		}
		if sec.kind == gateway.KindAudio {
			audio = append(audio, gateway.TrackInfo{Name: "audio", Codec: c.codec, Fmtp: c.params.SDPFmtpLine, Channels: 2})
			continue
		}
		if len(sec.rids) == 0 {
			video = append(video, gateway.TrackInfo{Name: "main", Codec: c.codec, Fmtp: c.params.SDPFmtpLine})
			continue
		}
		for _, rid := range sec.rids {
			video = append(video, gateway.TrackInfo{Name: rid, Codec: c.codec, Fmtp: c.params.SDPFmtpLine})
		}
	}
	return append(video, audio...), nil
}

func pickCodec(tr *webrtc.RTPTransceiver, offered []offeredCodec) (offeredCodec, bool) {
	for _, c := range offered {
		if c.rtx != nil && tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c.params, *c.rtx}) == nil {
			return c, true
		}
		if tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c.params}) == nil {
			return c, true
		}
	}
	return offeredCodec{}, false
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, name string) error {
	limits := s.ep.Sessions.Limits()
	body, err := limits.ReadBody(r, "application/sdp")
	if err != nil {
		return err
	}
	token, open, takeover := s.policy(name)
	if token != "" {
		if err := session.CheckBearer(r, token); err != nil {
			return err
		}
	} else if !open {
		return problem.Errorf(http.StatusForbidden, "publishing to %q needs a stream key configured for it (streams.%s.publish_token), or open_publish: true", name, name)
	}
	offer, err := limits.ReadOffer(body)
	if err != nil {
		return err
	}
	sections, err := shapeOffer(offer.SDP)
	if err != nil {
		return err
	}
	sess, err := s.ep.NewSession(r, name, "", token)
	if err != nil {
		return err
	}
	log := s.log.With("stream", name, "session", sess.ID)
	in, err := s.t.NewIngest(offer.SDP, s.ep.PeerConfiguration(), rtc.PeerOptions{PionSRTP: s.cfg.PionSRTP, Log: log})
	if err != nil {
		s.ep.Sessions.Release(sess)
		return fmt.Errorf("whip: %w", err)
	}
	pc := in.PeerConnection()
	stale := s.cfg.StaleAfter
	if token != "" {
		stale = s.cfg.TokenStaleAfter // the key holder is the stream's owner
	}
	opts := gateway.PublishOptions{Kind: "whip", Remote: r.RemoteAddr, Takeover: takeover, StaleAfter: stale}
	var pub *gateway.Publication
	tracks := &ingestTracks{}
	// The hub is claimed once the offer is applied, before the answer, so
	// a second publisher gets its 409 without a PeerConnection of ours.
	claim := func() error {
		infos, err := chooseCodecs(pc, sections)
		if err != nil {
			return err
		}
		pub, err = s.hub.Publish(name, infos, opts)
		if errors.Is(err, gateway.ErrBadName) || errors.Is(err, gateway.ErrBadTracks) {
			return problem.Errorf(http.StatusBadRequest, "%v", err)
		}
		if errors.Is(err, gateway.ErrStreamBusy) {
			return &problem.Error{Code: http.StatusConflict, Msg: fmt.Sprintf("stream %q already has a live publisher", name), RetryAfter: max(1, int(stale/time.Second))}
		}
		if err != nil {
			return fmt.Errorf("whip: publish: %w", err)
		}
		tracks.init(infos)
		sess.Stats = func() any {
			st := IngestStats{Tracks: pub.Stream().Stats().Tracks, IngestSRTP: in.Stats()}
			if rtt, ok := in.RTT(); ok {
				st.RTTMillis = float64(rtt.Microseconds()) / 1000
			}
			return st
		}
		in.OnTrack(func(t *webrtc.TrackRemote) {
			i, ok := tracks.claim(t, log)
			if !ok {
				// Read and dropped: a track nobody reads fills pion's
				// buffer, and its packets would hold the shared socket's
				// read gate shut for every session.
				sess.Go(func() { drainTrack(t) })
				return
			}
			sess.Go(func() { in.ReadTrack(t, func(p *rtp.Packet) { pub.WriteRTP(i, p) }) })
		})
		return nil
	}
	run := func(ctx context.Context) error {
		defer pub.Close()
		defer in.Close()
		// Packets lost for good: a viewer's frame waits, so ask the
		// publisher for a keyframe at once (the hub merges and rate-limits
		// it with the viewers' requests).
		in.OnLost(func(ssrc uint32) {
			if i, ok := tracks.index(webrtc.SSRC(ssrc)); ok {
				pub.RequestKeyframe(i)
			}
		})
		report := time.NewTicker(time.Second)
		defer report.Stop()
		defer tracks.reportRepair(in, pub) // what the last second did
		for {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-pub.Done():
				return pub.Err()
			case i := <-pub.KeyframeRequests():
				if ssrc := tracks.ssrc(i); ssrc != 0 {
					_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
				}
			case <-report.C:
				tracks.reportRepair(in, pub)
			}
		}
	}
	answer, err := s.ep.Answer(r.Context(), pc, offer, sess, claim, run)
	if err != nil {
		_ = in.Close()
		if pub != nil {
			pub.Close()
		}
		return err
	}
	return s.ep.Created(w, r, sess, answer)
}

// IngestStats is a WHIP session's detail in the API: the stream's tracks,
// the round trip to the publisher and how its media is read.
type IngestStats struct {
	Tracks []gateway.TrackStats `json:"tracks"`
	// RTTMillis is the round trip to the publisher in milliseconds, as
	// ICE last measured it (every 2 s); absent until measured.
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	rtc.IngestSRTP
}

// ingestTracks maps a publisher's remote tracks to the hub's, and keeps
// their SSRCs for keyframe requests.
type ingestTracks struct {
	mu       sync.Mutex
	infos    []gateway.TrackInfo
	byName   map[string]int
	ssrcs    []webrtc.SSRC
	reported []gateway.Repair // what reportRepair handed the hub, per track
}

func (in *ingestTracks) init(infos []gateway.TrackInfo) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.infos, in.ssrcs, in.byName = infos, make([]webrtc.SSRC, len(infos)), make(map[string]int, len(infos))
	in.reported = make([]gateway.Repair, len(infos))
	for i, t := range infos {
		in.byName[t.Name] = i
	}
}

// claim finds a remote track's hub track: audio, a simulcast rid, or the
// one video layer "main".
func (in *ingestTracks) claim(t *webrtc.TrackRemote, log *slog.Logger) (int, bool) {
	key := t.RID()
	switch {
	case t.Kind() == webrtc.RTPCodecTypeAudio:
		key = "audio"
	case key == "":
		key = "main"
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	i, ok := in.byName[key]
	if !ok {
		log.Warn("ignoring a track the offer did not announce", "rid", t.RID(), "kind", t.Kind())
		return 0, false
	}
	if strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypeRTX) {
		// RTX that carries the rid of the stream it repairs instead of
		// repaired-rtp-stream-id (RFC 8852), so pion took it for a layer
		// of its own (whipgate's egress did so before 2026-12-07). Read
		// as the layer, its repairs would break every frame.
		log.Warn("ignoring a repair stream sent as a simulcast layer (rid instead of repaired-rtp-stream-id)", "rid", t.RID(), "ssrc", t.SSRC())
		return 0, false
	}
	if got := t.Codec().MimeType; !strings.EqualFold(got, string(in.infos[i].Codec)) {
		log.Warn("publisher sends another codec than the answer named", "layer", key, "announced", in.infos[i].Codec, "got", got)
	}
	in.ssrcs[i] = t.SSRC()
	return i, true
}

// drainTrack reads t to its end and drops what it reads.
func drainTrack(t *webrtc.TrackRemote) {
	buf := make([]byte, 1<<16) // any packet pion may hand over
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

func (in *ingestTracks) ssrc(i int) webrtc.SSRC {
	in.mu.Lock()
	defer in.mu.Unlock()
	if i < 0 || i >= len(in.ssrcs) {
		return 0
	}
	return in.ssrcs[i]
}

// index is the hub track of the remote stream ssrc.
func (in *ingestTracks) index(ssrc webrtc.SSRC) (int, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, s := range in.ssrcs {
		if s == ssrc && s != 0 {
			return i, true
		}
	}
	return 0, false
}

// reportRepair hands the hub what the transport repaired (or did not)
// since the last report, per track, so the counters outlive the session.
func (in *ingestTracks) reportRepair(ing *rtc.Ingest, pub *gateway.Publication) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, ssrc := range in.ssrcs {
		if ssrc == 0 {
			continue
		}
		now, was := ing.Repair(uint32(ssrc)), in.reported[i]
		pub.AddRepair(i, gateway.Repair{NACKed: now.NACKed - was.NACKed, Recovered: now.Recovered - was.Recovered, Lost: now.Lost - was.Lost})
		in.reported[i] = now
	}
}
