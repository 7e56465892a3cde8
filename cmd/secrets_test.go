package cmd

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
			got, err := readSecretFile(writeFile(t, "secret", tc.content))
			checkErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	_, err := readSecretFile(filepath.Join(t.TempDir(), "nope"))
	checkErr(t, err, "no such file")
}

func TestLoadConfigEgressTokenFile(t *testing.T) {
	secret := writeFile(t, "sora", "sora-token\n")
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
			c, err := LoadConfig(writeFile(t, "c.yaml", tc.yaml))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (len(c.Egress) != 1 || c.Egress[0].Token != tc.wantToken) {
				t.Fatalf("got egress %+v, want one with token %q", c.Egress, tc.wantToken)
			}
		})
	}
}

func TestReadSecretFiles(t *testing.T) {
	api := writeFile(t, "api", "api-secret\n")
	pub := writeFile(t, "pub", "pub-secret\n")
	view := writeFile(t, "view", "view-secret\n")
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
			err := c.readSecretFiles()
			checkErr(t, err, tc.wantErr)
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
			// Start reads into its own copy; the caller's map stays.
			for name, sc := range tc.in.Streams {
				if sc.PublishTokenFile != "" && sc.PublishToken != "" {
					t.Errorf("the caller's stream %s changed: %+v", name, sc)
				}
			}
		})
	}
}

// A secret and its file are one setting across the layers: whichever the
// highest layer gives wins, and one layer giving both is an error.
func TestSecretPrecedence(t *testing.T) {
	secret := writeFile(t, "api", "from-file\n")
	withFile := writeFile(t, "a.yaml", "api_token_file: "+secret+"\n")
	withToken := writeFile(t, "b.yaml", "api_token: from-yaml\n")
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantToken string
		wantErr   string
	}{
		{name: "file's api_token_file", args: []string{"-config", withFile}, wantToken: "from-file"},
		{name: "environment token over the file's api_token_file", args: []string{"-config", withFile}, env: map[string]string{"WHIPGATE_API_TOKEN": "env"}, wantToken: "env"},
		{name: "environment file over the file's api_token", args: []string{"-config", withToken}, env: map[string]string{"WHIPGATE_API_TOKEN_FILE": secret}, wantToken: "from-file"},
		{name: "flag over the environment's file", args: []string{"-api-token", "flag"}, env: map[string]string{"WHIPGATE_API_TOKEN_FILE": secret}, wantToken: "flag"},
		{
			name:    "both in the environment",
			env:     map[string]string{"WHIPGATE_API_TOKEN": "env", "WHIPGATE_API_TOKEN_FILE": secret},
			wantErr: "WHIPGATE_API_TOKEN and WHIPGATE_API_TOKEN_FILE are both set; give one",
		},
		{
			name:    "both in the file",
			args:    []string{"-config", writeFile(t, "c.yaml", "api_token: x\napi_token_file: "+secret+"\n")},
			wantErr: "api_token and api_token_file are both set",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newServerFlags(io.Discard)
			if err := f.parse(tc.args); err != nil {
				t.Fatal(err)
			}
			c, err := f.config(env(tc.env))
			if err == nil {
				err = c.readSecretFiles() // as Start does
			}
			checkErr(t, err, tc.wantErr)
			if c.APIToken != tc.wantToken && tc.wantErr == "" {
				t.Fatalf("got api_token %q, want %q", c.APIToken, tc.wantToken)
			}
		})
	}
}

// Beyond loopback the token is required; one from a file counts, because
// Start reads the files before it validates.
func TestAPITokenFileSatisfiesBeyondLoopback(t *testing.T) {
	c := Config{Listen: "0.0.0.0:8443", APITokenFile: writeFile(t, "api", "tok\n")}
	c.applyDefaults(env(nil))
	if err := c.readSecretFiles(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v, want a valid config", err)
	}
}

func TestStartReadsStreamTokenFiles(t *testing.T) {
	pub := writeFile(t, "pub", "pub-secret\n")
	app := startApp(t, func(c *Config) {
		c.Streams = map[string]StreamConfig{"box": {PublishTokenFile: pub, ViewTokenFile: writeFile(t, "view", "view-secret")}}
	})
	if token, _, _ := app.publishPolicy("box"); token != "pub-secret" {
		t.Errorf("got publish token %q, want pub-secret", token)
	}
	if token := app.viewToken("box"); token != "view-secret" {
		t.Errorf("got view token %q, want view-secret", token)
	}

	cfg := loopbackConfig(t)
	cfg.Streams = map[string]StreamConfig{"box": {PublishToken: "k", PublishTokenFile: pub}}
	_, err := Start(context.Background(), cfg, nil, testLog(t))
	checkErr(t, err, "config: streams.box.publish_token and streams.box.publish_token_file are both set")
}

// The welcome text's curl line works as printed, and a token from a file
// is not printed: it names the file instead.
func TestWelcomeKeepsTokenFileSecret(t *testing.T) {
	path := writeFile(t, "it's secret", "s3cret\n")
	app := startApp(t, func(c *Config) { c.APITokenFile = path })
	var b strings.Builder
	printWelcome(&b, app)
	if strings.Contains(b.String(), "s3cret") {
		t.Fatalf("got welcome text\n%s\nwith the secret in it", b.String())
	}
	_, line, ok := strings.Cut(b.String(), "try: ")
	if !ok || !strings.Contains(line, "$(cat ") {
		t.Fatalf("got welcome text\n%s\nwant a curl line that reads the token file", b.String())
	}
	out, err := exec.CommandContext(t.Context(), "bash", "-c", strings.TrimSpace(line)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"streams"`) {
		t.Fatalf("the printed line %s gave %v:\n%s", line, err, out)
	}
}
