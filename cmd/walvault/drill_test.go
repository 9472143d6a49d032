package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/drill"
)

// walvaultRun runs one command line in-process.
func walvaultRun(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, append([]string{"walvault"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDrillUsage(t *testing.T) {
	repo := "file://" + t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"argument", []string{"extra"}, "no arguments"},
		{"amcheck mode", []string{"--amcheck", "sometimes"}, "--amcheck"},
		{"shutdown", []string{"--target-immediate", "--target-action", "shutdown"}, "shutdown"},
		{"action without target", []string{"--target-action", "pause"}, "needs a target"},
		{"port", []string{"--port", "70000"}, "--port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := walvaultRun(context.Background(), append([]string{"drill", "--repo", repo}, tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

func TestDrillEmptyRepository(t *testing.T) {
	code, stdout, stderr := walvaultRun(context.Background(), "drill", "--repo", "file://"+t.TempDir(), "--scratch-dir", t.TempDir())
	if code != exitFailed || !strings.Contains(stderr, "no backup is DONE yet") || !strings.Contains(stdout, "drill FAILED") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

func TestPrintDrill(t *testing.T) {
	pushed := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	rpo := 41.0
	rec := &drill.Record{
		OK: true, BackupID: "20261125T100000Z", Target: "latest (all archived WAL)", RestoredBytes: 3 << 30,
		RestoreSeconds: 61.2, ReplaySeconds: 4.25, RTOSeconds: 65.5, RPOSeconds: &rpo, NewestWAL: "000000010000000000000007", NewestWALPushedAt: &pushed,
		Checks: []drill.Check{{Name: "read-write", Status: drill.StatusOK, Detail: "yes"}, {Name: "pg_amcheck", Status: drill.StatusSkipped, Detail: "not installed"}},
		Key:    "drills/20261125T103100.000Z.json",
	}
	var b bytes.Buffer
	printDrill(&b, rec)
	for _, want := range []string{
		"drill OK: backup 20261125T100000Z recovered to latest (all archived WAL)\n",
		"RTO 1m6s (restore 1m1s of 3.0 GiB + start and replay 4.3s)\n",
		"RPO 41s (newest archived WAL 000000010000000000000007 pushed at 2026-11-25T10:30:00Z)\n",
		"  OK       read-write: yes\n",
		"  SKIPPED  pg_amcheck: not installed\n",
		"record: drills/20261125T103100.000Z.json\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
