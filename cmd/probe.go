package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"whipgate/cmd/config"
	"whipgate/hwaccel"
)

// runHwaccel is `whipgate hwaccel probe [-config file] [-backends a,b]`: it
// checks device files, then encoders, then a short real encode of both
// layers for each backend, prints a table, and fails when nothing works.
// The hwaccel section comes from the config file and the environment, as
// the server's does.
func runHwaccel(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: whipgate hwaccel probe [-config file] [-backends nvenc,vaapi,…] [-timeout 20s]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "probe":
	case "-h", "-help", "--help":
		return writeHwaccelUsage(stderr, usage)
	default:
		return fmt.Errorf("unknown command %q for hwaccel (commands: probe)", args[0])
	}
	fs := flag.NewFlagSet("whipgate hwaccel probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "whipgate config `file` whose hwaccel section sets sizes and codecs (default $WHIPGATE_CONFIG)")
	backends := fs.String("backends", "", "comma-separated backends to probe (default: all)")
	timeout := fs.Duration("timeout", 20*time.Second, "time limit for each test encode")
	verbose := fs.Bool("v", false, "log each probe step")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	path := getenv(config.EnvConfigFile)
	if *configPath != "" {
		path = *configPath
	}
	var cfg Config
	if path != "" {
		var err error
		if cfg, err = config.DecodeFile(path); err != nil {
			return err
		}
	}
	if err := config.ApplyEnv(&cfg, getenv); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	var hw hwaccel.Config
	if cfg.Encoder != nil {
		hw = cfg.Encoder.Config
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

// writeHwaccelUsage is `whipgate hwaccel -h`; the backends come from the
// catalog, so a new one is listed without editing this.
func writeHwaccelUsage(w io.Writer, usage string) error {
	var names []string
	if list, err := hwaccel.Backends(); err == nil {
		for _, b := range list {
			if !slices.Contains(names, b.Name) {
				names = append(names, b.Name)
			}
		}
	}
	_, err := fmt.Fprintf(w, "%s\n\n"+
		"probe checks the device files, then the encoders, then a short real encode of\n"+
		"each layer, for every backend: %s.\n"+
		"It prints a table and fails when none works. Its flags: whipgate hwaccel probe -h\n",
		usage, strings.Join(names, ", "))
	return err
}
