package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestBackupPushNewRepositoryThroughWrapper: the very first backup into a
// repository no WAL has reached yet, from a server whose archive_command
// is a wrapper script that runs walvault (its words name neither walvault
// nor wal-push). backup-push switches WAL, waits for the segment and goes
// on; check then sees archiving reach the repository.
func TestBackupPushNewRepositoryThroughWrapper(t *testing.T) {
	r := fileRepo(t)
	bin := testenv.BuildWalvault(t)
	script := filepath.Join(testenv.UserDir(t), "archive.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec "+bin+" wal-push \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, script)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: script + " %p", Env: r.env})
	if _, err := r.backend.Stat(context.Background(), repository.IdentityKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the repository should be new (no %s) before the first backup: %v", repository.IdentityKey, err)
	}

	res := walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString(), "--timeout", "60s")
	if res.code != 0 {
		t.Fatalf("first backup-push into a new repository through a wrapper script: %v", res)
	}
	if !strings.Contains(res.stderr, "pg_switch_wal()") {
		t.Errorf("backup-push should say it switched WAL to see archiving reach the repository:\n%s", res.stderr)
	}
	list := listBackups(t, r.env)
	if len(list) != 1 {
		t.Fatalf("backup-list after the first backup: %+v, want one backup", list)
	}
	waitDone(t, r, list[0].ID)

	lines, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString(), "--timeout", "30s")
	if l := checkByName(lines)["archive_command"]; !l.OK || !strings.Contains(l.Detail, `"`+script+` %p" reaches this repository`) {
		t.Errorf("check's archive_command line for a wrapper that reaches the repository: %+v, want OK\n%v", l, res)
	}
}

// TestBackupPushArchivingElsewhere: an archive_command that succeeds but
// brings nothing to this repository fails backup-push and check within
// their --timeout, naming and quoting archive_command.
func TestBackupPushArchivingElsewhere(t *testing.T) {
	r := fileRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: "true", Env: r.env})

	res := walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString(), "--timeout", "3s")
	t.Logf("backup-push: %v", res)
	if res.code != 1 {
		t.Fatalf("backup-push with archive_command = 'true': want exit 1, got %v", res)
	}
	if res.elapsed > 30*time.Second {
		t.Errorf("backup-push took %v to give up, want about its 3s timeout", res.elapsed)
	}
	for _, want := range []string{`archive_command is "true"`, "archive_mode = on", "did not reach " + r.url, "no WAL has reached repository", "archive_command = 'walvault wal-push %p'"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("backup-push's error lacks %q:\n%s", want, res.stderr)
		}
	}
	if got := listBackups(t, r.env); len(got) != 0 {
		t.Errorf("backup-list after a refused backup: %+v, want none", got)
	}

	lines, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString(), "--timeout", "3s")
	if res.code != 1 || res.elapsed > 40*time.Second {
		t.Errorf("check with archive_command = 'true': want exit 1 within its timeout, got %v", res)
	}
	if l := checkByName(lines)["archive_command"]; l.OK || !strings.HasPrefix(l.Detail, `archive_command is "true"`) || !strings.Contains(l.Detail, "did not reach") {
		t.Errorf("check's archive_command line: %+v, want FAILED quoting the command", l)
	}
}

// TestBackupPushFromStandby: a standby cannot switch WAL; backup-push sees
// archiving reach the repository by the segment replay completed last,
// which the primary archived, and takes the backup. The standby (with
// archive_mode = on) archives nothing and PostgreSQL does not wait there:
// backup-push waits until the primary's archive_command stores the
// backup's last segment, so the backup is DONE when it returns. check on
// the standby passes its archive_command line.
func TestBackupPushFromStandby(t *testing.T) {
	r := fileRepo(t)
	primary, _ := archivingServer(t, r)
	primary.SQL(t, "CREATE TABLE t AS SELECT 1 AS x")
	standby := startStandbyWith(t, r, primary, testenv.PostgresOptions{ArchiveCommand: testenv.BuildWalvault(t) + " wal-push %p"})
	primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)
	waitReplayed(t, primary, standby)

	lines, _ := checkJSON(t, r.env, "--pg-conn", standby.ConnString())
	if l := checkByName(lines)["archive_command"]; !l.OK {
		t.Errorf("check's archive_command line on a healthy standby: %+v", l)
	}

	// Replay stands inside a segment the primary has not completed.
	primary.SQL(t, "INSERT INTO t VALUES (2)")
	waitReplayed(t, primary, standby)
	done := make(chan result, 1)
	go func() {
		done <- walvault(t, r.env, "backup-push", "--pg-conn", standby.ConnString(), "--timeout", "60s")
	}()
	// The backup ends in a segment the primary completes when it switches;
	// switch until backup-push returns.
	var res result
	for waiting := true; waiting; {
		select {
		case res = <-done:
			waiting = false
		case <-time.After(2 * time.Second):
			primary.SwitchWAL(t)
		}
	}
	if res.code != 0 {
		t.Fatalf("backup-push from a standby: %v", res)
	}
	if !strings.Contains(res.stderr, "the last this standby replayed, reached the repository") || strings.Contains(res.stderr, "switched WAL") || strings.Contains(res.stderr, "after SELECT pg_switch_wal()") {
		t.Errorf("backup-push from a standby should see archiving reach the repository without switching WAL:\n%s", res.stderr)
	}
	list := listBackups(t, r.env)
	if len(list) != 1 || list[0].Status != "DONE" {
		t.Fatalf("backup-list right after backup-push from a standby: %+v, want one DONE backup", list)
	}
}

