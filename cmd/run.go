package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Run is whipgate's command line: it parses args, starts the server, prints
// where to look, and stops cleanly when ctx ends (SIGINT/SIGTERM in main).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
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
	log, level := newLogger(cfg, stderr)
	// SIGHUP re-reads the configuration, as POST /api/v1/reload does. The
	// handler is in place before anything says the server is up (the
	// banner, READY=1): until then a SIGHUP would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	app, err := Start(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	app.setReloadSource(func() (Config, error) { return f.config(getenv) }, level)
	printWelcome(stdout, app)
	sd := newServiceManager(log)
	sd.ready()
	stopWatchdog := sd.watchdog(app.healthy)
	defer stopWatchdog()

	for {
		select {
		case <-hup:
			sd.reloading()
			if res, err := app.Reload(); err != nil {
				log.Error("reload refused; the running configuration stays", "err", err)
			} else {
				app.logReload(res)
			}
			sd.ready()
		case <-ctx.Done():
			sd.stopping()
			log.Info("shutting down")
			return app.Close(context.WithoutCancel(ctx))
		}
	}
}

// newLogger makes the process's logger; its level can change on reload.
func newLogger(cfg Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.LogLevel)) // validated; "" is info
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
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
