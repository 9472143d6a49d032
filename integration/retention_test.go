package integration

import (
	"context"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestRetentionAcrossTimelines builds four backups around a timeline
// switch made by a point-in-time restore, then applies retention: every
// kept backup still restores to the newest archived point, following the
// switch, and bad input deletes nothing.
//
//	timeline 1:  B1 ── B2 ── target ─┬─ (lost row 99; the old primary stops)
//	timeline 2:                      └── B3 ── B4 ── latest
func TestRetentionAcrossTimelines(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int, tli int)")
	pg.SQL(t, "INSERT INTO steps VALUES (1, 1)")
	b1 := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO steps VALUES (2, 1)")
	b2 := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO steps VALUES (3, 1)")
	target := pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO steps VALUES (99, 1)")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b1)
	waitDone(t, r, b2)
	sysid := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	pg.Stop(t) // the old primary is abandoned

	// The restored server archives into the same repository: only because
	// it is the same cluster, which walvault.json records.
	ident, err := repository.LoadIdentity(t.Context(), r.backend)
	if err != nil || ident.SystemID != sysid {
		t.Fatalf("walvault.json system id %q (%v), the cluster's %s: the restored server must not archive here", ident.SystemID, err, sysid)
	}
	pg2 := restoreArchiving(t, r, "--backup", b2, "--target-time", target, "--target-action", "promote")
	if got := pg2.SQL(t, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); got != "00000002" {
		t.Fatalf("the restored server writes timeline %s, want 00000002", got)
	}
	pg2.SQL(t, "INSERT INTO steps VALUES (4, 2)")
	b3 := backupPush(t, r, pg2)
	pg2.SQL(t, "INSERT INTO steps VALUES (5, 2)")
	b4 := backupPush(t, r, pg2)
	pg2.SQL(t, "INSERT INTO steps VALUES (6, 2)")
	pg2.WaitArchived(t, pg2.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b3)
	waitDone(t, r, b4)
	if m := manifestOf(t, r, b3); m.StartTimeline != 2 {
		t.Fatalf("backup %s starts on timeline %d, want 2", b3, m.StartTimeline)
	}
	const latest = "1,2,3,4,5,6" // row 99 was after the target: not on timeline 2

	t.Run("bad input deletes nothing", func(t *testing.T) {
		before := repoKeys(t, r)
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"--retain", "KEEP THE LAST 2"}, `"REDUNDANCY n"`},
			{[]string{"--retain", "REDUNDANCY 0"}, "at least 1"},
			{[]string{"--retain", "RECOVERY WINDOW OF -1 DAYS"}, "at least 1"},
			{[]string{"--retain", "RECOVERY WINDOW OF 0 DAYS"}, "RECOVERY WINDOW OF n DAYS"},
			{[]string{"--backup", "20200101T000000Z"}, "does not exist"},
			{[]string{"--backup", b4}, "newest DONE"},
			{nil, "needs a retention policy"},
		}
		for _, tc := range tests {
			res := walvault(t, r.env, append(append([]string{"delete"}, tc.args...), "--confirm")...)
			if res.code == 0 || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("delete %v: want a failure mentioning %q, got %v", tc.args, tc.want, res)
			}
		}
		res := walvault(t, r.env, "backup-mark", "20200101T000000Z", "--keep")
		if res.code == 0 || !strings.Contains(res.stderr, "does not exist") {
			t.Errorf("backup-mark of an unknown backup: %v", res)
		}
		if after := repoKeys(t, r); !reflect.DeepEqual(after, before) {
			t.Fatalf("bad input changed the repository: %d objects before, %d after", len(before), len(after))
		}
	})

	t.Run("keep mark", func(t *testing.T) {
		if res := walvault(t, r.env, "backup-mark", b1, "--keep"); res.code != 0 {
			t.Fatalf("backup-mark --keep: %v", res)
		}
		res := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 1", "--confirm")
		if res.code != 0 {
			t.Fatalf("delete: %v", res)
		}
		// B1 is marked, B4 is the one REDUNDANCY 1 keeps; B2 and B3 go.
		if got := backupIDs(t, r); !reflect.DeepEqual(got, []string{b1, b4}) {
			t.Fatalf("after REDUNDANCY 1 with %s marked keep: backups %v\n%s", b1, got, res.stdout)
		}
		if res := walvault(t, r.env, "backup-mark", b1, "--no-keep"); res.code != 0 {
			t.Fatalf("backup-mark --no-keep: %v", res)
		}
		// The oldest kept backup started on timeline 1, before the switch:
		// it still restores to the newest point, across the switch.
		restoredLatest(t, r, b1, latest)
	})

	t.Run("REDUNDANCY 1 after the mark is withdrawn", func(t *testing.T) {
		dry := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 1")
		if dry.code != 0 || !planSays(dry.stdout, "delete", b1) || !strings.Contains(dry.stdout, "dry run") {
			t.Fatalf("dry run: %v", dry)
		}
		res := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 1", "--confirm")
		if res.code != 0 || !strings.Contains(res.stdout, "deleted backup "+b1) || !strings.Contains(res.stdout, "deleted WAL: ") {
			t.Fatalf("delete: %v", res)
		}
		if got := backupIDs(t, r); !reflect.DeepEqual(got, []string{b4}) {
			t.Fatalf("backups %v, want only %s", got, b4)
		}
		checkWALCutoff(t, r, b4)
		restoredLatest(t, r, b4, latest)
	})

	t.Run("RECOVERY WINDOW OF 1 DAYS keeps everything", func(t *testing.T) {
		before := repoKeys(t, r)
		res := walvault(t, r.env, "delete", "--retain", "RECOVERY WINDOW OF 1 DAYS")
		if res.code != 0 || !strings.Contains(res.stdout, "nothing to delete") || !planSays(res.stdout, "keep", b4) {
			t.Fatalf("window dry run: %v", res)
		}
		if after := repoKeys(t, r); !reflect.DeepEqual(after, before) {
			t.Fatal("a dry run changed the repository")
		}
	})
}

