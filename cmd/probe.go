package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"whipgate/hwaccel"
)

// runHwaccel is `whipgate hwaccel probe [-config file] [-backends a,b]`: it
// checks device files, then encoders, then a short real encode of both
// layers for each backend, prints a table, and fails when nothing works.
func runHwaccel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "probe" {
		return errors.New("usage: whipgate hwaccel probe [-config file] [-backends nvenc,vaapi,…] [-timeout 20s]")
	}
	fs := flag.NewFlagSet("whipgate hwaccel probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "whipgate config `file` whose hwaccel section sets sizes and codecs")
	backends := fs.String("backends", "", "comma-separated backends to probe (default: all)")
	timeout := fs.Duration("timeout", 20*time.Second, "time limit for each test encode")
	verbose := fs.Bool("v", false, "log each probe step")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var hw hwaccel.Config
	if *configPath != "" {
		cfg, err := LoadConfig(*configPath)
		if err != nil {
			return err
		}
		if cfg.Encoder != nil {
			hw = cfg.Encoder.Config
		}
	}
	opt := hwaccel.ProbeOptions{Timeout: *timeout}
	if *backends != "" {
		opt.Backends = strings.Split(*backends, ",")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	results, err := hwaccel.Probe(ctx, hw, opt, log)
	if werr := hwaccel.WriteTable(stdout, results); werr != nil {
		return werr
	}
	if errors.Is(err, hwaccel.ErrNothingWorks) {
		return fmt.Errorf("hwaccel probe: no backend works on this machine")
	}
	return err
}
