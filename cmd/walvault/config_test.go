package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
)

// everySetting binds every setting once, as the commands that read them
// do; its values land in the first command's options that binds each.
type everySetting struct {
	push  walPushOptions
	fetch walFetchOptions
	check checkOptions
	del   deleteOptions
}

func (o *everySetting) common() *Config { return &o.push.Config }

func (o *everySetting) bind(b *binder) {
	var all binder
	o.push.bind(&all)
	o.fetch.bind(&all)
	o.check.bind(&all)
	o.del.bind(&all)
	seen := map[string]bool{}
	for _, s := range all.bound {
		if !seen[s.name] {
			seen[s.name] = true
			b.bound = append(b.bound, s)
		}
	}
	b.checks = all.checks
}

// resolveAll runs a command line through the real flags of every setting
// and returns the resolved configuration (wal-push's options hold the
// repository, S3 and timeout settings).
func resolveAll(t *testing.T, env map[string]string, args ...string) (walPushOptions, error) {
	t.Helper()
	var probe everySetting
	err := resolveFor(t, &probe, env, args...)
	return probe.push, err
}

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "walvault.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeYAML(t, "repo: file:///from/file\ntimeout: 7s\ns3-path-style: true\ncompression: none\n")
	tests := []struct {
		name        string
		env         map[string]string
		args        []string
		wantRepo    string
		wantTimeout time.Duration
		wantPath    bool
	}{
		{"defaults", map[string]string{"WALVAULT_REPO": "file:///env"}, nil, "file:///env", 2 * time.Minute, false},
		{"file over default", nil, []string{"--config", file}, "file:///from/file", 7 * time.Second, true},
		{"env over file", map[string]string{"WALVAULT_REPO": "file:///env", "WALVAULT_CONFIG": file}, nil, "file:///env", 7 * time.Second, true},
		{"flag over env", map[string]string{"WALVAULT_REPO": "file:///env", "WALVAULT_TIMEOUT": "9s"}, []string{"--repo", "file:///flag", "--config", file}, "file:///flag", 9 * time.Second, true},
		{"bool flag false over file true", nil, []string{"--config", file, "--s3-path-style=false"}, "file:///from/file", 7 * time.Second, false},
		{"bool env false over file true", map[string]string{"WALVAULT_S3_PATH_STYLE": "false"}, []string{"--config", file}, "file:///from/file", 7 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := resolveAll(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Repo != tc.wantRepo || cfg.Timeout != tc.wantTimeout || cfg.S3.PathStyle != tc.wantPath {
				t.Fatalf("got repo %q timeout %v path-style %v, want %q %v %v", cfg.Repo, cfg.Timeout, cfg.S3.PathStyle, tc.wantRepo, tc.wantTimeout, tc.wantPath)
			}
		})
	}
}

// TestRestoreFileOverEnvironment: the settings file restore writes for
// restore_command beats the server's environment (which may name another
// repository, where recovery would end early), not the command line; the
// variables it overrode are named for a warning.
func TestRestoreFileOverEnvironment(t *testing.T) {
	file := writeYAML(t, restore.ConfigFileMarker+" for restore_command\nrepo: file:///restored/from\ns3-path-style: true\n")
	tests := []struct {
		name        string
		env         map[string]string
		args        []string
		wantRepo    string
		wantPath    bool
		wantTimeout time.Duration
		wantIgnored string
	}{
		{"file over env", map[string]string{"WALVAULT_REPO": "file:///elsewhere", "WALVAULT_S3_PATH_STYLE": "false"}, []string{"--config", file},
			"file:///restored/from", true, 2 * time.Minute, "WALVAULT_REPO,WALVAULT_S3_PATH_STYLE"},
		{"env of the same values", map[string]string{"WALVAULT_REPO": "file:///restored/from", "WALVAULT_S3_PATH_STYLE": "1"}, []string{"--config", file},
			"file:///restored/from", true, 2 * time.Minute, ""},
		{"env for what the file leaves out", map[string]string{"WALVAULT_TIMEOUT": "9s"}, []string{"--config", file},
			"file:///restored/from", true, 9 * time.Second, ""},
		{"flag over file", map[string]string{"WALVAULT_REPO": "file:///elsewhere"}, []string{"--config", file, "--repo", "file:///flag", "--s3-path-style=false"},
			"file:///flag", false, 2 * time.Minute, ""},
		// A flag beside a variable of the same value is a flag all the
		// same (explore24c F2).
		{"flag over file, the env alike", map[string]string{"WALVAULT_REPO": "file:///flag", "WALVAULT_S3_PATH_STYLE": "false"}, []string{"--config", file, "--repo=file:///flag", "-s3-path-style=false"},
			"file:///flag", false, 2 * time.Minute, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := resolveAll(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Repo != tc.wantRepo || cfg.S3.PathStyle != tc.wantPath || cfg.Timeout != tc.wantTimeout || cfg.envIgnored != tc.wantIgnored {
				t.Fatalf("got repo %q path-style %v timeout %v ignored %q, want %q %v %v %q", cfg.Repo, cfg.S3.PathStyle, cfg.Timeout, cfg.envIgnored, tc.wantRepo, tc.wantPath, tc.wantTimeout, tc.wantIgnored)
			}
		})
	}
	// What neither picks nor reaches the repository follows the server's
	// environment, without a warning (explore22d F7).
	styled := writeYAML(t, restore.ConfigFileMarker+" for restore_command\nrepo: file:///restored/from\nlog-format: text\n")
	cfg, err := resolveAll(t, map[string]string{"WALVAULT_LOG_FORMAT": "json"}, "--config", styled)
	if err != nil || cfg.LogFormat != "json" || cfg.envIgnored != "" {
		t.Fatalf("WALVAULT_LOG_FORMAT=json beside the restore file's log-format: %q, ignored %q, %v; want json, nothing ignored", cfg.LogFormat, cfg.envIgnored, err)
	}
}

