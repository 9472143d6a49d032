package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repoSettings are what every command that opens the repository reads.
var repoSettings = []string{"repo", "s3-endpoint", "s3-region", "s3-path-style", "s3-allow-http", "s3-sse", "s3-sse-kms-key-id", "s3-ca-bundle", "log-level", "log-format"}

// commandSettings is, per command, the settings beyond repoSettings it
// reads: what its --help lists and the README's configuration reference
// says.
var commandSettings = map[string][]string{
	"wal-push":     {"s3-part-size", "s3-concurrency", "compression", "lock-mode", "lock-days", "encrypt-to", "upload-concurrency", "helper", "timeout"},
	"wal-fetch":    {"compression", "decrypt-with", "prefetch", "helper", "timeout"},
	"wal-prefetch": {"compression", "decrypt-with"},
	"wal-receive":  {"s3-part-size", "s3-concurrency", "pg-conn", "compression", "lock-mode", "lock-days", "encrypt-to", "timeout"},
	"backup-push":  {"s3-part-size", "s3-concurrency", "pg-conn", "compression", "lock-mode", "lock-days", "encrypt-to", "max-rate", "timeout"},
	"backup-list":  {"timeout"},
	"info":         {"decrypt-with", "timeout"},
	"backup-mark":  {"timeout"},
	"restore":      {"compression", "decrypt-with", "max-rate", "timeout"},
	"delete":       {"retain", "decrypt-with", "timeout"},
	"verify":       {"decrypt-with", "timeout"},
	"check":        {"pg-conn", "lock-mode", "lock-days", "retain", "decrypt-with", "max-backup-age", "min-backups", "timeout"},
	"repair":       {},
	"keys":         {},
	"drill":        {"compression", "decrypt-with", "timeout"},
	"exporter":     {"pg-conn"},
	"wal-helper":   {},
}

// helpFlags are the flags a command's --help lists.
func helpFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	code, out, errOut := runCmd(t, command, "--help")
	if code != exitOK {
		t.Fatalf("%s --help: exit %d\n%s", command, code, errOut)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(out, -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("%s --help lists no flags:\n%s", command, out)
	}
	return flags
}

func TestHelpShowsOnlyTheCommandsSettings(t *testing.T) {
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		if _, ok := commandSettings[cmd.Name]; !ok {
			t.Errorf("command %s is missing from commandSettings", cmd.Name)
		}
	}
	for command, own := range commandSettings {
		t.Run(command, func(t *testing.T) {
			want := map[string]bool{}
			for _, s := range append(append([]string{}, repoSettings...), own...) {
				want[s] = true
			}
			listed := helpFlags(t, command)
			if !listed["config"] {
				t.Errorf("--help lacks --config")
			}
			for _, s := range settings {
				if listed[s.name] != want[s.name] {
					t.Errorf("--help lists --%s: %v, want %v", s.name, listed[s.name], want[s.name])
				}
			}
		})
	}
}

// TestEverySettingHasACommand: a setting no command reads would be a YAML
// key that silently does nothing.
func TestEverySettingHasACommand(t *testing.T) {
	read := map[string]bool{}
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		for _, f := range cmd.Flags {
			read[f.Names()[0]] = true
		}
	}
	for _, s := range settings {
		if !read[s.name] {
			t.Errorf("setting %s is read by no command", s.name)
		}
	}
}

// oneLine checks a usage error's stderr: one line, naming the problem and
// the command's --help.
func oneLine(t *testing.T, args []string, code int, stderr string, wantCode int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	help := "see 'walvault " + args[0] + " --help'"
	if code != wantCode || len(lines) != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, help) {
		t.Errorf("%v: exit %d, stderr %q; want exit %d and one line containing %q and %q", args, code, stderr, wantCode, want, help)
	}
}

func TestForeignFlagRefused(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	for command := range commandSettings {
		t.Run(command, func(t *testing.T) {
			// A setting of some command, or a flag of no command at all.
			foreign := "--no-such-flag"
			for _, s := range settings {
				if !helpFlags(t, command)[s.name] {
					foreign = "--" + s.name
					break
				}
			}
			args := []string{command, foreign, "x"}
			code, stdout, stderr := runCmd(t, args...)
			wantCode := exitUsage
			if command == "wal-fetch" {
				wantCode = exitRecoveryMustStop // never 1: that would end recovery early
			}
			oneLine(t, args, code, stderr, wantCode, "flag provided but not defined: -"+strings.TrimLeft(foreign, "-"))
			if stdout != "" {
				t.Errorf("%v printed on stdout: %q", args, stdout)
			}
		})
	}
}