// TestStandbyArchiveModeAlways: a standby with archive_mode = always pushes
// the segments it receives into the repository its primary archives to,
// as HA setups do so that archiving goes on through a failover. Every
// segment then arrives twice with the same content: both archivers must
// succeed (the second push finds it already archived), never fail or
// overwrite. After the primary stops and the standby is promoted, the new
// timeline's history file, the old timeline's last partial segment and the
// new timeline's segments are archived, and the repository verifies clean.
func TestStandbyArchiveModeAlways(t *testing.T) {
	r := fileRepo(t)
	primary, _ := archivingServer(t, r)
	standby := startStandbyWith(t, r, primary, testenv.PostgresOptions{
		ArchiveCommand: testenv.BuildWalvault(t) + " wal-push %p",
		Conf:           map[string]string{"archive_mode": "always"},
	})
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	var last string
	for i := range 3 {
		primary.SQL(t, fmt.Sprintf("INSERT INTO pgbench_history VALUES (1, 1, 1, %d, now(), 'switch')", i))
		last = primary.SwitchWAL(t)
	}
	primary.WaitArchived(t, last, 60*time.Second)
	standby.WaitArchived(t, last, 60*time.Second)
	noArchiveFailures := func(pg *testenv.Postgres, what string) {
		t.Helper()
		if got := pg.SQL(t, "SELECT failed_count || ' ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver"); got != "0 -" {
			t.Errorf("%s's archiver failed (failed_count, last_failed_wal: %s):\n%s", what, got, pg.LogTail(20))
		}
	}
	noArchiveFailures(primary, "the primary")
	noArchiveFailures(standby, "the standby")

	// A backup from this standby ends in a segment only the primary
	// completes; with the primary quiet, backup-push waits no longer than
	// --timeout, saying what for, and records the backup WAITING_FOR_WALS
	// (PostgreSQL's own wait had no bound: explore25c F4). A switch on the
	// primary then makes it DONE. Replay stands inside a segment the
	// primary has not completed.
	primary.SQL(t, "INSERT INTO pgbench_history VALUES (1, 1, 1, 9, now(), 'before the backup')")
	waitReplayed(t, primary, standby)
	res := walvault(t, r.env, "backup-push", "--pg-conn", standby.ConnString(), "--timeout", "5s")
	if res.code != 1 || !strings.Contains(res.stderr, "WAITING_FOR_WALS") || !strings.Contains(res.stderr, "pg_switch_wal()") {
		t.Fatalf("backup-push from a standby of a quiet primary: %v, want exit 1 within the timeout, naming WAITING_FOR_WALS and pg_switch_wal()", res)
	}
	primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for list := listBackups(t, r.env); len(list) != 1 || list[0].Status != "DONE"; list = listBackups(t, r.env) {
		if time.Now().After(deadline) {
			t.Fatalf("backup-list after the primary switched: %+v, want one DONE backup", list)
		}
		time.Sleep(500 * time.Millisecond)
	}

	primary.Stop(t)
	standby.SQL(t, "SELECT pg_promote()")
	waitPromoted(t, standby)
	// More than a page of WAL, so that the new timeline's first segment
	// holds pages begun after the switch point.
	standby.SQL(t, "INSERT INTO pgbench_history SELECT 2, 2, 2, g, now(), 'after the promotion' FROM generate_series(1, 2000) g")
	newLast := standby.SwitchWAL(t)
	if !strings.HasPrefix(newLast, "00000002") {
		t.Fatalf("the promoted standby switched out of %s, want a timeline 2 segment", newLast)
	}
	standby.WaitArchived(t, newLast, 60*time.Second)
	noArchiveFailures(standby, "the promoted standby")
	checkBranchPages(t, r, 2)
	if res := walvault(t, r.env, "verify"); res.code != 0 || !strings.Contains(res.stdout, "timeline 2: WAL continuous") {
		t.Errorf("verify after the failover: %v", res)
	}
}

// checkBranchPages checks, on a real promotion's WAL, what restore's check
// for a forged timeline rests on (restore.copiedBranch): the first segment
// of timeline tli, as archived, carries tli on its pages past the switch
// point (wal.CheckPagesAfterBranch).
func checkBranchPages(t *testing.T, r *repo, tli wal.TimelineID) {
	t.Helper()
	dir := testenv.UserDir(t)
	historyName := fmt.Sprintf("%08X.history", uint32(tli))
	historyPath := filepath.Join(dir, historyName)
	if res := walvault(t, r.env, "wal-fetch", historyName, historyPath); res.code != 0 {
		t.Fatalf("wal-fetch %s: %v", historyName, res)
	}
	f, err := os.Open(historyPath)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := wal.ParseHistory(f)
	f.Close()
	if err != nil || len(entries) == 0 {
		t.Fatalf("%s: %v, %v", historyName, entries, err)
	}
	sw := entries[len(entries)-1].SwitchPoint
	seg, err := wal.SegmentFromLSN(tli, sw, wal.DefaultSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	segPath := filepath.Join(dir, seg.String())
	if res := walvault(t, r.env, "wal-fetch", seg.String(), segPath); res.code != 0 {
		t.Fatalf("wal-fetch %s: %v", seg, res)
	}
	f, err = os.Open(segPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := wal.CheckPagesAfterBranch(f, seg, sw); err != nil || got != wal.BranchPagesChild {
		t.Fatalf("the first segment of timeline %d, %s, past the switch point %s: %v, %v; want its pages on timeline %d (BranchPagesChild)", tli, seg, sw, got, err, tli)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	scan, err := wal.ScanSegment(f, seg, nil)
	if err != nil || !scan.TimelineStartsAt(sw) {
		t.Fatalf("the first segment of timeline %d, %s: records a server writes first on a timeline at %v (%v), want one at the switch point %s", tli, seg, scan.TimelineStarts, err, sw)
	}
}