// TestConfigFileValuesAsWritten: a value in the YAML file means what the
// same text means as a flag or a variable: "030" is 30 days, not YAML's
// octal 24.
func TestConfigFileValuesAsWritten(t *testing.T) {
	fromFile, err := resolveAll(t, nil, "--config", writeYAML(t, "repo: s3://b/p\nlock-mode: governance\nlock-days: 030\n"))
	if err != nil {
		t.Fatal(err)
	}
	fromEnv, err := resolveAll(t, map[string]string{"WALVAULT_REPO": "s3://b/p", "WALVAULT_LOCK_MODE": "governance", "WALVAULT_LOCK_DAYS": "030"})
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.policy() != fromEnv.policy() || fromFile.LockDays != 30 {
		t.Fatalf("lock-days 030: from the file %+v, from the environment %+v; want 30 days both", fromFile.policy(), fromEnv.policy())
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no repository", nil, nil, "WALVAULT_REPO"},
		{"bad timeout", map[string]string{"WALVAULT_REPO": "file:///x", "WALVAULT_TIMEOUT": "soon"}, nil, "WALVAULT_TIMEOUT"},
		{"bad part size", map[string]string{"WALVAULT_REPO": "file:///x"}, []string{"--s3-part-size", "1MiB"}, "5MiB"},
		{"bad log level", map[string]string{"WALVAULT_REPO": "file:///x", "WALVAULT_LOG_LEVEL": "loud"}, nil, "log-level"},
		{"unknown YAML key", nil, []string{"--config", writeYAML(t, "repo: file:///x\ntimeuot: 1s\n")}, `unknown setting "timeuot"`},
		{"nested YAML", nil, []string{"--config", writeYAML(t, "repo:\n  url: x\n")}, "single value"},
		{"missing config file", nil, []string{"--config", "/nonexistent/walvault.yaml"}, "read config file"},
		{"bad value in the YAML file", nil, []string{"--config", writeYAML(t, "repo: file:///x\ntimeout: 10 minutes\n")}, "(the value is timeout's, in /"},
		{"a setting given twice in the YAML file", nil, []string{"--config", writeYAML(t, "repo: file:///x\nrepo: file:///y\n")}, `setting "repo" is given twice`},
		{"a second YAML document", nil, []string{"--config", writeYAML(t, "repo: file:///x\n---\ntimeout: 10m\n")}, "more than one YAML document"},
		{"YAML's 3_0 is no number", nil, []string{"--config", writeYAML(t, "repo: s3://b/p\nlock-mode: governance\nlock-days: 3_0\n")}, "lock-days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveAll(t, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			var ue usageError
			if !asUsage(err, &ue) {
				t.Fatalf("err = %T, want a usage error (exit 2)", err)
			}
		})
	}
}

func asUsage(err error, target *usageError) bool {
	u, ok := err.(usageError)
	*target = u
	return ok
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"16MiB", 16 << 20, false}, {"8MB", 8e6, false}, {"1048576", 1 << 20, false}, {"2 GiB", 2 << 30, false},
		{"", 0, true}, {"-1MiB", 0, true}, {"lots", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		command string
		err     error
		want    int
	}{
		{"wal-push", nil, 0},
		{"wal-push", usagef("bad"), 2},
		{"wal-push", io.ErrUnexpectedEOF, 1},
		{"wal-fetch", fmt.Errorf("fetch x: %w", storage.ErrNotFound), 1},
		{"wal-push", fmt.Errorf("stat x: %w", storage.ErrNotFound), 1},
		{"wal-fetch", usagef("bad"), 200},
		{"wal-fetch", io.ErrUnexpectedEOF, 200},
		{"wal-fetch", standbyFailure{io.ErrUnexpectedEOF}, 1},
	} {
		if got := exitCode(tc.command, tc.err); got != tc.want {
			t.Errorf("exitCode(%s, %v) = %d, want %d", tc.command, tc.err, got, tc.want)
		}
	}
}

