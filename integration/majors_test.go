package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestMajors runs walvault end to end on every supported PostgreSQL major
// (15 from Debian, 16 to 18 from ./scripts/install-deps.sh), on a file://
// repository: the archive round trip through archive_command, backup-push
// and the seed scenario's point-in-time restore, a drill with the major's
// own server programs, a backup from a standby on standbyBackupMajor, and
// wal-receive following the standby's promotion. PostgreSQL 17 and 18 run
// with summarize_wal on; 18 has data checksums on by default anyway.
func TestMajors(t *testing.T) {
	for _, major := range testenv.Majors() {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			start := time.Now()
			testMajor(t, major)
			t.Logf("PostgreSQL %d: %v", major, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

func testMajor(t *testing.T, major int) {
	r := fileRepo(t)
	opts := testenv.PostgresOptions{Major: major}
	if major >= 17 {
		// WAL summaries (for incremental backups) must not disturb a
		// full backup or its restore.
		opts.Conf = map[string]string{"summarize_wal": "on"}
	}
	primary, copies := archivingServerWith(t, r, opts)
	if got := primary.SQL(t, "SELECT current_setting('server_version_num')::int / 10000"); got != fmt.Sprint(major) {
		t.Fatalf("the server runs PostgreSQL %s, want %d", got, major)
	}
	if major >= 17 && primary.SQL(t, "SHOW summarize_wal") != "on" {
		t.Fatal("summarize_wal is not on")
	}
	primary.SQL(t, "CREATE TABLE marks (id serial PRIMARY KEY, note text)")

	// Backup-push and the seed scenario, then every archived file back.
	id, target := seedScenario(t, r, primary)
	checkArchivedMajor(t, r, copies, major)
	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.PGVersion/10000 != major {
		t.Fatalf("backup %s records PostgreSQL %d, want %d", id, m.PGVersion, major)
	}

	t.Run("point-in-time restore", func(t *testing.T) {
		dir, res := restoreInto(t, r, "--target-time", target, "--target-action", "promote")
		checkVerifier(t, res, dir, major)
		restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
		if restored.Major != major {
			t.Fatalf("restored cluster is PostgreSQL %d, want %d", restored.Major, major)
		}
		waitPromoted(t, restored)
		checkSeedRestored(t, restored)
	})

	// --verify pg_verifybackup reads the restored files again with
	// pg_verifybackup: PostgreSQL 15's checks a 15 backup; it cannot check
	// a newer major's (17's and 18's manifest version 2 it cannot even
	// read), so restore says so and reads them with walvault's own check.
	t.Run("pg_verifybackup", func(t *testing.T) {
		_, res := restoreInto(t, r, "--verify", "pg_verifybackup", "--pg-bin", primary.ClientBinDir, "--target-immediate")
		wants := []string{"pg_verifybackup -n"}
		if major > 15 {
			wants = []string{"backup_manifest checked by walvault", fmt.Sprintf("from PostgreSQL 15, older than the backup's %d", major)}
		}
		for _, want := range wants {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("restore --verify pg_verifybackup of a PostgreSQL %d backup with --pg-bin %s: output lacks %q:\n%s", major, primary.ClientBinDir, want, res.stdout)
			}
		}
	})

	t.Run("drill", func(t *testing.T) {
		scratch := testenv.UserDir(t)
		bin := testenv.ServerBinDir(t, major)
		res := walvault(t, r.env, "drill", "--scratch-dir", scratch, "--pg-bin", bin, "--amcheck", "off",
			"--check-sql", "SELECT * FROM audit_log WHERE note = 'after the target'")
		if res.code != 0 || !strings.Contains(res.stdout, "drill OK: backup "+id) {
			t.Fatalf("drill with PostgreSQL %d's programs: %v", major, res)
		}
		if !strings.Contains(res.stdout, "backup_manifest checked by walvault") {
			t.Errorf("drill output does not say walvault's manifest verifier ran:\n%s", res.stdout)
		}
		assertDrillCleanedUp(t, scratch)
		_, lastOK, err := drill.Latest(t.Context(), r.backend)
		if err != nil || lastOK == nil || lastOK.PGBinDir != bin || lastOK.PGVersion/10000 != major {
			t.Fatalf("drill record: %+v, %v; want an OK drill of PostgreSQL %d with %s", lastOK, err, major, bin)
		}
		debian := fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
		if _, err := os.Stat(filepath.Join(debian, "postgres")); err == nil {
			return // drill finds this major's programs by itself
		}
		// Without --pg-bin the drill looks where PostgreSQL is installed,
		// finds only other majors, and refuses before writing anything.
		before := listKeys(t, r, drill.RecordsPrefix)
		res = walvault(t, r.env, "drill", "--scratch-dir", scratch)
		if res.code != 1 || !strings.Contains(res.stderr, fmt.Sprintf("no PostgreSQL %d server programs found", major)) ||
			!strings.Contains(res.stderr, debian) || !strings.Contains(res.stderr, "--pg-bin") {
			t.Fatalf("drill without PostgreSQL %d's programs: want exit 1 naming the major, %s and --pg-bin, got %v", major, debian, res)
		}
		if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); len(lines) != 1 {
			t.Errorf("drill without programs: want one line, got %d:\n%s", len(lines), res.stderr)
		}
		if after := listKeys(t, r, drill.RecordsPrefix); !slices.Equal(before, after) {
			t.Errorf("a drill that could not start wrote %v", after)
		}
		assertDrillCleanedUp(t, scratch)
	})

	// A standby made from the repository, configured like its primary
	// (archive_mode = on does not archive during recovery).
	standby := startStandbyFromRepo(t, r, primary, testenv.PostgresOptions{ArchiveCommand: archiveCommandOf(t, primary)})
	waitReplayed(t, primary, standby)
	if standbyBackupMajor(major) {
		t.Run("backup from a standby", func(t *testing.T) {
			primary.SQL(t, "CREATE TABLE on_standby AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g")
			waitReplayed(t, primary, standby)
			const sum = "SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM on_standby"
			want := primary.SQL(t, sum)
			sid := backupPushFrom(t, r, primary, standby)
			primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)
			waitDone(t, r, sid)
			// The standby's standby.signal is in its backup: restore
			// removes it, or the restored server would start as a
			// standby of the live primary (explore23e F5).
			dir, res := restoreInto(t, r, "--backup", sid, "--target-immediate", "--target-action", "promote")
			if _, err := os.Stat(filepath.Join(dir, "standby.signal")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(res.stdout+res.stderr, "taken on a standby") {
				t.Errorf("restore of the standby's backup: standby.signal %v, output %q; want it removed and said", err, res.stdout)
			}
			restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
			waitPromoted(t, restored)
			if got := restored.SQL(t, sum); got != want {
				t.Fatalf("on_standby restored from the standby's backup: %s, want %s", got, want)
			}
			if got := restored.SQL(t, "SELECT count(*) FROM audit_log"); got != "2" {
				t.Errorf("audit_log restored from the standby's backup: %s rows, want 2", got)
			}
		})
	}
	t.Run("wal-receive follows a promotion", func(t *testing.T) {
		receiveFollowsPromotion(t, r, primary, standby, id)
	})
}

// standbyBackupMajor says whether TestMajors takes a backup from a standby
// on major: on two of them, the others stay lean.
func standbyBackupMajor(major int) bool { return major == 16 || major == 18 }

// archiveCommandOf is a server's archive_command.
func archiveCommandOf(t *testing.T, pg *testenv.Postgres) string {
	t.Helper()
	return pg.SQL(t, "SHOW archive_command")
}

// checkArchivedMajor fetches back every file the server archived
// (byte-identical), and checks each segment's page header: PostgreSQL
// major's page magic, a header that passes walvault's checks, and the
// repository's identity recording that major.
func checkArchivedMajor(t *testing.T, r *repo, copies string, major int) {
	t.Helper()
	entries := fetchEveryArchivedFile(t, r, copies)
	segments := 0
	for _, e := range entries {
		f, err := wal.Classify(e.Name())
		if err != nil || f.Kind != wal.KindSegment {
			continue
		}
		segments++
		file, err := os.Open(filepath.Join(copies, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := wal.ReadHeader(file)
		file.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if hdr.PGMajor != major {
			t.Errorf("%s: page magic %#04x reads as PostgreSQL %d, want %d", e.Name(), hdr.Magic, hdr.PGMajor, major)
		}
		if err := hdr.Check(f.Segment); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
	if segments < 2 {
		t.Fatalf("only %d segments archived, want at least 2", segments)
	}
	id, err := repository.LoadIdentity(t.Context(), r.backend)
	if err != nil {
		t.Fatal(err)
	}
	if id.PGMajor != major {
		t.Fatalf("walvault.json records PostgreSQL %d, want %d", id.PGMajor, major)
	}
}

// checkVerifier checks which verifier restore says checked the restored
// directory against backup_manifest: pg_verifybackup for PostgreSQL 15,
// whose is installed; walvault's own for the newer majors, whose
// pg_verifybackup is not (PostgreSQL 15's is too old for their manifests:
// 17 and 18 write manifest version 2, which it cannot read).
func checkVerifier(t *testing.T, res result, dir string, major int) {
	t.Helper()
	// The default, on every major: the streamed check as files are written.
	want := "backup_manifest checked by walvault as the files were written"
	if !strings.Contains(res.stdout, want) {
		t.Errorf("restore of a PostgreSQL %d backup does not say %q:\n%s", major, want, res.stdout)
	}
	manifest := string(readFile(t, filepath.Join(dir, "backup_manifest")))
	version := `"PostgreSQL-Backup-Manifest-Version": 1`
	if major >= 17 {
		version = `"PostgreSQL-Backup-Manifest-Version": 2`
	}
	if !strings.Contains(manifest, version) {
		t.Errorf("PostgreSQL %d's backup_manifest lacks %s:\n%.200s", major, version, manifest)
	}
}

// TestMajorsUpgradedClusterRefused: a repository created by a PostgreSQL 15
// cluster, and a PostgreSQL 18 cluster pointed at it, as after pg_upgrade
// (a new system identifier and a new major). wal-push (through
// archive_command and by hand), backup-push and wal-receive each refuse
// with one line naming both clusters, pg_upgrade and a new repository
// prefix, and write nothing.
func TestMajorsUpgradedClusterRefused(t *testing.T) {
	r := fileRepo(t)
	const sysid = "SELECT system_identifier FROM pg_control_system()"
	old, _ := archivingServer(t, r)
	old.WaitArchived(t, old.SwitchWAL(t), 60*time.Second)
	oldID := old.SQL(t, sysid)
	old.Stop(t)
	before := listKeys(t, r, "")

	upgraded, _ := archivingServerWith(t, r, testenv.PostgresOptions{Major: 18})
	wants := []string{oldID, upgraded.SQL(t, sysid), "created by PostgreSQL 15, this server runs PostgreSQL 18", "pg_upgrade", "start a new repository prefix"}
	check := func(what, out string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: refusal lacks %q:\n%s", what, w, out)
			}
		}
	}
	oneLine := func(what string, res result) {
		t.Helper()
		if res.code == 0 {
			t.Fatalf("%s from the upgraded cluster succeeded: %v", what, res)
		}
		check(what, res.stderr)
		if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); len(lines) != 1 {
			t.Errorf("%s: want one line, got %d:\n%s", what, len(lines), res.stderr)
		}
	}

	seg := upgraded.SwitchWAL(t)
	deadline := time.Now().Add(30 * time.Second)
	for upgraded.SQL(t, "SELECT failed_count > 0 FROM pg_stat_archiver") != "t" {
		if time.Now().After(deadline) {
			t.Fatalf("archive_command did not fail within 30s:\n%s", upgraded.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("archive_command", string(readFile(t, upgraded.LogFile)))
	oneLine("wal-push", walvault(t, r.env, "wal-push", filepath.Join(upgraded.DataDir, "pg_wal", seg)))
	oneLine("backup-push", walvault(t, r.env, "backup-push", "--pg-conn", upgraded.ConnString()))
	oneLine("wal-receive", walvault(t, append(r.env, "WALVAULT_TIMEOUT=30s"), "wal-receive", "--slot", "walvault", "--create-slot",
		"--pg-conn", upgraded.ConnString(), "--spool-dir", t.TempDir()))

	if after := listKeys(t, r, ""); !slices.Equal(before, after) {
		t.Errorf("the upgraded cluster changed the repository:\nbefore %v\nafter  %v", before, after)
	}
}
