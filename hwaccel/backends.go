package hwaccel

import (
	"slices"
)

// BackendInfo describes one backend variant, for `whipgate hwaccel` listings
// and the docs.
type BackendInfo struct {
	Name    string      `json:"name"`
	Tool    Tool        `json:"tool"`
	Summary string      `json:"summary"`
	Inputs  []InputKind `json:"inputs"`
	Codecs  []CodecInfo `json:"codecs"`
	// Preferred is the variant used when Config.Tool is empty.
	Preferred bool `json:"preferred"`
	// Keyframes says how IDRs can be had besides the GOP.
	Keyframes string `json:"keyframes"`
	// Devices are the device paths the probe looks for (any one will do).
	Devices []string `json:"devices,omitempty"`
}

// CodecInfo is one codec a backend encodes.
type CodecInfo struct {
	Codec     Codec  `json:"codec"`
	Encoder   string `json:"encoder"`
	MaxWidth  int    `json:"max_width"`
	MaxHeight int    `json:"max_height"`
}

// Backends lists the built-in backend variants (custom excluded), sorted by
// name and tool.
func Backends() ([]BackendInfo, error) {
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	var out []BackendInfo
	for _, s := range cat.backends {
		bi := BackendInfo{Name: s.Name, Tool: s.Tool, Summary: s.Summary, Inputs: slices.Clone(s.Inputs),
			Preferred: s.Preferred, Keyframes: s.Keyframes, Devices: slices.Clone(s.Probe.Devices)}
		for _, c := range allCodecs {
			if cs := s.Codecs[c]; cs != nil {
				bi.Codecs = append(bi.Codecs, CodecInfo{Codec: c, Encoder: cs.Encoder, MaxWidth: cs.MaxWidth, MaxHeight: cs.MaxHeight})
			}
		}
		out = append(out, bi)
	}
	return out, nil
}