func TestHelpShowsTheConfLine(t *testing.T) {
	for cmd, want := range map[string]string{"wal-push": "archive_command = 'walvault wal-push %p'", "wal-fetch": "restore_command = 'GOTRACEBACK=crash walvault wal-fetch %f %p'"} {
		var out strings.Builder
		if code := run(context.Background(), []string{"walvault", cmd, "--help"}, &out, &out); code != 0 {
			t.Fatalf("%s --help exited %d", cmd, code)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s --help lacks %q:\n%s", cmd, want, out.String())
		}
	}
}

// TestHTTPEndpointNeedsAllowHTTP: an http:// endpoint is refused on one
// line, exit 2, saying why, unless s3-allow-http is set.
func TestHTTPEndpointNeedsAllowHTTP(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "s3://bucket/prefix")
	t.Setenv("WALVAULT_S3_ENDPOINT", "http://127.0.0.1:1")
	code, _, stderr := runCmd(t, "backup-list")
	if code != exitUsage || !strings.Contains(stderr, "s3-allow-http") || !strings.Contains(stderr, "unencrypted") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("http:// endpoint: exit %d, stderr %q; want exit 2 and one line naming s3-allow-http", code, stderr)
	}
	t.Setenv("WALVAULT_S3_ALLOW_HTTP", "true")
	t.Setenv("WALVAULT_TIMEOUT", "1s")
	if _, _, stderr := runCmd(t, "backup-list"); strings.Contains(stderr, "s3-allow-http") {
		t.Fatalf("with s3-allow-http: still refused: %q", stderr)
	}
}

// TestKnownEnvVars: every WALVAULT_* variable a command's flag reads is
// known to unknownEnvVars, and a misspelled one is not.
func TestKnownEnvVars(t *testing.T) {
	var all []string
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		for _, f := range cmd.Flags {
			if e, ok := f.(interface{ GetEnvVars() []string }); ok {
				for _, name := range e.GetEnvVars() {
					all = append(all, name+"=x")
				}
			}
		}
	}
	if len(all) < 20 {
		t.Fatalf("found only %d flag variables: %v", len(all), all)
	}
	if unknown := unknownEnvVars(all); len(unknown) != 0 {
		t.Fatalf("flag variables unknownEnvVars does not know: %v (add them to commandEnvVars)", unknown)
	}
	got := unknownEnvVars([]string{"WALVAULT_REPOSITORY=file:///x", "WALVAULT_REPO=file:///x", "WALVAULT_LOCK_DAY=5", "WALVAULT_BENCH_SCALE=20", "WALVAULT_ON_FAILURE=page", "PGDATA=/x"})
	if strings.Join(got, ",") != "WALVAULT_LOCK_DAY,WALVAULT_REPOSITORY" {
		t.Fatalf("unknown variables: %v; want the two misspelled ones", got)
	}
}

// TestEmptyVariableSetsNothing: WALVAULT_REPO= (a blank line in a systemd
// EnvironmentFile) leaves the config file's repository in force.
func TestEmptyVariableSetsNothing(t *testing.T) {
	cfg, err := resolveAll(t, map[string]string{"WALVAULT_REPO": ""}, "--config", writeYAML(t, "repo: file:///from/file\n"))
	if err != nil || cfg.Repo != "file:///from/file" {
		t.Fatalf("an empty WALVAULT_REPO beside the file's repo: %q, %v; want the file's", cfg.Repo, err)
	}
	// A boolean too (explore22d F5): urfave/cli reads the blank variable
	// as false, which must not beat the file's true.
	cfg, err = resolveAll(t, map[string]string{"WALVAULT_S3_PATH_STYLE": "", "WALVAULT_S3_ALLOW_HTTP": ""}, "--config",
		writeYAML(t, "repo: s3://bkt/db1\ns3-endpoint: http://127.0.0.1:9000\ns3-path-style: true\ns3-allow-http: true\n"))
	if err != nil || !cfg.S3.PathStyle || !cfg.AllowHTTP {
		t.Fatalf("empty boolean variables beside the file's true: path style %v, allow http %v, %v; want the file's", cfg.S3.PathStyle, cfg.AllowHTTP, err)
	}
}

// TestPositiveDuration: Go's durations and whole days; nothing else.
func TestPositiveDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{{"26h", 26 * time.Hour, false}, {"30d", 30 * 24 * time.Hour, false}, {"90s", 90 * time.Second, false},
		{"0d", 0, true}, {"1.5d", 0, true}, {"-1h", 0, true}, {"soon", 0, true}, {"0", 0, true}} {
		var got time.Duration
		err := positiveDuration("max-backup-age", "26h", &got)(tc.in)
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("%q: %v, %v; want %v (bad: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
