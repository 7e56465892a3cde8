package h264synth_test

import (
	"fmt"
	"os"
	"path/filepath"

	"whipgate/ingest/h264synth"
)

// Encode two seconds of the preview pattern into an Annex-B file that
// ffplay or any H.264 decoder can open.
func Example() {
	enc, err := h264synth.New(h264synth.Config{Width: 320, Height: 180, FPS: 30, Label: "preview"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var stream []byte
	keyframes := 0
	for range 2 * enc.FrameRate() {
		nalus, key := enc.Next()
		if key {
			keyframes++
		}
		stream = h264synth.AppendAnnexB(stream, nalus)
	}
	path := filepath.Join(os.TempDir(), "h264synth-example.h264")
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(path)
	fmt.Println(enc.ProfileLevelID(), keyframes, "keyframe")
	// Output: 42e00d 1 keyframe
}
