package h264synth

import (
	"fmt"
	"io"
)

var startCode = []byte{0, 0, 0, 1}

// AppendAnnexB appends nalus to dst in Annex-B byte stream format, each with
// a four-byte start code, and returns the extended slice.
func AppendAnnexB(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = append(dst, startCode...)
		dst = append(dst, n...)
	}
	return dst
}

// WriteAnnexB writes nalus to w in Annex-B byte stream format, each with a
// four-byte start code.
func WriteAnnexB(w io.Writer, nalus [][]byte) error {
	for _, n := range nalus {
		if _, err := w.Write(startCode); err != nil {
			return fmt.Errorf("h264synth: write start code: %w", err)
		}
		if _, err := w.Write(n); err != nil {
			return fmt.Errorf("h264synth: write NAL unit: %w", err)
		}
	}
	return nil
}
