package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc"
)

// FuzzLoadConfig reads YAML files as -config does and runs what Start
// runs on them before anything starts: applyDefaults, then Validate. None
// of it may panic; applyDefaults is idempotent; and a config Validate
// passes holds no NaN or infinite number (which every range check lets
// through) and only ICE servers pion takes (one it refuses fails every
// session). Seeds are the example configs and the docs' snippets.
func FuzzLoadConfig(f *testing.F) {
	for _, glob := range []string{"../../examples/*.yaml", "../../docs/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range files {
			raw, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Add([]byte(`listen: 0.0.0.0:8443
api_token: x
log_level: debug
shutdown_grace: 5s
webrtc:
  udp_listen: 0.0.0.0:8189
  public_ips: [203.0.113.5]
  ice_servers:
    - urls: ["stun:stun.l.google.com:19302"]
    - urls: ["turn:turn.example.net:3478?transport=udp"]
      username: "1700000000:box"
      credential: c2VjcmV0
  nack_history: 4096
hub:
  queue_packets: 4096
  keyframe_interval: 500ms
whep:
  gather_timeout: 2s
streams:
  cam:
    publish_token: k
    view_token: v
    takeover: true
egress:
  - id: sora
    stream: cam
    url: https://sora.example/whip/ch
    token: t
    layers: [main, preview]
    mode: simulcast
    rid_style: sora
    pacing_factor: 3
    relay_only: true
    ice_servers:
      - urls: ["turns:turn.example.net:443?transport=tcp"]
        username: u
        credential: p
test_source:
  stream: test
  main: {width: 1280, height: 720, fps: 30, gop: 30}
hwaccel:
  stream: box
  backend: software
  tool: ffmpeg
  input: {kind: testsrc, width: 640, height: 360, fps: 30}
  layers:
    - {name: main, codec: h264, width: 640, height: 360, transport: pipe}
  watchdog: {stall: 2s, low_fps: 0.8}
tls:
  mode: self-signed
  names: [box.local]
`))
	api := webrtc.NewAPI()
	dir := f.TempDir()
	getenv := func(k string) string {
		if k == "HOME" {
			return "/home/fuzz"
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "whipgate.yaml")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			return
		}
		cfg.ApplyDefaults(getenv)
		twice, err := Load(path)
		if err != nil {
			t.Fatalf("the second load failed: %v", err)
		}
		twice.ApplyDefaults(getenv)
		twice.ApplyDefaults(getenv)
		if _, nan := nonFinite(reflect.ValueOf(cfg), ""); !nan && !reflect.DeepEqual(cfg, twice) {
			t.Fatalf("applyDefaults twice differs from once:\n%+v\n%+v", cfg, twice)
		}
		if cfg.Validate() != nil {
			return
		}
		if path, ok := nonFinite(reflect.ValueOf(cfg), "config"); ok {
			t.Fatalf("Validate passed %s, which is not a finite number", path)
		}
		servers := cfg.WebRTC.ICEServers
		for _, e := range cfg.Egress {
			servers = append(servers, e.ICEServers...)
		}
		for _, s := range servers {
			if _, err := api.NewICEGatherer(webrtc.ICEGatherOptions{ICEServers: rtc.PionICEServers([]rtc.ICEServer{s})}); err != nil {
				t.Fatalf("Validate passed ICE server %+v, which pion refuses: %v", s, err)
			}
		}
	})
}

// nonFinite finds a NaN or infinite float in v and returns its path.
func nonFinite(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return path, true
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nonFinite(v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if p, ok := nonFinite(v.Field(i), path+"."+v.Type().Field(i).Name); ok {
				return p, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p, ok := nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if p, ok := nonFinite(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key())); ok {
				return p, true
			}
		}
	}
	return "", false
}
