package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// resolveFor resolves opts from a command line and env alone, as a
// command does (the process's WALVAULT_* variables are cleared).
func resolveFor(t *testing.T, opts options, env map[string]string, args ...string) error {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "WALVAULT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	app := &cli.App{
		Writer: io.Discard, ErrWriter: io.Discard,
		Commands: []*cli.Command{{
			Name:   "probe",
			Flags:  settingFlags(opts),
			Action: func(c *cli.Context) error { return resolve(c, opts) },
		}},
	}
	line := append([]string{"walvault", "probe"}, args...)
	app.Metadata = map[string]any{argsKey: line} // as runApp does
	return app.RunContext(context.Background(), line)
}

// TestTimeoutDefaults: wal-fetch, whose failure stops recovery, waits 10
// minutes by default, and so does the restore_command restore sets up;
// wal-push, which PostgreSQL retries, keeps 2 minutes. A setting still
// wins.
func TestTimeoutDefaults(t *testing.T) {
	repo := map[string]string{"WALVAULT_REPO": "file:///r"}
	var push walPushOptions
	var fetch walFetchOptions
	var rest restoreConfig
	for _, tc := range []struct {
		name    string
		opts    options
		timeout *time.Duration
		want    time.Duration
	}{
		{"wal-push", &push, &push.Timeout, 2 * time.Minute},
		{"wal-fetch", &fetch, &fetch.Timeout, 10 * time.Minute},
		{"restore", &rest, &rest.Timeout, 10 * time.Minute},
	} {
		if err := resolveFor(t, tc.opts, repo); err != nil {
			t.Fatal(err)
		}
		if *tc.timeout != tc.want {
			t.Errorf("%s: default timeout %v, want %v", tc.name, *tc.timeout, tc.want)
		}
		if err := resolveFor(t, tc.opts, map[string]string{"WALVAULT_REPO": "file:///r", "WALVAULT_TIMEOUT": "45s"}); err != nil {
			t.Fatal(err)
		}
		if *tc.timeout != 45*time.Second {
			t.Errorf("%s: timeout %v with WALVAULT_TIMEOUT=45s, want 45s", tc.name, *tc.timeout)
		}
	}
	if err := resolveFor(t, &rest, repo); err != nil {
		t.Fatal(err)
	}
	yaml, err := rest.yaml()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(yaml), "timeout: 10m0s") {
		t.Errorf("walvault-restore.yaml for restore_command:\n%s\nwant timeout: 10m0s", yaml)
	}
	for command, want := range map[string]string{"wal-fetch": "(default: 10m)", "wal-push": "(default: 2m)"} {
		_, out, _ := runCmd(t, command, "--help")
		line := flagLine(out, "--timeout")
		if !strings.Contains(line, want) || !strings.Contains(line, "retried until it") {
			t.Errorf("%s --help: timeout line %q, want it to say storage errors are retried until it, %s", command, line, want)
		}
	}
}

// flagLine is the line of a --help output that lists flag.
func flagLine(out, flag string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), flag+" ") {
			return line
		}
	}
	return ""
}

// TestRestoreFileRecordsReach: an endpoint and region that the AWS
// configuration set (not walvault's settings) go into
// walvault-restore.yaml all the same: restore_command runs in the
// server's environment, which may lack them, and would then ask AWS
// (explore24c F5).
func TestRestoreFileRecordsReach(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3": "https://s3.example.test:9000", "AWS_REGION": "eu-west-3",
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
	} {
		t.Setenv(k, v)
	}
	var rest restoreConfig
	if err := resolveFor(t, &rest, map[string]string{"WALVAULT_REPO": "s3://bkt/db1"}); err != nil {
		t.Fatal(err)
	}
	b, err := openBackend(t.Context(), rest.Config, slog.New(slog.DiscardHandler), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rest.recordReach(b)
	yaml, err := rest.yaml()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"s3-endpoint: https://s3.example.test:9000", "s3-region: eu-west-3"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("walvault-restore.yaml:\n%s\nwant %q", yaml, want)
		}
	}
}
