package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
)

// TestRestoreLSNAcrossTimelines: restore's LSN check, which lists only the
// WAL from the backup to the target, follows timelines as PostgreSQL
// does: from a backup on timeline 1 to an LSN on timeline 2 through the
// switch (latest), to an LSN past the branch on timeline 1 when told to
// stay on it; a target beyond the archive is refused before anything is
// written, and so is the LSN pg_switch_wal() answers, past the last
// record of the newest segment. On S3, whose prefix listings the check
// relies on.
//
//	timeline 1:  B1 ── 2 ── branch ─┬─ 99 ── lsn1
//	timeline 2:                     └── 3 ── 4 ── 5 ── lsn2
func TestRestoreLSNAcrossTimelines(t *testing.T) {
	r := s3Repo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int)")
	pg.SQL(t, "INSERT INTO steps VALUES (1)")
	b1 := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO steps VALUES (2)")
	branch := pg.SQL(t, "SELECT pg_current_wal_lsn()")
	pg.SwitchWAL(t)
	pg.SQL(t, "INSERT INTO steps VALUES (99)")
	lsn1 := pg.SQL(t, "SELECT pg_current_wal_lsn()")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b1)
	pg.Stop(t) // the old primary is abandoned

	pg2 := restoreArchiving(t, r, "--backup", b1, "--target-lsn", branch, "--target-action", "promote")
	// Timeline 2 runs segments further than timeline 1 did: a check
	// blind to the switch would look for them on timeline 1.
	for _, n := range []string{"3", "4"} {
		pg2.SQL(t, "INSERT INTO steps VALUES ("+n+")")
		pg2.SwitchWAL(t)
	}
	pg2.SQL(t, "INSERT INTO steps VALUES (5)")
	lsn2 := pg2.SQL(t, "SELECT pg_current_wal_lsn()")
	// pg_switch_wal() answers with the end of its switch record: in the
	// padding, which recovery never reads.
	switchEnd := pg2.SQL(t, "SELECT pg_switch_wal()")
	pg2.WaitArchived(t, pg2.SQL(t, "SELECT pg_walfile_name('"+switchEnd+"')"), 60*time.Second)
	pg2.Stop(t)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"latest, through the switch", []string{"--target-lsn", lsn2}, "1,2,3,4,5"},
		{"timeline 1, past the branch", []string{"--target-lsn", lsn1, "--target-timeline", "1"}, "1,2,99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restored := restoreAndStart(t, r, true, append([]string{"--backup", b1, "--target-action", "promote"}, tc.args...)...)
			if got := restored.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM steps"); got != tc.want {
				t.Fatalf("steps: %q, want %q", got, tc.want)
			}
			restored.StopImmediate(t)
		})
	}
	end, err := wal.ParseLSN(lsn2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, target, want string }{
		{"beyond the archive", (end + 256<<20).String(), "beyond the archive"},
		{"past the last switch", switchEnd, "ends with a WAL switch whose record starts at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(testenv.UserDir(t), "restored")
			res := walvault(t, r.env, "restore", "--pgdata", dir, "--backup", b1, "--target-lsn", tc.target)
			if res.code == 0 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("want a refusal saying %q, got %v", tc.want, res)
			}
			if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
				t.Fatalf("a refused restore left a data directory at %s", dir)
			}
		})
	}
}
