package main

import (
	"io"
	"slices"
	"testing"
)

func TestCommandFlagsFirst(t *testing.T) {
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
		{"a flag the command does not take", []string{"--retain", "REDUNDANCY 1", "wal-push", "pg_wal/X"}, nil},
		{"help before a command", []string{"--help", "wal-push"}, nil},
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
			if got := commandFlagsFirst(app, slices.Clone(args)); !slices.Equal(got, want) {
				t.Errorf("commandFlagsFirst(%q) = %q, want %q", args, got, want)
			}
		})
	}
}

// A repository named before the command is the command's repository.
func TestFlagsBeforeTheCommand(t *testing.T) {
	repo := "file://" + t.TempDir()
	code, out, errOut := runCmd(t, "--repo", repo, "--timeout", "30s", "backup-list")
	wantCode, wantOut, wantErr := runCmd(t, "backup-list", "--repo", repo, "--timeout", "30s")
	if code != wantCode || out != wantOut || errOut != wantErr {
		t.Errorf("walvault --repo R --timeout 30s backup-list: exit %d, stdout %q, stderr %q; with the flags after the command: exit %d, %q, %q",
			code, out, errOut, wantCode, wantOut, wantErr)
	}
	if code, _, errOut := runCmd(t, "--retain", "REDUNDANCY 1", "backup-list", "--repo", repo); code != exitUsage {
		t.Errorf("a flag backup-list does not take, before it: exit %d, want %d (usage)\n%s", code, exitUsage, errOut)
	}
}
