package hwaccel

import (
	"bytes"
	"fmt"
	"slices"
)

// nalUnits splits an Annex-B byte stream at its start codes.
func nalUnits(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		if start >= 0 {
			out = append(out, bytes.TrimRight(b[start:i], "\x00"))
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

func nalType(c Codec, n []byte) int {
	if c == H265 {
		return int(n[0]>>1) & 0x3f
	}
	return int(n[0] & 0x1f)
}

// accessUnits groups NAL unit types into access units, each opened by an
// access unit delimiter (which the templates ask every encoder for).
func accessUnits(c Codec, b []byte) ([][]int, error) {
	aud := 9
	if c == H265 {
		aud = 35
	}
	var aus [][]int
	for i, n := range nalUnits(b) {
		if len(n) == 0 {
			continue
		}
		t := nalType(c, n)
		if t == aud {
			aus = append(aus, nil)
			continue
		}
		if len(aus) == 0 {
			return nil, fmt.Errorf("NAL %d (type %d) before the first AUD", i, t)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], t)
	}
	return aus, nil
}

// checkGOP verifies that IDRs come exactly every gop access units, each
// preceded in its AU by the parameter sets, and that no other random access
// point (x265's CRA) appears.
func checkGOP(c Codec, aus [][]int, gop int) error {
	idr, params := []int{5}, []int{7, 8}
	other := []int{}
	if c == H265 {
		idr, params, other = []int{19, 20}, []int{32, 33, 34}, []int{16, 17, 18, 21}
	}
	if len(aus) < 2*gop+1 {
		return fmt.Errorf("only %d access units, want at least %d to see three IDRs", len(aus), 2*gop+1)
	}
	for i, au := range aus {
		isIDR := slices.ContainsFunc(au, func(t int) bool { return slices.Contains(idr, t) })
		if want := i%gop == 0; isIDR != want {
			return fmt.Errorf("access unit %d: IDR=%v, want %v (gop %d): NAL types %v", i, isIDR, want, gop, au)
		}
		for _, t := range other {
			if slices.Contains(au, t) {
				return fmt.Errorf("access unit %d has a non-IDR random access point (NAL %d): %v", i, t, au)
			}
		}
		if isIDR {
			for _, p := range params {
				if !slices.Contains(au, p) {
					return fmt.Errorf("IDR access unit %d lacks parameter set NAL %d: %v", i, p, au)
				}
			}
		}
	}
	return nil
}