// TestRetentionRedundancyTwo: REDUNDANCY 2 on the same kind of history
// keeps B3 and B4 (both on timeline 2, whose branch lies before B3's
// start), so timeline 1's WAL before B3 goes and B3 restores to the end.
// Before B3, the backup the old primary took after the target (B2x, on
// timeline 1 past the branch: the nightly backup after the mistake the
// restore undid) is the newest, but cannot reach timeline 2: retention
// keeps B2 for timeline 2, and a restore to latest passes B2x over.
func TestRetentionRedundancyTwo(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int, tli int)")
	pg.SQL(t, "INSERT INTO steps VALUES (1, 1)")
	b1 := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO steps VALUES (2, 1)")
	b2 := backupPush(t, r, pg)
	target := pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO steps VALUES (99, 1)")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b2)
	b2x := backupPush(t, r, pg)
	waitDone(t, r, b2x)
	pg.Stop(t)

	pg2 := restoreArchiving(t, r, "--backup", b2, "--target-time", target, "--target-action", "promote")
	pg2.WaitArchived(t, pg2.SwitchWAL(t), 60*time.Second)
	dry := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 1")
	if dry.code != 0 || !planSays(dry.stdout, "keep", b2) || !strings.Contains(dry.stdout, "leads to timeline 2") {
		t.Errorf("REDUNDANCY 1 dry run after the promotion: want %s kept as the backup leading to timeline 2, got %v", b2, dry)
	}
	res := walvault(t, r.env, "restore", "--pgdata", filepath.Join(testenv.UserDir(t), "latest"))
	if res.code != 0 || !strings.Contains(res.stdout, "restored backup "+b2) || !strings.Contains(res.stderr, "passing over a backup that cannot reach the timeline recovery follows") {
		t.Errorf("restore to latest after the promotion: want %s restored, %s passed over, got %v", b2, b2x, res)
	}
	pg2.SQL(t, "INSERT INTO steps VALUES (3, 2)")
	b3 := backupPush(t, r, pg2)
	pg2.SQL(t, "INSERT INTO steps VALUES (4, 2)")
	b4 := backupPush(t, r, pg2)
	pg2.SQL(t, "INSERT INTO steps VALUES (5, 2)")
	pg2.WaitArchived(t, pg2.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b3)
	waitDone(t, r, b4)

	res = walvault(t, r.env, "delete", "--retain", "REDUNDANCY 2", "--confirm")
	if res.code != 0 {
		t.Fatalf("delete: %v", res)
	}
	for _, gone := range []string{b1, b2, b2x} {
		if !strings.Contains(res.stdout, "deleted backup "+gone) {
			t.Errorf("delete output does not report %s deleted:\n%s", gone, res.stdout)
		}
	}
	if got := backupIDs(t, r); !reflect.DeepEqual(got, []string{b3, b4}) {
		t.Fatalf("backups %v, want %s and %s", got, b3, b4)
	}
	checkWALCutoff(t, r, b3)
	// Timeline 1 lost everything before the branch; history stays.
	if _, err := r.backend.Stat(t.Context(), "wal/00000002.history"); err != nil {
		t.Fatalf("timeline 2's history file: %v", err)
	}
	restoredLatest(t, r, b3, "1,2,3,4,5")

	res = walvault(t, r.env, "delete", "--retain", "RECOVERY WINDOW OF 1 DAYS")
	if res.code != 0 || !strings.Contains(res.stdout, "nothing to delete") {
		t.Fatalf("window dry run: %v", res)
	}
	if got := backupIDs(t, r); !reflect.DeepEqual(got, []string{b3, b4}) {
		t.Fatalf("after the window dry run: backups %v", got)
	}
}

