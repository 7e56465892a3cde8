package cmd

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"whipgate/cmd/config/configtest"
)

// Flags over environment over file over defaults, one setting at a time
// through every layer.
func TestConfigPrecedence(t *testing.T) {
	file := configtest.WriteFile(t, "box.yaml", "listen: 127.0.0.1:9001\napi_token: file\nlog_level: warn\ntest_source: {stream: t2}\n")
	other := configtest.WriteFile(t, "other.yaml", "listen: 127.0.0.1:9009\n")
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantLstn  string // after defaults
		wantToken string
		wantLevel string
		wantTest  string // test stream, "" for none
	}{
		{name: "defaults", wantLstn: "127.0.0.1:8080", wantTest: "test"},
		{name: "file", args: []string{"-config", file}, wantLstn: "127.0.0.1:9001", wantToken: "file", wantLevel: "warn", wantTest: "t2"},
		{
			name:     "WHIPGATE_CONFIG names the file",
			env:      map[string]string{"WHIPGATE_CONFIG": file},
			wantLstn: "127.0.0.1:9001", wantToken: "file", wantLevel: "warn", wantTest: "t2",
		},
		{
			name:     "-config over WHIPGATE_CONFIG",
			args:     []string{"-config", other},
			env:      map[string]string{"WHIPGATE_CONFIG": file},
			wantLstn: "127.0.0.1:9009",
		},
		{
			name:     "environment over file",
			args:     []string{"-config", file},
			env:      map[string]string{"WHIPGATE_LISTEN": "127.0.0.1:9002", "WHIPGATE_API_TOKEN": "env", "WHIPGATE_TEST_SOURCE_STREAM": "t3"},
			wantLstn: "127.0.0.1:9002", wantToken: "env", wantLevel: "warn", wantTest: "t3",
		},
		{
			name:     "environment over defaults",
			env:      map[string]string{"WHIPGATE_LISTEN": "127.0.0.1:9002", "WHIPGATE_TEST_SOURCE_ENABLED": "false"},
			wantLstn: "127.0.0.1:9002",
		},
		{
			name:     "flags over environment and file",
			args:     []string{"-config", file, "-listen", "127.0.0.1:9003", "-api-token", "flag", "-no-test-source"},
			env:      map[string]string{"WHIPGATE_LISTEN": "127.0.0.1:9002", "WHIPGATE_API_TOKEN": "env", "WHIPGATE_LOG_LEVEL": "debug"},
			wantLstn: "127.0.0.1:9003", wantToken: "flag", wantLevel: "debug",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := flagConfig(t, tc.args, configtest.Env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyDefaults(configtest.Env(nil))
			gotTest := ""
			if c.TestSource.On() {
				gotTest = c.TestSource.Stream
			}
			if c.Listen != tc.wantLstn || c.APIToken != tc.wantToken || c.LogLevel != tc.wantLevel || gotTest != tc.wantTest {
				t.Fatalf("got listen %q, api_token %q, log_level %q, test stream %q\nwant %q, %q, %q, %q",
					c.Listen, c.APIToken, c.LogLevel, gotTest, tc.wantLstn, tc.wantToken, tc.wantLevel, tc.wantTest)
			}
		})
	}
}

func TestRunBadEnvironment(t *testing.T) {
	err := Run(t.Context(), nil, configtest.Env(map[string]string{"WHIPGATE_SHUTDOWN_GRACE": "abc"}), io.Discard, io.Discard)
	configtest.CheckErr(t, err, `environment: WHIPGATE_SHUTDOWN_GRACE: "abc" is not a duration`)
}

// The done-when: WHIPGATE_API_TOKEN alone, no flag and no file,
// protects the API of the server Run starts; so does
// WHIPGATE_API_TOKEN_FILE. Everything else comes from the environment too,
// to keep the run on loopback ports of its own.
func TestRunEnvAPITokenProtectsAPI(t *testing.T) {
	tokenFile := configtest.WriteFile(t, "api-token", "from-env-file\n")
	for _, tc := range []struct {
		name, variable, value, token, wantWelcome string
	}{
		{"WHIPGATE_API_TOKEN", "WHIPGATE_API_TOKEN", "from-env", "from-env", "Bearer $WHIPGATE_API_TOKEN"},
		{"WHIPGATE_API_TOKEN_FILE", "WHIPGATE_API_TOKEN_FILE", tokenFile, "from-env-file", "Bearer $(cat '" + tokenFile + "')"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, stdout := runServer(t, nil, configtest.Env(map[string]string{
				tc.variable:                    tc.value,
				"WHIPGATE_LISTEN":              "127.0.0.1:0",
				"WHIPGATE_UDP_LISTEN":          "127.0.0.1:0",
				"WHIPGATE_STATE_DIR":           t.TempDir(),
				"WHIPGATE_TEST_SOURCE_ENABLED": "false",
			}))
			for _, r := range []struct {
				path, token string
				want        int
			}{
				{"/api/v1/streams", "", http.StatusUnauthorized},
				{"/api/v1/streams", "wrong", http.StatusUnauthorized},
				{"/api/v1/streams", tc.token, http.StatusOK},
				{"/metrics", "", http.StatusUnauthorized},
				{"/metrics", tc.token, http.StatusOK},
			} {
				if code, body := request(t, "GET", base+r.path, r.token, ""); code != r.want {
					t.Errorf("GET %s with token %q: got %d %s, want %d", r.path, r.token, code, body, r.want)
				}
			}
			if !strings.Contains(stdout.String(), tc.wantWelcome) {
				t.Errorf("got welcome text\n%s\nwant its curl line to contain %s", stdout.String(), tc.wantWelcome)
			}
			if strings.Contains(stdout.String(), tc.token) {
				t.Errorf("the welcome text prints the token:\n%s", stdout.String())
			}
		})
	}
}
