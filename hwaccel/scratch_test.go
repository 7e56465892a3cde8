package hwaccel

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	rs, err := Probe(t.Context(), Config{}, ProbeOptions{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	fmt.Println(err)
	WriteTable(os.Stdout, rs)
	for _, r := range rs {
		if r.Stage == StageTest {
			fmt.Println(r.Backend, r.Output)
		}
	}
}
