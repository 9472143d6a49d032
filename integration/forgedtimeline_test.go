package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
)

// TestRestoreRefusesForgedTimeline: with write access to the repository
// (the database host's credentials), a history file of timeline 2 and a
// copy of a timeline 1 segment under timeline 2's name were all it took
// for a restore to latest to follow a timeline no server wrote, leaving
// out everything timeline 1 archived after the forged branch point, with
// only a warning (explore25a F1). The copy's pages past the branch point
// carry timeline 1: restore refuses, naming --target-timeline 1, which
// restores everything.
func TestRestoreRefusesForgedTimeline(t *testing.T) {
	// The switch point early in the copied segment, its later pages
	// begun on timeline 1; or in its last page, in the zeros after the
	// WAL switch that ended it, where no page follows and no record
	// starts (explore25e B).
	for _, tc := range []struct {
		name   string
		offset wal.LSN
	}{{"early", 0x100}, {"last page", wal.DefaultSegmentSize - 0x100}} {
		t.Run(tc.name, func(t *testing.T) { testForgedTimeline(t, tc.offset) })
	}
}

func testForgedTimeline(t *testing.T, offset wal.LSN) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int)")
	b1 := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO steps SELECT generate_series(1, 500)")
	branch := pg.SwitchWAL(t) // the segment the forged timeline branches in
	var last string
	for i := range 3 {
		pg.SQL(t, fmt.Sprintf("INSERT INTO steps VALUES (%d)", 1000+i))
		last = pg.SwitchWAL(t)
	}
	pg.WaitArchived(t, last, 60*time.Second)
	waitDone(t, r, b1)

	seg, err := wal.ParseSegmentName(branch)
	if err != nil {
		t.Fatal(err)
	}
	start, err := seg.StartLSN(wal.DefaultSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	forged := wal.Segment{Timeline: 2, Log: seg.Log, Seg: seg.Seg}
	walDir := filepath.Join(pg.DataDir, "pg_wal")
	copyPath := filepath.Join(walDir, forged.String())
	if res := walvault(t, r.env, "wal-fetch", branch, copyPath); res.code != 0 {
		t.Fatalf("wal-fetch %s: %v", branch, res)
	}
	historyPath := filepath.Join(walDir, "00000002.history")
	if err := os.WriteFile(historyPath, []byte(fmt.Sprintf("1\t%s\tno recovery target specified\n", start+offset)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{historyPath, copyPath} {
		// Marked as PostgreSQL marks a file to archive, so that wal-push
		// takes it as the forger's own push would.
		if err := os.WriteFile(filepath.Join(walDir, "archive_status", filepath.Base(p)+".ready"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if res := walvault(t, r.env, "wal-push", p); res.code != 0 {
			t.Fatalf("wal-push %s by hand: %v\n%s", p, res, res.stderr)
		}
	}

	res := walvault(t, r.env, "restore", "--pgdata", filepath.Join(testenv.UserDir(t), "latest"))
	if res.code == 0 || !strings.Contains(res.stderr, "it is a copy of timeline 1's segment") || !strings.Contains(res.stderr, "--target-timeline 1") {
		// A restore to latest must not follow the forged timeline.
		t.Fatalf("restore to latest along a forged timeline 2: want a refusal naming the copy and --target-timeline 1, got %v", res)
	}
	restored := restoreAndStart(t, r, true, "--target-timeline", "1")
	if got := restored.SQL(t, "SELECT count(*) FROM steps"); got != "503" {
		t.Fatalf("restore with --target-timeline 1: %s rows, want all 503", got)
	}
	restored.StopImmediate(t)
}
