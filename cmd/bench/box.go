package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"whipgate/ingest"
)

// The box mode (-box): the server under test is the box. Its stream
// comes in through the encoder pipe (the hwaccel custom backend, reading
// an Annex-B main and preview layer from its pipes) and leaves through
// WHIP egress to a second whipgate; local WHEP viewers watch the main
// layer. The encoder process is a relay, sh running two cats from FIFOs
// the bench writes: the synthetic encoder lives in the bench, sharing
// its frame table with the viewers, and the relay's CPU, like a real
// encoder's, is not the box's.

// The box's layers, and the FIFOs the bench writes them into.
const (
	boxMain        = "main"
	boxPreview     = "preview"
	boxMainFIFO    = "main.h264"
	boxPreviewFIFO = "preview.h264"
)

// The egress modes of -egress-mode: whip/egress's.
const (
	egressSessions  = "sessions"
	egressSimulcast = "simulcast"
)

// boxConfig is the YAML config of the box server: the encoder pipe and
// the profiler (http.pprof) for the CPU split.
func boxConfig(opt Options, dir string) (string, error) {
	gop := max(1, int(opt.GOP.Seconds()*float64(opt.FPS)+0.5))
	layer := func(name string, w, h int, bps int64) map[string]any {
		return map[string]any{"name": name, "codec": "h264", "width": w, "height": h,
			"bitrate_kbps": bps / 1000, "gop": gop, "transport": "pipe"}
	}
	cfg := map[string]any{
		"http": map[string]any{"pprof": true},
		"hwaccel": map[string]any{
			"stream":  streamName,
			"backend": "custom",
			"input":   map[string]any{"width": 1920, "height": 1080, "fps": opt.FPS},
			"layers":  []any{layer(boxMain, 1920, 1080, opt.Bitrate), layer(boxPreview, 480, 270, opt.PreviewBitrate)},
			// The relay: sh's $0 and $1 are the FIFOs, pipes 3 and 4
			// the layers' (hwaccel's convention).
			"custom": map[string]any{"command": []string{"sh", "-c", `cat "$0" >&3 & cat "$1" >&4 & wait`,
				filepath.Join(dir, boxMainFIFO), filepath.Join(dir, boxPreviewFIFO)}},
			// The feed starts once the server serves; the bench's own
			// pauses are no stall.
			"watchdog": map[string]any{"first_frame": "30s", "stall": "-1s"},
		},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("bench: box config: %w", err)
	}
	path := filepath.Join(dir, "box.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return "", fmt.Errorf("bench: box config: %w", err)
	}
	return path, nil
}

// egressRequest is the egress of layers to the target in mode, and the
// target's URL of the first layer for its viewer.
func egressRequest(mode, target string, layers []string) (req map[string]any, watch string) {
	req = map[string]any{"id": egressID, "stream": streamName, "mode": mode, "layers": layers}
	if len(layers) == 1 {
		// One session without rids in either mode: the target's one
		// layer is "main".
		req["url"] = target + "/whip/" + streamName
		return req, target + "/whep/" + streamName + "/main"
	}
	if mode == egressSimulcast {
		// One session; the target names its layers by rid, "0" the
		// full size (rid_style obs).
		req["url"] = target + "/whip/" + streamName
		return req, target + "/whep/" + streamName + "/0"
	}
	// A session per layer, a stream per layer on the target, where its
	// one layer is "main".
	req["url"] = target + "/whip/" + streamName + "-{layer}"
	return req, target + "/whep/" + streamName + "-" + layers[0] + "/main"
}

// egress is the bench's egress request, and the URL of its first layer
// on the target.
func (b *bench) egress(target *server) (req map[string]any, watch string) {
	layers := []string{boxMain}
	if b.opt.Box {
		layers = append(layers, boxPreview)
	}
	return egressRequest(b.opt.EgressMode, target.url, layers)
}

// boxFiles makes the box's FIFOs and config in dir, and returns the
// config's path.
func boxFiles(opt Options, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bench: box: %w", err)
	}
	for _, f := range []string{boxMainFIFO, boxPreviewFIFO} {
		if err := makeFIFO(filepath.Join(dir, f)); err != nil {
			return "", err
		}
	}
	return boxConfig(opt, dir)
}

// feed is the synthetic hardware encoder: each frame interval it writes
// an access unit of the main layer, then one of the preview, each in one
// write, as an encoder hands over a finished frame.
type feed struct {
	main, preview      *os.File
	mainAU, previewAU  *annexBFrames
	mainPlan, prevPlan plan
	sendStats
}

// startFeed opens the FIFOs the box's encoder relay reads, in dir.
func startFeed(dir string, opt Options) (*feed, error) {
	f := &feed{mainPlan: newPlan(opt.Bitrate, opt.FPS, opt.GOP, opt.KeyframeFactor),
		prevPlan: newPlan(opt.PreviewBitrate, opt.FPS, opt.GOP, opt.KeyframeFactor)}
	f.mainAU, f.previewAU = newAnnexBFrames(f.mainPlan), newAnnexBFrames(f.prevPlan)
	var err error
	if f.main, err = openFIFO(filepath.Join(dir, boxMainFIFO)); err != nil {
		return nil, err
	}
	if f.preview, err = openFIFO(filepath.Join(dir, boxPreviewFIFO)); err != nil {
		return nil, errors.Join(err, f.main.Close())
	}
	return f, nil
}

