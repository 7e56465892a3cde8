package cmd

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"whipgate/hwaccel"
	"whipgate/whip/egress"
)

// metrics reads the hub, the sessions, the egresses and the encoder at
// scrape time, so the media path pays nothing for them. Base units
// (seconds, bytes, bits per second), and label sets bounded by what is
// configured or published: streams, layers, egress ids. Per-viewer
// series are not exported: viewers come and go (each would be a new
// series), and the hub's subscriber numbers join nothing; per-stream
// aggregates that only grow stand in (whipgate_stream_packets_*_total,
// the viewers' repair in whipgate_stream_resen*_total), and
// /api/v1/sessions has each viewer.
type metrics struct {
	app *App

	layerBitrate, layerFPS, layerPackets, layerBytes, layerKeyframes, layerKeyframeBytes *prometheus.Desc
	live, sessions, viewers, delivered, dropped                                          *prometheus.Desc
	resent, resentBytes, resendSkipped, repairKeyReqs                                    *prometheus.Desc
	ingestNACKs, ingestRTX, ingestLost, ingestKeyReqs                                    *prometheus.Desc
	egressUp, egressRetries, egressState, egressBytes, egressPackets, egressRTT          *prometheus.Desc
	egressEstimate, egressNACKs, egressPLIs                                              *prometheus.Desc
	encoderUp, encoderRestarts, encoderFallbacks, encoderFPS                             *prometheus.Desc
	panics, build                                                                        *prometheus.Desc
}

// egressStates are the states whipgate_egress_state reports, each 0 or 1.
var egressStates = []string{egress.StateConnecting, egress.StateConnected, egress.StateReconnecting, egress.StateFailed, egress.StateStopped}

