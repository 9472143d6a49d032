package restore_test

// End-to-end restore of a real PostgreSQL 15 base backup, without the
// basebackup package: pg_basebackup -Ft takes the backup, this test stores
// it in walvault's repository layout, WAL is archived for real by the
// walvault binary (archive_command), and the restored cluster is started
// with restore_command = walvault wal-fetch.

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/wal"
)

// testLogWriter sends log lines to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pgBackup is what pg_basebackup -Ft left in a directory.
type pgBackup struct {
	dir         string
	start, stop time.Time
	tablespaces map[uint32]string // oid -> location
}

// uploadBackup stores the pg_basebackup output in b the way backup-push
// does: each tar split into lz4 parts of partSize raw bytes, with sha256
// and sizes; backup_manifest as is; walvault-backup.json last.
// tamper, if set, changes what is stored for a part after its checksum
// was taken.
func uploadBackup(t *testing.T, b storage.Backend, id string, bk pgBackup, partSize int, tamper func(archive string, seq int, raw []byte) []byte) repository.BackupManifest {
	t.Helper()
	ctx := context.Background()
	ident, err := repository.LoadIdentity(ctx, b)
	if err != nil {
		t.Fatalf("repository identity (written by wal-push): %v", err)
	}
	pgm, err := os.ReadFile(filepath.Join(bk.dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		WALRanges []struct {
			Timeline uint32 `json:"Timeline"`
			Start    string `json:"Start-LSN"`
			End      string `json:"End-LSN"`
		} `json:"WAL-Ranges"`
	}
	if err := json.Unmarshal(pgm, &parsed); err != nil || len(parsed.WALRanges) != 1 {
		t.Fatalf("backup_manifest WAL-Ranges: %v (%d ranges)", err, len(parsed.WALRanges))
	}
	r := parsed.WALRanges[0]
	segName := func(lsn string) string {
		l, err := wal.ParseLSN(lsn)
		if err != nil {
			t.Fatal(err)
		}
		s, err := wal.SegmentFromLSN(wal.TimelineID(r.Timeline), l, ident.WALSegmentSize)
		if err != nil {
			t.Fatal(err)
		}
		return s.String()
	}
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, Label: "restore test", SystemID: ident.SystemID,
		PGVersion: 150000, WALSegmentSize: ident.WALSegmentSize,
		StartTimeline: r.Timeline, StartLSN: r.Start, StopTimeline: r.Timeline, StopLSN: r.End,
		StartWAL: segName(r.Start), StopWAL: segName(r.End),
		StartTime: bk.start, StopTime: bk.stop, Host: "test", Walvault: "test",
	}
	upload := repotest.Backup{Manifest: m, PartSize: partSize, PGManifest: pgm, Tamper: tamper}
	archives := []repotest.Archive{{Name: "base.tar"}}
	for oid, loc := range bk.tablespaces {
		archives = append(archives, repotest.Archive{Name: strconv.FormatUint(uint64(oid), 10) + ".tar", TablespaceOID: oid, TablespaceLocation: loc})
	}
	for _, a := range archives {
		if a.Data, err = os.ReadFile(filepath.Join(bk.dir, a.Name)); err != nil {
			t.Fatal(err)
		}
		upload.Archives = append(upload.Archives, a)
	}
	return repotest.WriteBackup(t, b, upload)
}