func (f *feed) stats() *sendStats { return &f.sendStats }

// send writes both layers' frames on the main plan's schedule until ctx
// ends or the table is full. The pipe has no way back: keyframes come
// every GOP, whatever the server asks.
func (f *feed) send(ctx context.Context, _ sendOptions, table *frameTable) error {
	// A write blocks while the relay does not read (a server that
	// died, with the bench still a reader of its own FIFO): ctx ending
	// must end it.
	stop := context.AfterFunc(ctx, func() {
		past := time.Unix(1, 0)
		_, _ = f.main.SetWriteDeadline(past), f.preview.SetWriteDeadline(past)
	})
	defer stop()
	err := frameLoop(ctx, f.mainPlan, table, &f.sendStats, nil, func(n int, _ time.Time, key bool) error {
		rec := &table.frames[n]
		now := time.Now()
		au, packets := f.mainAU.frame(uint64(n), key, now.UnixNano())
		rec.key.Store(key)
		rec.packets.Store(int32(packets))
		rec.sentFirst.Store(now.UnixNano())
		if _, err := f.main.Write(au); err != nil {
			return fmt.Errorf("bench: box feed, main: %w", err)
		}
		rec.sentLast.Store(time.Now().UnixNano())
		pau, _ := f.previewAU.frame(uint64(n), key, now.UnixNano())
		if _, err := f.preview.Write(pau); err != nil {
			return fmt.Errorf("bench: box feed, preview: %w", err)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil // a write cut short by the end
	}
	return err
}

// Close closes the FIFOs: the relay's cats see EOF.
func (f *feed) Close(context.Context) error {
	return errors.Join(f.main.Close(), f.preview.Close())
}

// annexBFrames lays out a layer's access units as an H.264 encoder
// writes them (Annex-B, start codes), shaped so that the server's
// packetizer (RFC 6184 at ingest.MTU) makes of them what the bench's
// WHIP publisher sends: a keyframe's SPS, PPS and stamped SEI in one
// STAP-A, then the IDR in FU-As; another frame one NAL unit in FU-As;
// each first FU-A with the stamp after its FU header. Filler is the
// packetizer's pattern: no zero byte, hence no start code and nothing to
// escape.
type annexBFrames struct {
	plan plan
	buf  []byte
}

var annexBStart = []byte{0, 0, 0, 1}

// annexBHeadLen bounds the bytes a frame's head rewrites.
var annexBHeadLen = 4*len(annexBStart) + len(fakeSPS) + len(fakePPS) + 2*(1+stampLen) + 1

func newAnnexBFrames(p plan) *annexBFrames {
	n := max(p.keyBytes, p.deltaBytes, annexBHeadLen+ingest.MTU+1)
	a := &annexBFrames{plan: p, buf: make([]byte, n)}
	fillPattern(a.buf)
	return a
}

// frame lays out frame n, stamped with sent, and returns it (valid until
// the next call) and the RTP packets the server makes of it.
func (a *annexBFrames) frame(n uint64, key bool, sent int64) ([]byte, int) {
	fillPattern(a.buf[:annexBHeadLen])
	b := a.buf[:0]
	size := a.plan.deltaBytes
	nal := byte(0x40 | nalP)
	if key {
		size, nal = a.plan.keyBytes, 0x60|nalIDR
		for _, ps := range [][]byte{fakeSPS, fakePPS} {
			b = append(append(b, annexBStart...), ps...)
		}
		b = append(append(b, annexBStart...), nalSEI)
		b = b[:len(b)+stampLen]
		putStamp(b[len(b)-stampLen:], n, sent)
		b = append(b, 0x80) // rbsp trailing bits
	}
	b = append(append(b, annexBStart...), nal)
	vcl := len(b) - 1
	b = b[:len(b)+stampLen]
	putStamp(b[len(b)-stampLen:], n, sent)
	// At least one byte past an MTU: a frame in one packet would go as a
	// single NAL unit packet, which carries no stamp the tally reads.
	b = a.buf[:max(size, vcl+ingest.MTU+1)]
	packets := ceilDiv(len(b)-vcl-1, ingest.MTU-fuHeaderLen)
	if key {
		packets++ // the STAP-A
	}
	return b, packets
}

// fillPattern fills b with the payload pattern: not zeros, since a run of
// zero bytes is an Annex-B start code to anything that scans for one.
func fillPattern(b []byte) {
	for i := range b {
		b[i] = byte(i*7) | 0x10
	}
}

// parseEgressMode reads -egress-mode.
func parseEgressMode(s string) (string, error) {
	switch m := strings.TrimSpace(s); m {
	case egressSessions, egressSimulcast:
		return m, nil
	default:
		return "", fmt.Errorf("bench: -egress-mode %q: want %s or %s", s, egressSessions, egressSimulcast)
	}
}