func newMetricsHandler(a *App) http.Handler {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m := &metrics{
		app:                a,
		layerBitrate:       d("whipgate_layer_bitrate_bps", "Bitrate of a layer over the last second, in bits per second.", "stream", "layer", "codec"),
		layerFPS:           d("whipgate_layer_fps", "Frame rate of a layer over the last second.", "stream", "layer"),
		layerPackets:       d("whipgate_layer_packets_total", "RTP packets published on a layer.", "stream", "layer"),
		layerBytes:         d("whipgate_layer_bytes_total", "Payload bytes published on a layer.", "stream", "layer"),
		layerKeyframes:     d("whipgate_layer_keyframes_total", "Keyframes published on a layer.", "stream", "layer"),
		layerKeyframeBytes: d("whipgate_layer_keyframe_bytes", "Size of the layer's last keyframe, in bytes.", "stream", "layer"),
		live:               d("whipgate_stream_live", "1 while a stream has a live publisher.", "stream"),
		sessions:           d("whipgate_sessions", "Live WHIP and WHEP sessions.", "kind"),
		viewers:            d("whipgate_stream_viewers", "WHEP sessions watching a stream.", "stream"),
		delivered:          d("whipgate_stream_packets_delivered_total", "Packets handed to a stream's subscribers (viewers and egress), those gone included.", "stream"),
		dropped:            d("whipgate_stream_packets_dropped_total", "Packets a stream's slow subscribers lost to their full queues.", "stream"),
		resent:             d("whipgate_stream_resent_packets_total", "Packets re-sent to a stream's WHEP viewers for their NACKs (RTX or plain), those gone included.", "stream"),
		resentBytes:        d("whipgate_stream_resent_bytes_total", "Payload bytes re-sent to a stream's WHEP viewers (with RTX's 2 bytes a packet), those gone included.", "stream"),
		resendSkipped:      d("whipgate_stream_resend_skipped_total", "Packets a stream's WHEP viewers asked for and did not get again: re-sent less than a round trip before (duplicate), past the viewer's re-send budget (budget), or no longer held (unavailable).", "stream", "reason"),
		repairKeyReqs:      d("whipgate_stream_repair_keyframe_requests_total", "Keyframes asked for because a stream's WHEP viewer NACKed packets that could not be re-sent (budget, unavailable); merged into whipgate_ingest_keyframe_requests_sent_total.", "stream"),
		ingestNACKs:        d("whipgate_ingest_nacks_sent_total", "Sequence numbers a publisher was asked for again (NACK).", "stream", "layer"),
		ingestRTX:          d("whipgate_ingest_rtx_received_total", "Packets recovered through RTX from a publisher.", "stream", "layer"),
		ingestLost:         d("whipgate_ingest_packets_lost_total", "Packets from a publisher lost for good (three NACKs unanswered).", "stream", "layer"),
		ingestKeyReqs:      d("whipgate_ingest_keyframe_requests_sent_total", "Keyframe requests sent to a layer's publisher (viewers', losses', the API's, merged).", "stream", "layer"),
		egressUp:           d("whipgate_egress_up", "1 while an egress's WHIP session for the layer is connected, else 0.", "egress", "layer"),
		egressRetries:      d("whipgate_egress_retries_total", "WHIP sessions of an egress that failed and were retried.", "egress"),
		egressState:        d("whipgate_egress_state", "1 for the egress's current state, 0 for the others.", "egress", "state"),
		egressBytes:        d("whipgate_egress_sent_bytes_total", "Payload bytes an egress session sent (since it connected).", "egress", "layer"),
		egressPackets:      d("whipgate_egress_sent_packets_total", "RTP packets an egress session sent (since it connected).", "egress", "layer"),
		egressRTT:          d("whipgate_egress_rtt_seconds", "Round trip to the egress target from RTCP reports.", "egress", "layer"),
		egressEstimate:     d("whipgate_egress_target_estimate_bits_per_second", "The bandwidth the egress target's REMB says (0 without REMB).", "egress", "layer"),
		egressNACKs:        d("whipgate_egress_nacks_received_total", "Packets the egress target asked for again (since the session connected).", "egress", "layer"),
		egressPLIs:         d("whipgate_egress_keyframe_requests_received_total", "PLI and FIR from the egress target (since the session connected).", "egress", "layer"),
		encoderUp:          d("whipgate_encoder_up", "1 while the encoder process runs, else 0."),
		encoderRestarts:    d("whipgate_encoder_restarts_total", "Encoder process starts after the first."),
		encoderFallbacks:   d("whipgate_encoder_fallbacks_total", "Switches of the encoder to another backend."),
		encoderFPS:         d("whipgate_encoder_fps", "Frame rate the encoder delivers on a layer.", "layer"),
		panics:             d("whipgate_panics_total", "Panics recovered in sessions' goroutines and on the shared socket's reader.", "where"),
		build:              d("whipgate_build_info", "1, labelled with the build.", "version", "revision", "goversion"),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, a.httpRequests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(m, ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	a := m.app
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := a.build
	gauge(m.build, 1, b.Version, b.Revision, b.GoVersion)

	viewers := map[string]int{}
	counts := map[string]int{"whip": 0, "whep": 0}
	for _, s := range a.sessions.List() {
		counts[s.Kind]++
		if s.Kind == "whep" {
			viewers[s.Stream]++
		}
	}
	for k, n := range counts {
		gauge(m.sessions, float64(n), k)
	}
	repairs := a.whep.Repair()
	for _, s := range a.hub.Streams() {
		gauge(m.live, bit(s.Live), s.Name)
		gauge(m.viewers, float64(viewers[s.Name]), s.Name)
		counter(m.delivered, float64(s.Delivered), s.Name)
		counter(m.dropped, float64(s.Dropped), s.Name)
		r := repairs[s.Name]
		counter(m.resent, float64(r.Resent), s.Name)
		counter(m.resentBytes, float64(r.ResentBytes), s.Name)
		counter(m.resendSkipped, float64(r.Duplicate), s.Name, "duplicate")
		counter(m.resendSkipped, float64(r.OverBudget), s.Name, "budget")
		counter(m.resendSkipped, float64(r.Unavailable), s.Name, "unavailable")
		counter(m.repairKeyReqs, float64(r.KeyframeRequests), s.Name)
		for _, l := range s.Tracks {
			gauge(m.layerBitrate, float64(l.BitrateBps), s.Name, l.Name, l.Codec.Name())
			gauge(m.layerFPS, l.FPS, s.Name, l.Name)
			counter(m.layerPackets, float64(l.Packets), s.Name, l.Name)
			counter(m.layerBytes, float64(l.Bytes), s.Name, l.Name)
			counter(m.layerKeyframes, float64(l.Keyframes), s.Name, l.Name)
			gauge(m.layerKeyframeBytes, float64(l.KeyframeBytes), s.Name, l.Name)
			counter(m.ingestNACKs, float64(l.NACKsSent), s.Name, l.Name)
			counter(m.ingestRTX, float64(l.RecoveredRTX), s.Name, l.Name)
			counter(m.ingestLost, float64(l.Lost), s.Name, l.Name)
			counter(m.ingestKeyReqs, float64(l.KeyframeRequests), s.Name, l.Name)
		}
	}

	for _, e := range a.egress.List() {
		counter(m.egressRetries, float64(e.Retries), e.ID)
		for _, st := range egressStates {
			gauge(m.egressState, bit(e.State == st), e.ID, st)
		}
		for _, s := range e.Sessions {
			// One session per layer (mode sessions), or one for all
			// (simulcast): up per layer, the session's figures under its
			// layers joined.
			for _, l := range s.Layers {
				gauge(m.egressUp, bit(s.State == egress.StateConnected), e.ID, l)
			}
			layer := strings.Join(s.Layers, "+")
			counter(m.egressBytes, float64(s.Bytes), e.ID, layer)
			counter(m.egressPackets, float64(s.Packets), e.ID, layer)
			gauge(m.egressRTT, s.RTTMs/1000, e.ID, layer)
			gauge(m.egressEstimate, float64(s.TargetEstimateBps), e.ID, layer)
			counter(m.egressNACKs, float64(s.NACKed), e.ID, layer)
			counter(m.egressPLIs, float64(s.KeyframeRequests), e.ID, layer)
		}
		if len(e.Sessions) == 0 { // not started yet: its configured layers are down
			for _, l := range e.Layers {
				gauge(m.egressUp, 0, e.ID, l)
			}
		}
	}

	if sup := a.Encoder(); sup != nil {
		st := sup.Status()
		gauge(m.encoderUp, bit(st.State == hwaccel.StateRunning))
		counter(m.encoderRestarts, float64(st.Restarts))
		counter(m.encoderFallbacks, float64(st.Fallbacks))
		for _, l := range st.Layers {
			gauge(m.encoderFPS, l.FPS, l.Name)
		}
	}
	counter(m.panics, float64(a.sessions.Panics()), "session")
	counter(m.panics, float64(a.rtc.Panics()), "socket")
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newHTTPRequests counts HTTP requests by route pattern (not path: a
// stream name in a path would make the label set unbounded) and status.
func newHTTPRequests() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whipgate_http_requests_total",
		Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
}

// countRequest adds one request to whipgate_http_requests_total.
func (a *App) countRequest(route string, status int) {
	if route == "" {
		route = "unmatched"
	}
	a.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}
