package cmd

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"whipgate/cmd/config/configtest"
)

// A secret and its file are one setting across the layers: whichever the
// highest layer gives wins, and one layer giving both is an error.
func TestSecretPrecedence(t *testing.T) {
	secret := configtest.WriteFile(t, "api", "from-file\n")
	withFile := configtest.WriteFile(t, "a.yaml", "api_token_file: "+secret+"\n")
	withToken := configtest.WriteFile(t, "b.yaml", "api_token: from-yaml\n")
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
			args:    []string{"-config", configtest.WriteFile(t, "c.yaml", "api_token: x\napi_token_file: "+secret+"\n")},
			wantErr: "api_token and api_token_file are both set",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := flagConfig(t, tc.args, configtest.Env(tc.env))
			if err == nil {
				err = c.ReadSecretFiles() // as Start does
			}
			configtest.CheckErr(t, err, tc.wantErr)
			if c.APIToken != tc.wantToken && tc.wantErr == "" {
				t.Fatalf("got api_token %q, want %q", c.APIToken, tc.wantToken)
			}
		})
	}
}

func TestStartReadsStreamTokenFiles(t *testing.T) {
	pub := configtest.WriteFile(t, "pub", "pub-secret\n")
	app := startApp(t, func(c *Config) {
		c.Streams = map[string]StreamConfig{"box": {PublishTokenFile: pub, ViewTokenFile: configtest.WriteFile(t, "view", "view-secret")}}
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
	configtest.CheckErr(t, err, "config: streams.box.publish_token and streams.box.publish_token_file are both set")
}

// The welcome text's curl line works as printed, and a token from a file
// is not printed: it names the file instead.
func TestWelcomeKeepsTokenFileSecret(t *testing.T) {
	path := configtest.WriteFile(t, "it's secret", "s3cret\n")
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