func waitPromoted(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if pg.SQL(t, "SELECT pg_is_in_recovery()") == "f" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored server still in recovery after 60s; log:\n%s", pg.LogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRestoreBackupPostgres(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	bin := testenv.BuildWalvault(t)
	repoDir := testenv.UserDir(t)
	repoURL := "file://" + repoDir
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: bin + " wal-push %p",
		Env:            []string{"WALVAULT_REPO=" + repoURL},
	})
	tsOld := testenv.UserDir(t)
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsOld+"';\n"+
		"CREATE TABLE audit_log (id serial PRIMARY KEY, note text NOT NULL);\n"+
		"CREATE TABLE users (id int PRIMARY KEY, name text);\n"+
		"INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 20000) g;\n"+
		"CREATE TABLE in_ts (x int) TABLESPACE ts;\n"+
		"INSERT INTO in_ts SELECT generate_series(1, 1000);")
	tsOID, err := strconv.ParseUint(pg.SQL(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts'"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}

	// The base backup, as pg_basebackup makes it, WAL left to the archive.
	bk := pgBackup{dir: filepath.Join(testenv.UserDir(t), "bb"), start: time.Now().UTC(), tablespaces: map[uint32]string{uint32(tsOID): tsOld}}
	if out, errOut, err := pg.Run(t, "pg_basebackup", "-Ft", "-D", bk.dir, "--manifest-checksums=SHA256", "-X", "none", "-c", "fast", "--no-sync"); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s%s", err, out, errOut)
	}
	bk.stop = time.Now().UTC()
	b, err := file.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	id := repository.NewBackupID(bk.start)
	m := uploadBackup(t, b, id, bk, 4<<20, nil)
	pg.WaitArchived(t, m.StopWAL, 30*time.Second)
	if n := len(m.Archives[0].Parts); n < 3 {
		t.Fatalf("base.tar stored as %d parts, want several", n)
	}

	// After the backup: a marker, a restore point, then the damage.
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('marker');\n"+
		"SELECT pg_create_restore_point('before_drop');\n"+
		"DROP TABLE users;\n"+
		"INSERT INTO audit_log (note) VALUES ('after the drop');")
	pg.WaitArchived(t, pg.SwitchWAL(t), 30*time.Second)
	t.Logf("setup (initdb, data, pg_basebackup, upload, archiving) took %v", time.Since(began).Round(time.Millisecond))

	owner := testenv.ServerUser(t)
	var restored *testenv.Postgres
	newOpts := func(t *testing.T) restore.BackupOptions {
		dataDir := filepath.Join(testenv.UserDir(t), "data")
		cfg := filepath.Join(dataDir, "walvault.yaml")
		return restore.BackupOptions{
			DataDir:           dataDir,
			TablespaceMapping: map[string]string{tsOld: filepath.Join(testenv.UserDir(t), "ts")},
			Owner:             owner,
			RestoreCommand:    bin + " wal-fetch --config " + cfg + " %f %p",
			ConfigFile:        "walvault.yaml",
			ConfigYAML:        []byte("repo: " + repoURL + "\n"),
			Log:               log,
		}
	}

	// Restore to the restore point and start: the drop is undone. (At
	// the top level: the server lives until the test ends.)
	{
		opts := newOpts(t)
		opts.Target = restore.Target{Name: "before_drop", Action: "promote"}
		opts.Verify = restore.VerifyBoth // the streamed check and pg_verifybackup agree
		start := time.Now()
		res, err := restore.RestoreBackup(ctx, b, opts)
		if err != nil {
			t.Fatalf("RestoreBackup: %v", err)
		}
		t.Logf("restore of %d bytes took %v (%s)", res.Bytes, time.Since(start).Round(time.Millisecond), res.Verified)
		if res.Backup.ID != id || !strings.Contains(res.Verified, "pg_verifybackup") {
			t.Errorf("result: got backup %s verified by %q; want %s by pg_verifybackup", res.Backup.ID, res.Verified, id)
		}
		if _, err := os.Stat(filepath.Join(opts.DataDir, "recovery.signal")); err != nil {
			t.Errorf("recovery.signal: %v", err)
		}
		auto, _ := os.ReadFile(filepath.Join(opts.DataDir, "postgresql.auto.conf"))
		for _, want := range []string{"restore_command = '" + opts.RestoreCommand + "'\n", "recovery_target_name = 'before_drop'\n", "recovery_target_action = 'promote'\n"} {
			if !strings.Contains(string(auto), want) {
				t.Errorf("postgresql.auto.conf lacks %q:\n%s", want, auto)
			}
		}
		if os.Geteuid() == 0 {
			fi, err := os.Stat(filepath.Join(opts.DataDir, "global", "pg_control"))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if uid := os.Geteuid(); int(st.Uid) == uid {
				t.Errorf("global/pg_control is still owned by root, want %s", owner)
			}
		}

		start = time.Now()
		restored = testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: opts.DataDir})
		waitPromoted(t, restored)
		t.Logf("recovery (start, replay, promote) took %v", time.Since(start).Round(time.Millisecond))
		if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM audit_log"); got != "marker" {
			t.Errorf("audit_log after restore: got %q, want only the marker", got)
		}
		if got := restored.SQL(t, "SELECT count(*) FROM users"); got != "20000" {
			t.Errorf("users after restore: got %q rows, want 20000 (the drop undone)", got)
		}
		if got := restored.SQL(t, "SELECT count(*) FROM in_ts"); got != "1000" {
			t.Errorf("in_ts after restore: got %q rows, want 1000", got)
		}
		if got := restored.SQL(t, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"); got != opts.TablespaceMapping[tsOld] {
			t.Errorf("tablespace location: got %q, want the mapped %q", got, opts.TablespaceMapping[tsOld])
		}
	}

	t.Run("live data directory refused", func(t *testing.T) {
		before, _ := os.ReadDir(restored.DataDir)
		opts := newOpts(t)
		opts.DataDir = restored.DataDir
		_, err := restore.RestoreBackup(ctx, b, opts)
		if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), "postmaster.pid") {
			t.Fatalf("restore over a live cluster: got %v, want ErrNotEmpty naming postmaster.pid", err)
		}
		after, _ := os.ReadDir(restored.DataDir)
		if len(after) != len(before) || !restored.IsRunning() {
			t.Errorf("the live cluster was touched: %d entries before, %d after, running %v", len(before), len(after), restored.IsRunning())
		}
	})

	t.Run("tampered part leaves nothing", func(t *testing.T) {
		tamperedID := repository.NewBackupID(bk.start.Add(-time.Hour))
		tm := uploadBackup(t, b, tamperedID, bk, 4<<20, func(name string, seq int, raw []byte) []byte {
			if name == "base.tar" && seq == 2 {
				raw[len(raw)/3] ^= 0x01
			}
			return raw
		})
		opts := newOpts(t)
		opts.BackupRef = tamperedID
		tsNew := opts.TablespaceMapping[tsOld]
		if err := os.Mkdir(tsNew, 0o700); err != nil { // an empty tablespace target stays
			t.Fatal(err)
		}
		_, err := restore.RestoreBackup(ctx, b, opts)
		if !errors.Is(err, restore.ErrCorrupt) || !strings.Contains(err.Error(), tm.Archives[0].Parts[2].Key) {
			t.Fatalf("restore of a tampered backup: got %v, want ErrCorrupt naming %s", err, tm.Archives[0].Parts[2].Key)
		}
		if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("data directory after the failure: %v, want it removed", err)
		}
		if entries, err := os.ReadDir(tsNew); err != nil || len(entries) != 0 {
			t.Errorf("tablespace directory after the failure: %d entries, %v; want it empty", len(entries), err)
		}
	})

	t.Run("go check when pg_verifybackup is missing", func(t *testing.T) {
		opts := newOpts(t)
		opts.PGBinDir = t.TempDir()
		opts.BackupRef = id
		res, err := restore.RestoreBackup(ctx, b, opts)
		if err != nil {
			t.Fatalf("RestoreBackup: %v", err)
		}
		if !strings.Contains(res.Verified, "checked by walvault") {
			t.Errorf("Verified: got %q, want the Go check", res.Verified)
		}
		ignore := []string{"walvault.yaml", "tablespace_map"}
		if _, err := restore.VerifyDataDir(ctx, opts.DataDir, ignore); err != nil {
			t.Fatalf("VerifyDataDir: %v", err)
		}
		if err := os.WriteFile(filepath.Join(opts.DataDir, "PG_VERSION"), []byte("16\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := restore.VerifyDataDir(ctx, opts.DataDir, ignore); !errors.Is(err, restore.ErrVerify) || !strings.Contains(err.Error(), "PG_VERSION") {
			t.Errorf("VerifyDataDir after tampering: got %v, want ErrVerify naming PG_VERSION", err)
		}
	})
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}
