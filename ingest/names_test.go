package ingest

import (
	"errors"
	"testing"

	"whipgate/gateway"
	"whipgate/hwaccel"
)

// Stream and layer names are checked when a source is configured, not
// when its first Publish fails.
func TestSourceNames(t *testing.T) {
	hub := newTestHub(t, testLog(t))
	supervisor := func(layer string) *hwaccel.Supervisor {
		t.Helper()
		sup, err := hwaccel.NewSupervisor(hwaccel.Config{Layers: []hwaccel.LayerConfig{{Name: layer}}}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		return sup
	}
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"rtp layer", func() error { return RTPConfig{Layer: "main hd", Codec: gateway.H264}.Validate() }},
		{"rtp source stream", func() error {
			return RTPSourceConfig{Stream: "cam/1", Layers: []RTPConfig{{Codec: gateway.H264}}}.Validate()
		}},
		{"rtp source layer", func() error {
			return RTPSourceConfig{Stream: "cam", Layers: []RTPConfig{{Layer: "preview.low", Codec: gateway.H264}}}.Validate()
		}},
		{"pipe layer", func() error { return PipeConfig{Layer: "x\n", Codec: gateway.H264}.Validate() }},
		{"test source stream", func() error { return TestSourceConfig{Stream: "test source"}.Validate() }},
		{"new test source", func() error { _, err := NewTestSource(TestSourceConfig{Stream: "a b"}, hub, testLog(t)); return err }},
		{"encoder stream", func() error { _, err := NewEncoderSource("box?", supervisor("main"), hub, testLog(t)); return err }},
		{"encoder layer", func() error {
			_, err := NewEncoderSource("box", supervisor("main.8k"), hub, testLog(t))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, gateway.ErrBadName) {
				t.Errorf("got %v, want ErrBadName", err)
			}
		})
	}
	if err := (TestSourceConfig{}).Validate(); err != nil {
		t.Errorf("the default test source: got %v, want no error", err)
	}
}