func TestForeignFlagRefusedExamples(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	for _, args := range [][]string{
		{"backup-list", "--retain", "garbage"},
		{"wal-push", "--prefetch", "2", "000000010000000000000001"},
		{"repair", "--timeout", "1s"},
		{"backup-mark", "20261231T020000Z", "--keep", "--retain", "x"}, // after the argument
	} {
		code, _, stderr := runCmd(t, args...)
		name := strings.TrimLeft(args[len(args)-2], "-")
		if args[0] == "wal-push" {
			name = "prefetch"
		}
		oneLine(t, args, code, stderr, exitUsage, "flag provided but not defined: -"+name)
	}
	code, _, stderr := runCmd(t, "backup-list", "--retain", "garbage")
	if want := "walvault backup-list: flag provided but not defined: -retain; see 'walvault backup-list --help'\n"; code != exitUsage || stderr != want {
		t.Errorf("backup-list --retain garbage: exit %d, stderr %q; want exit 2 and %q", code, stderr, want)
	}
}

func TestMissingRequiredFlag(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore"}, "--pgdata"},
		{[]string{"restore", "--target-immediate"}, "--pgdata"},
		{[]string{"wal-receive"}, "--slot"},
		{[]string{"delete", "--confirm"}, "needs a retention policy"},
		{[]string{"backup-mark", "20261231T020000Z"}, "--keep"},
		{[]string{"wal-prefetch", "000000010000000000000001"}, "--dir"},
		{[]string{"wal-push"}, "exactly one argument"},
		{[]string{"backup-push", "--checkpoint"}, "flag needs an argument: -checkpoint"},
		{[]string{"restore", "--pgdata", "/tmp/x", "--tablespace-mapping", "/ts=/a", "--tablespace-mapping", "/ts/=/b"}, "maps /ts twice, to /a and to /b"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		oneLine(t, tc.args, code, stderr, exitUsage, tc.want)
		if stdout != "" {
			t.Errorf("%v printed on stdout (the help?): %q", tc.args, stdout)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := runCmd(t, "wal-psuh", "x")
	if code != exitUsage || stderr != "walvault: unknown command \"wal-psuh\"; see 'walvault --help'\n" {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
}

// TestSettingsOfOtherCommandsIgnored: the environment and the YAML file
// may hold every setting (one file for every command); a command ignores
// those it does not read, even when their values are bad for the
// commands that do.
func TestSettingsOfOtherCommandsIgnored(t *testing.T) {
	dir := t.TempDir()
	// The file lies outside the repository, as in a real setup: a stray
	// file inside a file:// repository is an error for commands that list it.
	cfg := filepath.Join(t.TempDir(), "walvault.yaml")
	body := "repo: file://" + dir + "\nretain: not a policy\nprefetch: lots\nlock-mode: sometimes\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WALVAULT_UPLOAD_CONCURRENCY", "many")
	t.Setenv("WALVAULT_MIN_BACKUPS", "-3")
	code, stdout, stderr := runCmd(t, "backup-list", "--config", cfg)
	if code != exitOK || !strings.Contains(stdout, "holds no repository (no walvault.json): check the repository location") {
		t.Fatalf("backup-list with other commands' bad settings: exit %d\n%s%s", code, stdout, stderr)
	}
	// The commands that read them still refuse them.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "--config", cfg}, "invalid retention policy"},
		{[]string{"wal-push", "--config", cfg, filepath.Join(dir, "000000010000000000000001")}, "WALVAULT_LOCK_MODE"},
		{[]string{"check", "--config", cfg}, "lock-mode"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		oneLine(t, tc.args, code, stderr, exitUsage, tc.want)
	}
}

func TestPrefetcherGetsOnlyItsSettings(t *testing.T) {
	b := bindSettings(&walPrefetchOptions{})
	var got []string
	for _, s := range b.bound {
		got = append(got, s.name)
	}
	sort.Strings(got)
	flags := helpFlags(t, "wal-fetch")
	for _, name := range got {
		if !flags[name] {
			t.Errorf("wal-prefetch reads %s, which wal-fetch cannot pass on", name)
		}
	}
}

// TestUnknownCommandGivenWALFile: a mistyped command word in
// restore_command (its %f and %p given) exits 200, which stops recovery:
// the usage exit 2 would read as "not in the archive" and end recovery
// early (explore24c F6).
func TestUnknownCommandGivenWALFile(t *testing.T) {
	for _, args := range [][]string{
		{"wal-fetc", "000000010000000000000003", "pg_wal/RECOVERYXLOG"},
		{"--config", "/etc/walvault.yaml", "wal-fetc", "00000002.history", "pg_wal/RECOVERYHISTORY"},
		{"wal-psuh", "pg_wal/000000010000000000000003"},
	} {
		code, _, stderr := runCmd(t, args...)
		if code != exitRecoveryMustStop || !strings.Contains(stderr, "it was given a WAL file") || !strings.Contains(stderr, "exit 200") {
			t.Errorf("%v: exit %d, stderr %q; want 200 saying why", args, code, stderr)
		}
	}
}
