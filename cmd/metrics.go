package cmd

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics reads the hub and the session registry at scrape time, so the
// media path pays nothing for them.
type metrics struct {
	app *App

	layerBitrate, layerFPS, layerPackets, layerBytes, layerKeyframes, layerKeyframeBytes *prometheus.Desc
	subDelivered, subDropped, sessions, live                                             *prometheus.Desc
}

func newMetricsHandler(a *App) http.Handler {
	m := &metrics{
		app:                a,
		layerBitrate:       prometheus.NewDesc("whipgate_layer_bitrate_bps", "Bitrate of a layer over the last second.", []string{"stream", "layer", "codec"}, nil),
		layerFPS:           prometheus.NewDesc("whipgate_layer_fps", "Frame rate of a layer over the last second.", []string{"stream", "layer"}, nil),
		layerPackets:       prometheus.NewDesc("whipgate_layer_packets_total", "RTP packets published on a layer.", []string{"stream", "layer"}, nil),
		layerBytes:         prometheus.NewDesc("whipgate_layer_bytes_total", "Payload bytes published on a layer.", []string{"stream", "layer"}, nil),
		layerKeyframes:     prometheus.NewDesc("whipgate_layer_keyframes_total", "Keyframes published on a layer.", []string{"stream", "layer"}, nil),
		layerKeyframeBytes: prometheus.NewDesc("whipgate_layer_keyframe_bytes", "Size of the layer's last keyframe.", []string{"stream", "layer"}, nil),
		subDelivered:       prometheus.NewDesc("whipgate_subscriber_packets_delivered_total", "Packets handed to a subscriber's sender.", []string{"stream", "subscriber", "kind"}, nil),
		subDropped:         prometheus.NewDesc("whipgate_subscriber_packets_dropped_total", "Packets a slow subscriber lost to its full queue.", []string{"stream", "subscriber", "kind"}, nil),
		sessions:           prometheus.NewDesc("whipgate_sessions", "Live WHIP and WHEP sessions.", []string{"kind"}, nil),
		live:               prometheus.NewDesc("whipgate_stream_live", "1 while a stream has a live publisher.", []string{"stream"}, nil),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.layerBitrate, m.layerFPS, m.layerPackets, m.layerBytes, m.layerKeyframes,
		m.layerKeyframeBytes, m.subDelivered, m.subDropped, m.sessions, m.live} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.app.hub.Streams() {
		live := 0.0
		if s.Live {
			live = 1
		}
		ch <- prometheus.MustNewConstMetric(m.live, prometheus.GaugeValue, live, s.Name)
		for _, l := range s.Tracks {
			ch <- prometheus.MustNewConstMetric(m.layerBitrate, prometheus.GaugeValue, float64(l.BitrateBps), s.Name, l.Name, l.Codec.Name())
			ch <- prometheus.MustNewConstMetric(m.layerFPS, prometheus.GaugeValue, l.FPS, s.Name, l.Name)
			ch <- prometheus.MustNewConstMetric(m.layerPackets, prometheus.CounterValue, float64(l.Packets), s.Name, l.Name)
			ch <- prometheus.MustNewConstMetric(m.layerBytes, prometheus.CounterValue, float64(l.Bytes), s.Name, l.Name)
			ch <- prometheus.MustNewConstMetric(m.layerKeyframes, prometheus.CounterValue, float64(l.Keyframes), s.Name, l.Name)
			ch <- prometheus.MustNewConstMetric(m.layerKeyframeBytes, prometheus.GaugeValue, float64(l.KeyframeBytes), s.Name, l.Name)
		}
		for _, sub := range s.Subscribers {
			sid := strconv.FormatUint(sub.ID, 10)
			ch <- prometheus.MustNewConstMetric(m.subDelivered, prometheus.CounterValue, float64(sub.Delivered), s.Name, sid, sub.Kind)
			ch <- prometheus.MustNewConstMetric(m.subDropped, prometheus.CounterValue, float64(sub.Dropped), s.Name, sid, sub.Kind)
		}
	}
	counts := map[string]int{"whip": 0, "whep": 0}
	for _, s := range m.app.sessions.List() {
		counts[s.Kind]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(n), k)
	}
}
