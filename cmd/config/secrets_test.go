package config

import (
	"path/filepath"
	"testing"

	"whipgate/cmd/config/configtest"
)

func TestReadSecretFile(t *testing.T) {
	for _, tc := range []struct {
		name, content, want, wantErr string
	}{
		{name: "newline", content: "tok\n", want: "tok"},
		{name: "CRLF", content: "tok\r\n", want: "tok"},
		{name: "no newline", content: "tok", want: "tok"},
		{name: "blank lines after", content: "tok\n\n", want: "tok"},
		{name: "spaces are the token's", content: " tok \n", want: " tok "},
		{name: "empty", content: "", wantErr: "is empty"},
		{name: "only a newline", content: "\n", wantErr: "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSecretFile(configtest.WriteFile(t, "secret", tc.content))
			configtest.CheckErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	_, err := readSecretFile(filepath.Join(t.TempDir(), "nope"))
	configtest.CheckErr(t, err, "no such file")
}

func TestLoadEgressTokenFile(t *testing.T) {
	secret := configtest.WriteFile(t, "sora", "sora-token\n")
	for _, tc := range []struct {
		name, yaml, wantToken, wantErr string
	}{
		{name: "token_file", yaml: "egress:\n  - {stream: box, url: https://example.com/whip, token_file: " + secret + "}\n", wantToken: "sora-token"},
		{name: "token", yaml: "egress:\n  - {stream: box, url: https://example.com/whip, token: t}\n", wantToken: "t"},
		{
			name:    "both",
			yaml:    "egress:\n  - {stream: box, url: https://example.com/whip, token: t, token_file: " + secret + "}\n",
			wantErr: "egress[0]: token and token_file are both set; give one",
		},
		{
			name:    "missing file",
			yaml:    "egress:\n  - {stream: a, url: https://example.com/whip}\n  - {stream: b, url: https://example.com/whip, token_file: /nonexistent/sora}\n",
			wantErr: "egress[1]: token_file: open /nonexistent/sora",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(configtest.WriteFile(t, "c.yaml", tc.yaml))
			configtest.CheckErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (len(c.Egress) != 1 || c.Egress[0].Token != tc.wantToken) {
				t.Fatalf("got egress %+v, want one with token %q", c.Egress, tc.wantToken)
			}
		})
	}
}

func TestReadSecretFiles(t *testing.T) {
	api := configtest.WriteFile(t, "api", "api-secret\n")
	pub := configtest.WriteFile(t, "pub", "pub-secret\n")
	view := configtest.WriteFile(t, "view", "view-secret\n")
	for _, tc := range []struct {
		name    string
		in      Config
		wantErr string
		want    Config // APIToken and Streams compared
	}{
		{
			name: "api_token_file",
			in:   Config{APITokenFile: api},
			want: Config{APIToken: "api-secret"},
		},
		{
			name: "stream token files",
			in:   Config{Streams: map[string]StreamConfig{"box": {PublishTokenFile: pub, ViewTokenFile: view}, "obs": {PublishToken: "k"}}},
			want: Config{Streams: map[string]StreamConfig{"box": {PublishToken: "pub-secret", ViewToken: "view-secret"}, "obs": {PublishToken: "k"}}},
		},
		{name: "api token both", in: Config{APIToken: "x", APITokenFile: api}, wantErr: "api_token and api_token_file are both set; give one"},
		{
			name:    "publish token both",
			in:      Config{Streams: map[string]StreamConfig{"box": {PublishToken: "x", PublishTokenFile: pub}}},
			wantErr: "streams.box.publish_token and streams.box.publish_token_file are both set",
		},
		{
			name:    "view token both",
			in:      Config{Streams: map[string]StreamConfig{"box": {ViewToken: "x", ViewTokenFile: view}}},
			wantErr: "streams.box.view_token and streams.box.view_token_file are both set",
		},
		{name: "missing file", in: Config{APITokenFile: "/nonexistent/api"}, wantErr: "api_token_file: open /nonexistent/api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			err := c.ReadSecretFiles()
			configtest.CheckErr(t, err, tc.wantErr)
			if err != nil {
				return
			}
			if c.APIToken != tc.want.APIToken {
				t.Errorf("got api_token %q, want %q", c.APIToken, tc.want.APIToken)
			}
			for name, want := range tc.want.Streams {
				got := c.Streams[name]
				if got.PublishToken != want.PublishToken || got.ViewToken != want.ViewToken {
					t.Errorf("got stream %s %+v, want tokens %q, %q", name, got, want.PublishToken, want.ViewToken)
				}
			}
			// cmd.Start reads into its own copy; the caller's map stays.
			for name, sc := range tc.in.Streams {
				if sc.PublishTokenFile != "" && sc.PublishToken != "" {
					t.Errorf("the caller's stream %s changed: %+v", name, sc)
				}
			}
		})
	}
}

// Beyond loopback the token is required; one from a file counts, because
// cmd.Start reads the files before it validates.
func TestAPITokenFileSatisfiesBeyondLoopback(t *testing.T) {
	c := Config{Listen: "0.0.0.0:8443", APITokenFile: configtest.WriteFile(t, "api", "tok\n")}
	c.ApplyDefaults(configtest.Env(nil))
	if err := c.ReadSecretFiles(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v, want a valid config", err)
	}
}
