package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Run is whipgate's command line: it parses args, starts the server, prints
// where to look, and stops cleanly when ctx ends (SIGINT/SIGTERM in main).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return runSubcommand(ctx, args, getenv, stdout, stderr)
	}
	f := newServerFlags(stderr)
	if err := f.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.version {
		return ReadBuildInfo().Write(stdout)
	}
	cfg, err := f.config(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	app, err := Start(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	printWelcome(stdout, app)
	<-ctx.Done()
	log.Info("shutting down")
	return app.Close(context.WithoutCancel(ctx))
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// printWelcome tells a newcomer where the player is and gives a curl line
// that works as printed.
func printWelcome(w io.Writer, app *App) {
	base := app.URL()
	fmt.Fprintf(w, "whipgate is running at %s\n", base)
	if t := app.cfg.TestSource; t.On() {
		fmt.Fprintf(w, "  watch the test stream: %s/play/%s\n", base, t.Stream)
	}
	fmt.Fprintf(w, "  all streams:           %s/\n", base)
	fmt.Fprintf(w, "  publish (OBS, WHIP):   %s/whip/{name}\n", base)
	auth := ""
	switch {
	case app.cfg.APITokenFile != "":
		// A token from a file is a secret kept out of logs: name the file.
		auth = ` -H "Authorization: Bearer $(cat ` + shellQuote(app.cfg.APITokenFile) + `)"`
	case app.cfg.APIToken != "":
		// Never the token itself: the banner ends up in logs and terminals.
		auth = ` -H "Authorization: Bearer $WHIPGATE_API_TOKEN"`
	}
	insecure := ""
	if app.certs.Mode() == "self-signed" {
		insecure = " -k"
		fmt.Fprintf(w, "  TLS certificate SHA-256: %s\n", app.certs.Fingerprint())
	}
	fmt.Fprintf(w, "  try: curl -s%s%s %s/api/v1/streams\n", insecure, auth, base)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
