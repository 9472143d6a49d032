package main

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"flags before the command move after it",
			[]string{"--config", "/etc/walvault/db1.yml", "wal-push", "pg_wal/X"},
			[]string{"wal-push", "--config", "/etc/walvault/db1.yml", "pg_wal/X"}},
		{"name=value and a boolean flag",
			[]string{"--repo=file:///r", "--s3-path-style", "wal-fetch", "X", "pg_wal/RECOVERYXLOG"},
			[]string{"wal-fetch", "--repo=file:///r", "--s3-path-style", "X", "pg_wal/RECOVERYXLOG"}},
		{"a value that is a command word is still the value",
			[]string{"--repo", "wal-push", "wal-push", "pg_wal/X"},
			[]string{"wal-push", "--repo", "wal-push", "pg_wal/X"}},
		{"already in order", []string{"wal-push", "--repo", "file:///r", "pg_wal/X"}, nil},
		{"flags after the arguments move before them",
			[]string{"wal-fetch", "X", "pg_wal/RECOVERYXLOG", "--config", "/etc/walvault/db1.yml", "--prefetch=0"},
			[]string{"wal-fetch", "--config", "/etc/walvault/db1.yml", "--prefetch=0", "X", "pg_wal/RECOVERYXLOG"}},
		{"a boolean flag after the argument takes no value", []string{"backup-mark", "20261231T020000Z", "--keep"},
			[]string{"backup-mark", "--keep", "20261231T020000Z"}},
		{"both sides at once",
			[]string{"--config", "F", "wal-push", "pg_wal/X", "--timeout", "30s"},
			[]string{"wal-push", "--config", "F", "--timeout", "30s", "pg_wal/X"}},
		{"an unknown flag after the argument goes before it, for the parser to report",
			[]string{"wal-push", "pg_wal/X", "--retain"},
			[]string{"wal-push", "--retain", "pg_wal/X"}},
		{"what follows -- stays arguments",
			[]string{"wal-push", "pg_wal/X", "--", "--timeout"},
			[]string{"wal-push", "--", "pg_wal/X", "--timeout"}},
		{"a flag the command does not take", []string{"--retain", "REDUNDANCY 1", "wal-push", "pg_wal/X"}, nil},
		{"help before a command", []string{"--help", "wal-push"}, nil},
		{"help after the arguments is the command's help",
			[]string{"wal-fetch", "X", "pg_wal/RECOVERYXLOG", "--config", "F", "--help"},
			[]string{"wal-fetch", "--config", "F", "--help"}},
		{"version", []string{"--version"}, nil},
		{"no command", []string{"--repo", "file:///r"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"walvault"}, tt.args...)
			want := args
			if tt.want != nil {
				want = append([]string{"walvault"}, tt.want...)
			}
			if got := normalizeArgs(app, slices.Clone(args)); !slices.Equal(got, want) {
				t.Errorf("normalizeArgs(%q) = %q, want %q", args, got, want)
			}
		})
	}
}

// A repository named before the command, or after its arguments, is the
// command's repository.
func TestFlagsAroundTheCommand(t *testing.T) {
	repo := "file://" + t.TempDir()
	code, out, errOut := runCmd(t, "--repo", repo, "--timeout", "30s", "backup-list")
	wantCode, wantOut, wantErr := runCmd(t, "backup-list", "--repo", repo, "--timeout", "30s")
	if code != wantCode || out != wantOut || errOut != wantErr {
		t.Errorf("walvault --repo R --timeout 30s backup-list: exit %d, stdout %q, stderr %q; with the flags after the command: exit %d, %q, %q",
			code, out, errOut, wantCode, wantOut, wantErr)
	}
	// restore_command = 'walvault wal-fetch %f %p --config F' must not be
	// a usage error. (An empty directory is no repository: wal-fetch
	// refuses to call the segment missing, the same either way.)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	code, out, errOut = runCmd(t, "wal-fetch", "000000010000000000000001", dest, "--repo", repo, "--timeout", "30s")
	wantCode, wantOut, wantErr = runCmd(t, "wal-fetch", "--repo", repo, "--timeout", "30s", "000000010000000000000001", dest)
	if code != wantCode || out != wantOut || errOut != wantErr || strings.Contains(errOut, "--help") {
		t.Errorf("walvault wal-fetch NAME DEST --repo R --timeout 30s: exit %d, stdout %q, stderr %q; with the flags before the arguments: exit %d, %q, %q",
			code, out, errOut, wantCode, wantOut, wantErr)
	}
	if code, _, errOut := runCmd(t, "--retain", "REDUNDANCY 1", "backup-list", "--repo", repo); code != exitUsage {
		t.Errorf("a flag backup-list does not take, before it: exit %d, want %d (usage)\n%s", code, exitUsage, errOut)
	}
}
