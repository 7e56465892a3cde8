package cmd

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"whipgate/certs/certstest"
	"whipgate/cmd/config/configtest"
)

// Every help asked for exits 0 and says what the command does.
func TestRunHelp(t *testing.T) {
	var names []string
	for _, c := range subcommands() {
		names = append(names, "whipgate "+c.synopsis)
	}
	for _, tc := range []struct {
		args       []string
		wantStdout []string
		wantStderr []string
	}{
		{args: []string{"-h"}, wantStderr: append([]string{"whipgate [flags]", "run the server (the default)", "-listen address", "-config file",
			"tls.mode → WHIPGATE_TLS_MODE", "WHIPGATE_API_TOKEN_FILE"}, names...)},
		{args: []string{"-help"}, wantStderr: names},
		{args: []string{"--help"}, wantStderr: names},
		{args: []string{"help"}, wantStdout: append([]string{"-api-token token"}, names...)},
		{args: []string{"hwaccel", "-h"}, wantStderr: []string{"usage: whipgate hwaccel probe", "nvenc", "software"}},
		{args: []string{"hwaccel", "probe", "-h"}, wantStderr: []string{"usage: whipgate hwaccel probe", "-backends", "-timeout"}},
		{args: []string{"bench", "-h"}, wantStderr: []string{"usage: whipgate bench"}},
		{args: []string{"version", "-h"}, wantStderr: []string{"usage: whipgate version"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr certstest.LogTap
			if err := Run(t.Context(), tc.args, configtest.Env(nil), &stdout, &stderr); err != nil {
				t.Fatalf("got error %v, want none (exit 0)", err)
			}
			for _, w := range []struct {
				name string
				got  string
				want []string
			}{{"stdout", stdout.String(), tc.wantStdout}, {"stderr", stderr.String(), tc.wantStderr}} {
				for _, want := range w.want {
					if !strings.Contains(w.got, want) {
						t.Errorf("got %s\n%s\nwant it to contain %q", w.name, w.got, want)
					}
				}
			}
		})
	}
}

func TestRunCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr []string
	}{
		// hwaccel is named explicitly: the message once forgot it.
		{[]string{"nope"}, []string{`unknown command "nope"`, "hwaccel", "bench", "version", "help", "see -h"}},
		{[]string{"hwaccel"}, []string{"usage: whipgate hwaccel probe"}},
		{[]string{"hwaccel", "list"}, []string{`unknown command "list" for hwaccel (commands: probe)`}},
		{[]string{"version", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"-listen", "127.0.0.1:0", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"-no-such-flag"}, []string{"flag provided but not defined: -no-such-flag"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr certstest.LogTap
			err := Run(context.Background(), tc.args, configtest.Env(nil), &stdout, &stderr)
			for _, want := range tc.wantErr {
				configtest.CheckErr(t, err, want)
			}
		})
	}
}

// Each flag sets its field; TestConfigPrecedence has flags against the
// other layers.
func TestServerFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(c Config) bool
	}{
		{[]string{"-listen", "127.0.0.1:9001"}, func(c Config) bool { return c.Listen == "127.0.0.1:9001" }},
		{[]string{"-udp", "127.0.0.1:9002"}, func(c Config) bool { return c.WebRTC.UDPListen == "127.0.0.1:9002" }},
		{[]string{"-public-ip", "203.0.113.7,203.0.113.8"}, func(c Config) bool {
			return reflect.DeepEqual(c.WebRTC.PublicIPs, []string{"203.0.113.7", "203.0.113.8"})
		}},
		{[]string{"-public-url", "https://box"}, func(c Config) bool { return c.PublicURL == "https://box" }},
		{[]string{"-api-token", "tok"}, func(c Config) bool { return c.APIToken == "tok" }},
		{[]string{"-log-level", "debug"}, func(c Config) bool { return c.LogLevel == "debug" }},
		{[]string{"-log-format", "json"}, func(c Config) bool { return c.LogFormat == "json" }},
		{[]string{"-state-dir", "/s"}, func(c Config) bool { return c.StateDir == "/s" }},
		{[]string{"-no-test-source"}, func(c Config) bool { return c.TestSource == nil }},
		{[]string{"-no-test-source=false"}, func(c Config) bool { return c.TestSource.On() }},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := flagConfig(t, tc.args, configtest.Env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("got %+v, want the flag's value set", c)
			}
		})
	}
}