// restoreArchiving restores with args and starts the result archiving
// into r with walvault, and waits for its promotion.
func restoreArchiving(t *testing.T, r *repo, args ...string) *testenv.Postgres {
	t.Helper()
	dir := filepath.Join(testenv.UserDir(t), "restored")
	res := walvault(t, r.env, append([]string{"restore", "--pgdata", dir}, args...)...)
	if res.code != 0 {
		t.Fatalf("restore %v: %v", args, res)
	}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		DataDir:        dir,
		Env:            r.env,
		ArchiveCommand: testenv.BuildWalvault(t) + " wal-push %p",
	})
	waitPromoted(t, pg)
	// walvault-restore.yaml stays in the data directory on purpose: backups
	// of this server carry it, and restoring them must replace it.
	return pg
}

// restoredLatest restores backup id with no target (all archived WAL, the
// latest timeline), starts it and checks the rows it sees.
func restoredLatest(t *testing.T, r *repo, id, want string) {
	t.Helper()
	restored := restoreAndStart(t, r, true, "--backup", id)
	if got := restored.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM steps"); got != want {
		t.Fatalf("restoring %s to the latest point: steps %q, want %q", id, got, want)
	}
	restored.StopImmediate(t)
}

func manifestOf(t *testing.T, r *repo, id string) repository.BackupManifest {
	t.Helper()
	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// backupIDs is what backup-list shows, every backup DONE.
func backupIDs(t *testing.T, r *repo) []string {
	t.Helper()
	var ids []string
	for _, b := range listBackups(t, r.env) {
		if b.Status != string(repository.StatusDone) {
			t.Errorf("backup %s is %s after delete, want DONE", b.ID, b.Status)
		}
		ids = append(ids, b.ID)
	}
	return ids
}

func repoKeys(t *testing.T, r *repo) []string {
	t.Helper()
	var keys []string
	err := r.backend.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// checkWALCutoff: no segment lies wholly before the oldest kept backup's
// start any more, while the segments from its start on are all there.
func checkWALCutoff(t *testing.T, r *repo, oldest string) {
	t.Helper()
	m := manifestOf(t, r, oldest)
	start, err := wal.ParseLSN(m.StartLSN)
	if err != nil {
		t.Fatal(err)
	}
	startSeg, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil {
		t.Fatal(err)
	}
	haveStart := false
	for _, key := range repoKeys(t, r) {
		rest, ok := strings.CutPrefix(key, "wal/")
		if !ok || !strings.Contains(rest, "/") {
			continue
		}
		name := strings.TrimSuffix(rest[strings.Index(rest, "/")+1:], ".lz4")
		f, err := wal.Classify(name)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		segStart, err := f.Segment.StartLSN(m.WALSegmentSize)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(segStart)+uint64(m.WALSegmentSize) <= uint64(start) {
			t.Errorf("%s lies wholly before %s, the start of the oldest kept backup %s, and was not deleted", key, start, oldest)
		}
		if f.Kind == wal.KindSegment && f.Segment == startSeg {
			haveStart = true
		}
	}
	if !haveStart {
		t.Errorf("segment %s, where the oldest kept backup %s starts, is gone", startSeg, oldest)
	}
}

// planSays reports whether delete's output has the line "action id ...".
func planSays(out, action, id string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == action && f[1] == id {
			return true
		}
	}
	return false
}

// TestRestoreLatestRefusesACopysTimeline: a restored copy promoted as
// timeline 2 archived into the repository (restore's default
// --archive-mode preserve), and the primary went on on timeline 1. A
// restore to latest would follow timeline 2 (the newest history file) and
// silently give the copy's data: it stops, naming --target-timeline 1,
// which restores the primary's newest (explore22e F3, F6).
func TestRestoreLatestRefusesACopysTimeline(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int)")
	pg.SQL(t, "INSERT INTO steps VALUES (1)")
	b1 := backupPush(t, r, pg)
	target := pg.SQL(t, utcNow)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO steps VALUES (99)") // after the copy's target: the primary's only
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, b1)

	copyServer := restoreArchiving(t, r, "--backup", b1, "--target-time", target, "--target-action", "promote")
	// The copy even takes a backup here: the newest, on timeline 2
	// (explore22g F1).
	copyBackup := backupPush(t, r, copyServer)
	copyServer.WaitArchived(t, copyServer.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, copyBackup)
	copyServer.Stop(t)

	time.Sleep(time.Second) // the primary's next WAL is stored later than the copy's last
	pg.SQL(t, "INSERT INTO steps VALUES (2)")
	primaryNewest := pg.SwitchWAL(t)
	pg.WaitArchived(t, primaryNewest, 60*time.Second)

	res := walvault(t, r.env, "restore", "--pgdata", filepath.Join(testenv.UserDir(t), "latest"))
	if res.code == 0 || !strings.Contains(res.stderr, "give --target-timeline 1;") {
		t.Fatalf("restore to latest with the primary going on on timeline 1: want a refusal naming --target-timeline 1, got %v", res)
	}
	restored := restoreAndStart(t, r, true, "--target-timeline", "1")
	if got := restored.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM steps"); got != "1,2,99" {
		t.Fatalf("restore with --target-timeline 1: steps %q, want the primary's 1,2,99", got)
	}
	restored.StopImmediate(t)

	// A drill along timeline 1 measures against timeline 1's newest
	// segment, not the copy's, which went further (session 22's note).
	res = walvault(t, r.env, "drill", "--scratch-dir", testenv.UserDir(t), "--target-timeline", "1", "--amcheck", "off",
		"--check-sql", "SELECT 1 FROM steps WHERE n = 2")
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "replayed all archived WAL") {
		t.Fatalf("drill --target-timeline 1: want success with the replay end checked, got %v", res)
	}
	if !strings.Contains(res.stdout+res.stderr, "newest archived segment "+primaryNewest) {
		t.Errorf("drill --target-timeline 1: want the primary's newest segment %s named, got %v", primaryNewest, res)
	}
}
