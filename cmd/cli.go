package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"whipgate/cmd/bench"
	"whipgate/cmd/config"
)

// subcommand is one `whipgate <name>`. The table below is the one list that
// dispatch, -h and the unknown-command message read, so none of them can
// forget a command.
type subcommand struct {
	name     string
	synopsis string // after "whipgate "
	summary  string
	run      func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"hwaccel", "hwaccel probe [flags]", "test which hardware encoders work on this machine", runHwaccel},
		{"bench", "bench [flags]", "measure WHIP-to-WHEP fan-out (BENCHMARKS.md)",
			func(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
				return bench.Run(ctx, args, stdout, stderr)
			}},
		{"version", "version", "print the version, VCS revision and Go version", runVersion},
		{"help", "help", "print this help",
			func(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
				return writeUsage(stdout, newServerFlags(io.Discard).fs)
			}},
	}
}

func runSubcommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var names []string
	for _, c := range subcommands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
		names = append(names, c.name)
	}
	return fmt.Errorf("unknown command %q (commands: %s; or run the server with flags, see -h)", args[0], strings.Join(names, ", "))
}

// writeUsage is `whipgate -h`: the commands, then the server's flags.
func writeUsage(w io.Writer, fs *flag.FlagSet) error {
	var b strings.Builder
	const col = 32
	line := func(prefix, synopsis, summary string) {
		fmt.Fprintf(&b, "%s%-*s %s\n", prefix, col, "whipgate "+synopsis, summary)
	}
	line("usage: ", "[flags]", "run the server (the default)")
	for _, c := range subcommands() {
		line("       ", c.synopsis, c.summary)
	}
	b.WriteString("\nEach command has its own -h, as in `whipgate hwaccel -h`.\n\nflags:\n")
	prev := fs.Output()
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(prev)
	b.WriteString(`
environment:
  Every config key with a single value or a list of them is also a variable:
  WHIPGATE_ and the key's path in capitals, dots as _. For example
  listen → WHIPGATE_LISTEN, tls.mode → WHIPGATE_TLS_MODE,
  webrtc.udp_listen → WHIPGATE_WEBRTC_UDP_LISTEN (or WHIPGATE_UDP_LISTEN),
  webrtc.public_ips → WHIPGATE_WEBRTC_PUBLIC_IPS=203.0.113.7,198.51.100.2.
  WHIPGATE_CONFIG names the config file. streams and egress come only from
  the file. Flags win over the environment, the environment over the file.
  Tokens can come from files: api_token_file (WHIPGATE_API_TOKEN_FILE), and
  publish_token_file, view_token_file and token_file in the file.
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// serverFlags is the command line of the server, `whipgate [flags]`.
type serverFlags struct {
	fs *flag.FlagSet

	configFile, listen, udp, publicIP, publicURL, apiToken, logLevel, logFormat, stateDir string
	noTestSource, version                                                                 bool
}

func newServerFlags(stderr io.Writer) *serverFlags {
	f := &serverFlags{fs: flag.NewFlagSet("whipgate", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.Usage = func() { _ = writeUsage(stderr, fs) }
	fs.StringVar(&f.configFile, "config", "", "YAML config `file` (unknown keys are errors)")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen `address` (default 127.0.0.1:8080)")
	fs.StringVar(&f.udp, "udp", "", "WebRTC UDP `address` for all media (default: listen host, port 8189)")
	fs.StringVar(&f.publicIP, "public-ip", "", "comma-separated `IPs` to advertise in ICE candidates (NAT 1:1)")
	fs.StringVar(&f.publicURL, "public-url", "", "external base `URL` for Location headers")
	fs.StringVar(&f.apiToken, "api-token", "", "Bearer `token` for /api/v1 and /metrics")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json")
	fs.StringVar(&f.stateDir, "state-dir", "", "`directory` for state kept across restarts")
	fs.BoolVar(&f.noTestSource, "no-test-source", false, "do not start the built-in test stream")
	fs.BoolVar(&f.version, "version", false, "print the version, as the version command does, and exit")
	return f
}

// parse reads the command line into f.
func (f *serverFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	return nil
}

// config is the configuration the command line asks for, each layer over
// the one before: the embedded default or the config file (-config, else
// $WHIPGATE_CONFIG), then the WHIPGATE_* environment, then the flags given.
func (f *serverFlags) config(getenv func(string) string) (Config, error) {
	path := getenv(config.EnvConfigFile)
	if f.isSet("config") {
		path = f.configFile
	}
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	if err := config.ApplyEnv(&cfg, getenv); err != nil {
		return cfg, fmt.Errorf("environment: %w", err)
	}
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			cfg.Listen = f.listen
		case "udp":
			cfg.WebRTC.UDPListen = f.udp
		case "public-ip":
			cfg.WebRTC.PublicIPs = strings.Split(f.publicIP, ",")
		case "public-url":
			cfg.PublicURL = f.publicURL
		case "api-token":
			cfg.APIToken, cfg.APITokenFile = f.apiToken, "" // the flag replaces a token file below it
		case "log-level":
			cfg.LogLevel = f.logLevel
		case "log-format":
			cfg.LogFormat = f.logFormat
		case "state-dir":
			cfg.StateDir = f.stateDir
		case "no-test-source":
			if f.noTestSource {
				cfg.TestSource = nil
			}
		}
	})
	return cfg, nil
}

func (f *serverFlags) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// runVersion is `whipgate version`.
func runVersion(_ context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("whipgate version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: whipgate version\n\nPrints the version, the VCS revision and time, whether the tree was\nmodified, and the Go version this binary was built with.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	return ReadBuildInfo().Write(stdout)
}
