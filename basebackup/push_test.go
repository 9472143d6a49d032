package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// TestPush backs up a real PostgreSQL 15 (pgbench scale 1 and one
// tablespace) that archives with walvault, and checks every stored byte.
// The subtests share the server and run in order.
func TestPush(t *testing.T) {
	t.Parallel()
	pg, b := archivingServer(t)
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	tsDir := testenv.UserDir(t)
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
	pg.SQL(t, "CREATE TABLE in_ts TABLESPACE ts AS SELECT g AS x FROM generate_series(1, 10000) g")
	tsOID := pg.SQL(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
	sysid := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var first repository.BackupManifest

	t.Run("protocol order", func(t *testing.T) { testProtocolOrder(t, pg) })

	t.Run("small parts", func(t *testing.T) {
		var logs bytes.Buffer
		opts := Options{
			ConnString:  pg.ConnString(),
			Label:       `it's a \ label`,
			Compression: repository.LZ4,
			PartSize:    MinPartSize,
			Host:        "db-1",
			Version:     "test",
			Log:         slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Progress:    progress.New(io.Discard, progress.Options{}),
			Now:         clock,
		}
		started := time.Now()
		m, err := Push(ctxTimeout(t), b, opts)
		if err != nil {
			t.Fatalf("Push: %v\nlog:\n%s", err, logs.String())
		}
		t.Logf("backup %s took %v: %d archives, %d raw bytes, %d stored", m.ID, time.Since(started).Round(time.Millisecond), len(m.Archives), m.RawBytes, m.Stored)
		first = m
		if m.ID != "20261125T103000Z" || m.SystemID != sysid || m.Label != opts.Label || m.Host != "db-1" || m.Walvault != "test" {
			t.Errorf("manifest: got id %q, system id %q, label %q, host %q, version %q; want 20261125T103000Z, %s, %q, db-1, test",
				m.ID, m.SystemID, m.Label, m.Host, m.Walvault, sysid, opts.Label)
		}
		if m.PGVersion < 150000 || m.PGVersion >= 160000 || m.WALSegmentSize != 16<<20 || m.FormatVersion != repository.StoredSumFormatVersion {
			t.Errorf("manifest: got pg_version %d, wal_segment_size %d, format %d; want 15xxxx, 16 MiB, %d", m.PGVersion, m.WALSegmentSize, m.FormatVersion, repository.StoredSumFormatVersion)
		}
		checkPositions(t, m)

		stored, err := repository.LoadBackupManifest(ctxTimeout(t), b, m.ID)
		if err != nil {
			t.Fatalf("LoadBackupManifest: %v", err)
		}
		if a, _ := json.Marshal(stored); !bytes.Equal(a, mustJSON(t, m)) {
			t.Errorf("stored manifest differs from the returned one:\nstored   %s\nreturned %s", a, mustJSON(t, m))
		}

		if len(m.Archives) != 2 {
			t.Fatalf("archives: got %d (%+v), want 2 (the tablespace and base.tar)", len(m.Archives), m.Archives)
		}
		ts, base := m.Archives[0], m.Archives[1]
		if ts.Name != tsOID+".tar" || strconv.FormatUint(uint64(ts.TablespaceOID), 10) != tsOID || ts.TablespaceLocation != tsDir {
			t.Errorf("tablespace archive: got %s oid %d at %q, want %s.tar oid %s at %q", ts.Name, ts.TablespaceOID, ts.TablespaceLocation, tsOID, tsOID, tsDir)
		}
		if base.Name != "base.tar" || base.TablespaceOID != 0 || base.TablespaceLocation != "" {
			t.Errorf("data directory archive: got %+v, want base.tar without tablespace", base)
		}
		if len(base.Parts) < 10 {
			t.Errorf("base.tar: %d parts of %d bytes, want at least 10 for a pgbench scale 1 database", len(base.Parts), MinPartSize)
		}
		var raw, storedBytes int64
		for _, a := range m.Archives {
			for i, p := range a.Parts {
				if want := repository.BackupPartKey(m.ID, a.Name, i, repository.LZ4); p.Key != want {
					t.Errorf("%s part %d: key %q, want %q", a.Name, i, p.Key, want)
				}
				if i < len(a.Parts)-1 && p.RawSize != MinPartSize {
					t.Errorf("%s: raw size %d, want %d for every part but the last", p.Key, p.RawSize, MinPartSize)
				}
				checkPart(t, b, p)
				raw += p.RawSize
				storedBytes += p.StoredSize
			}
		}
		if raw != m.RawBytes || storedBytes+m.PGManifest.StoredSize != m.Stored {
			t.Errorf("totals: manifest says raw %d stored %d, parts add up to raw %d stored %d", m.RawBytes, m.Stored, raw, storedBytes+m.PGManifest.StoredSize)
		}

		files := readTar(t, b, base)
		for _, name := range []string{"PG_VERSION", "global/pg_control", "backup_label", "tablespace_map"} {
			if _, ok := files[name]; !ok {
				t.Errorf("base.tar lacks %s", name)
			}
		}
		if got := string(files["backup_label"]); !strings.Contains(got, "LABEL: "+opts.Label+"\n") || !strings.Contains(got, "START WAL LOCATION: "+m.StartLSN) {
			t.Errorf("backup_label:\n%s\nwant LABEL: %s and START WAL LOCATION: %s", got, opts.Label, m.StartLSN)
		}
		if got := string(files["tablespace_map"]); !strings.Contains(got, tsOID+" "+tsDir) {
			t.Errorf("tablespace_map: got %q, want a line %q", got, tsOID+" "+tsDir)
		}
		tsFiles := readTar(t, b, ts)
		if !hasPrefix(tsFiles, "PG_15_") {
			t.Errorf("%s holds %d files, none under PG_15_*", ts.Name, len(tsFiles))
		}

		// PostgreSQL's backup_manifest, stored raw, is valid JSON and checks
		// out against the restored files.
		if m.PGManifest.Key != repository.BackupPrefix(m.ID)+repository.PGManifestName || m.PGManifest.Compression != repository.None {
			t.Errorf("pg manifest part: got %+v, want key %s uncompressed", m.PGManifest, repository.BackupPrefix(m.ID)+repository.PGManifestName)
		}
		manifest := checkPart(t, b, m.PGManifest)
		var pgm map[string]any
		if err := json.Unmarshal(manifest, &pgm); err != nil || pgm["PostgreSQL-Backup-Manifest-Version"] == nil {
			t.Errorf("backup_manifest is not PostgreSQL's manifest (%v):\n%.300s", err, manifest)
		}
		verifyBackup(t, pg, files, tsFiles, tsOID, manifest)

		for _, want := range []string{"backup started", "backup done", "backup_id=" + m.ID} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	})

	t.Run("one part each, same second", func(t *testing.T) {
		if first.ID == "" {
			t.Fatal("the first backup of this test failed (see above); this case builds on it")
		}
		var bar bytes.Buffer
		m, err := Push(ctxTimeout(t), b, Options{
			ConnString: pg.ConnString(),
			Checkpoint: "spread",
			Progress:   progress.New(&bar, progress.Options{Terminal: true}),
			Now:        clock, // the same second as the first backup
		})
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
		if m.ID != "20261125T103001Z" {
			t.Errorf("id: got %s, want 20261125T103001Z (the first backup holds 20261125T103000Z)", m.ID)
		}
		if m.Label != "walvault "+m.ID {
			t.Errorf("label: got %q, want %q", m.Label, "walvault "+m.ID)
		}
		for _, a := range m.Archives {
			if len(a.Parts) != 1 || a.Parts[0].Compression != repository.LZ4 {
				t.Errorf("%s: got %d parts (%+v), want 1 lz4 part (the repository's compression)", a.Name, len(a.Parts), a.Parts)
			}
			checkPart(t, b, a.Parts[0])
		}
		out := bar.String()
		if !strings.Contains(out, "backup "+m.ID) || !strings.Contains(out, "100%") {
			t.Errorf("progress bar output lacks %q or 100%%: %q", "backup "+m.ID, lastLine(out))
		}
	})

	t.Run("cancelled midway", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctxTimeout(t))
		defer cancel()
		cb := &cancellingBackend{Backend: b, when: "base.tar.00003", cancel: cancel}
		m, err := Push(ctx, cb, Options{ConnString: pg.ConnString(), PartSize: MinPartSize, Now: func() time.Time { return now.Add(time.Hour) }})
		t.Logf("error: %v", err)
		if err == nil {
			t.Fatalf("Push with a context cancelled midway: got %+v, nil; want an error", m)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %q: want it to wrap context.Canceled", err)
		}
		id := repository.NewBackupID(now.Add(time.Hour))
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name backup %s", err, id)
		}
		if _, err := b.Stat(t.Context(), repository.BackupManifestKey(id)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%s) after a cancelled push: got %v, want ErrNotFound", repository.BackupManifestKey(id), err)
		}
		ids, complete, err := repository.BackupFolders(t.Context(), b)
		if err != nil || !contains(ids, id) || complete[id] {
			t.Errorf("BackupFolders: got %v %v %v; want %s present and incomplete", ids, complete, err, id)
		}
		waitFor(t, "the upload and progress goroutines to end", func() bool { return ourGoroutines() == "" })
		waitFor(t, "the server's WAL sender to end", func() bool {
			return pg.SQL(t, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'") == "0"
		})
	})

	t.Run("role without REPLICATION", func(t *testing.T) {
		pg.SQL(t, "CREATE ROLE plain LOGIN")
		_, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString() + " user=plain"})
		t.Logf("error: %v", err)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("Push as a role without REPLICATION: got %v, want a PgError 42501", err)
		}
		for _, want := range []string{"replication", `ALTER ROLE "plain" REPLICATION`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q: want it to contain %q", err, want)
			}
		}
	})

	t.Run("role with REPLICATION", func(t *testing.T) {
		// Not a superuser: what production backups run as. PostgreSQL 15
		// lets every role read archive_command, so no other grant is needed.
		pg.SQL(t, "CREATE ROLE backup LOGIN REPLICATION")
		m, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString() + " user=backup", Compression: repository.None})
		if err != nil {
			t.Fatalf("Push as a replication role: got %v, want a backup", err)
		}
		for _, a := range m.Archives {
			for _, p := range a.Parts {
				if p.Compression != repository.None || p.StoredSize != p.RawSize {
					t.Errorf("%s: compression %s, stored %d of %d raw bytes; want none, all", p.Key, p.Compression, p.StoredSize, p.RawSize)
				}
			}
		}
	})

	t.Run("repository of another cluster", func(t *testing.T) {
		other := mem.New()
		if _, err := repository.EnsureIdentity(t.Context(), other, repository.NewIdentity(42, 16<<20, 15, repository.LZ4, "db-2", now), nil); err != nil {
			t.Fatal(err)
		}
		_, err := Push(ctxTimeout(t), other, Options{ConnString: pg.ConnString()})
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "42") || !strings.Contains(err.Error(), sysid) {
			t.Errorf("Push into another cluster's repository: got %v, want a refusal naming 42 and %s", err, sysid)
		}
		checkNothingStored(t, other, repository.BackupsPrefix)
	})

	t.Run("repository without walvault.json", func(t *testing.T) {
		empty := mem.New()
		// archive_command pushes elsewhere: the switched segment never
		// arrives, and the wait ends at WALTimeout.
		_, err := Push(ctxTimeout(t), empty, Options{ConnString: pg.ConnString(), WALTimeout: 3 * time.Second})
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no WAL has reached") || !strings.Contains(err.Error(), "pg_switch_wal()") {
			t.Errorf("Push into an empty repository: got %v, want a refusal saying no WAL has reached it", err)
		}
		checkNothingStored(t, empty, "")
	})
}

// TestPushRefusesServer: a server whose WAL does not reach walvault gets
// no backup.
// TestPushReportsTheArchiveOverTheManifest: in an outage, the manifest's
// Put fails while the archive's last Puts are still running, and began
// first; when those fail too, the backup's error is theirs, not the
// manifest's.
func TestPushReportsTheArchiveOverTheManifest(t *testing.T) {
	t.Parallel()
	pg, b := archivingServer(t)
	errArchive, errManifest := errors.New("archive part refused"), errors.New("manifest refused")
	fault, manifestFailed := storagetest.NewFault(b), make(chan struct{})
	fault.Before(storagetest.OpPut, storagetest.Contains("/base.tar."), func(ctx context.Context, _ string) error {
		select {
		case <-manifestFailed:
			return errArchive
		case <-time.After(200 * time.Millisecond):
			return nil
		}
	})
	fault.Before(storagetest.OpPut, storagetest.Contains("/backup_manifest"), func(context.Context, string) error {
		close(manifestFailed)
		return errManifest
	})
	_, err := Push(ctxTimeout(t), fault, Options{ConnString: pg.ConnString(), Compression: repository.LZ4, PartSize: MinPartSize,
		Log: slog.New(slog.DiscardHandler), Progress: progress.New(io.Discard, progress.Options{})})
	if !errors.Is(err, errArchive) {
		t.Fatalf("Push with the manifest and the archive's last part refused: %v; want the archive's error", err)
	}
}

func TestPushRefusesServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts testenv.PostgresOptions
		want []string
	}{
		{"archive_mode off", testenv.PostgresOptions{}, []string{`archive_mode is "off"`, "archive_mode = on", "walvault wal-push %p", "walvault wal-receive --slot"}},
		{"archive_command not walvault", testenv.PostgresOptions{ArchiveCommand: "test ! -f /nonexistent/%f"}, []string{`"test ! -f /nonexistent/%f"`, "archive_command = 'walvault wal-push %p'", "wal-receive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.StartPostgres(t, tc.opts)
			b := mem.New()
			_, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString(), WALTimeout: 3 * time.Second})
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Push: got %v, want a refusal", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want it to contain %q", err, want)
				}
			}
			checkNothingStored(t, b, "")
		})
	}
}

func TestBaseBackupCommandWithoutArchiveWait(t *testing.T) {
	t.Parallel()
	got, err := baseBackupCommand("l", true, false)
	if err != nil || !strings.Contains(got, "PROGRESS, WAIT false, TABLESPACE_MAP") || strings.Count(got, "WAIT") != 1 {
		t.Fatalf("baseBackupCommand without archive wait = %q, %v; want WAIT false", got, err)
	}
}

// TestWaitForWAL: the wait ends once every segment from the backup's start
// to its stop is stored; it times out with what is missing and how far
// wal-receive's partials reach.
func TestWaitForWAL(t *testing.T) {
	t.Parallel()
	m := repository.BackupManifest{ID: "20261125T103000Z", StartWAL: "000000010000000000000002", StopWAL: "000000010000000000000004", WALSegmentSize: 16 << 20}
	src := walSource{Slot: "walvault"}

	t.Run("segments arrive", func(t *testing.T) {
		t.Parallel()
		b := mem.New()
		putWAL(t, b, segKey(wal.Segment{Timeline: 1, Seg: 2}))
		putWAL(t, b, segKey(wal.Segment{Timeline: 1, Seg: 3}))
		var logs bytes.Buffer
		late := make(chan error, 1)
		go func() {
			time.Sleep(700 * time.Millisecond)
			late <- b.Put(context.Background(), segKey(wal.Segment{Timeline: 1, Seg: 4}), strings.NewReader("x"), storage.PutOptions{IfNotExists: true, Size: 1})
		}()
		start := time.Now()
		err := waitForWAL(t.Context(), b, repository.LZ4, m, src, Options{WALTimeout: 30 * time.Second, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err := <-late; err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("waitForWAL: %v", err)
		}
		if d := time.Since(start); d < 700*time.Millisecond || d > 10*time.Second {
			t.Errorf("waitForWAL returned after %v, want soon after the last segment arrived (700ms)", d)
		}
		for _, want := range []string{"waiting for wal-receive", "segment=000000010000000000000004", "slot=walvault", "the backup's WAL is in the repository"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	})

	t.Run("segments in other codecs", func(t *testing.T) {
		t.Parallel()
		b := mem.New()
		for n, c := range map[uint32]repository.Compression{2: repository.Zstd, 3: repository.LZ4, 4: repository.None} {
			s := wal.Segment{Timeline: 1, Seg: n}
			putWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, c))
		}
		if err := waitForWAL(t.Context(), b, repository.LZ4, m, src, Options{WALTimeout: 5 * time.Second, Log: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatalf("waitForWAL with segments in zstd, lz4 and uncompressed: %v", err)
		}
	})

	t.Run("across a switchover", func(t *testing.T) {
		t.Parallel()
		// Taken on a standby: started on timeline 1 before the switch in
		// segment 3, stopped on timeline 2; timeline 1 left segment 3 as
		// a partial only. And one that started and stopped in segment 3.
		b := mem.New()
		putWAL(t, b, segKey(wal.Segment{Timeline: 1, Seg: 2}))
		putWAL(t, b, repository.PartialKey(wal.Segment{Timeline: 1, Seg: 3}, 0x3000148, repository.LZ4))
		putWAL(t, b, segKey(wal.Segment{Timeline: 2, Seg: 3}))
		putWAL(t, b, segKey(wal.Segment{Timeline: 2, Seg: 4}))
		for _, m := range []repository.BackupManifest{
			{ID: m.ID, StartWAL: "000000010000000000000002", StopWAL: "000000020000000000000004", WALSegmentSize: 16 << 20},
			{ID: m.ID, StartWAL: "000000010000000000000003", StopWAL: "000000020000000000000003", WALSegmentSize: 16 << 20},
		} {
			if err := waitForWAL(t.Context(), b, repository.LZ4, m, walSource{}, Options{WALTimeout: 3 * time.Second, Log: slog.New(slog.DiscardHandler)}); err != nil {
				t.Errorf("waitForWAL of a backup from %s to %s: %v", m.StartWAL, m.StopWAL, err)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		b := mem.New()
		putWAL(t, b, segKey(wal.Segment{Timeline: 1, Seg: 2}))
		putWAL(t, b, repository.PartialKey(wal.Segment{Timeline: 1, Seg: 3}, 0x3000148, repository.LZ4))
		err := waitForWAL(t.Context(), b, repository.LZ4, m, src, Options{WALTimeout: 1200 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
		var te *walTimeoutError
		if !errors.As(err, &te) || te.segment != "000000010000000000000003" {
			t.Fatalf("waitForWAL: got %v, want a timeout at segment 3", err)
		}
		for _, want := range []string{"000000010000000000000003", "after 1.2s", "newest partial of it ends at 0/3000148", "WAITING_FOR_WALS", "slot walvault", "--timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := waitForWAL(ctx, mem.New(), repository.LZ4, m, src, Options{WALTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
		var te *walTimeoutError
		if err == nil || errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waitForWAL cancelled: got %v, want the context's error", err)
		}
	})
}

// TestPushWALReceiveTimeout: archive_mode off, and a walsender named
// walvault-receive on a slot (pg_receivewal standing in for wal-receive,
// writing elsewhere) whose flush position the repository appears to hold.
// backup-push accepts it as the WAL source, does not let PostgreSQL wait
// for archiving, waits for the WAL itself, and when it does not come
// records the backup as WAITING_FOR_WALS and says so.
func TestPushWALReceiveTimeout(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	sysid := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	b := mem.New()
	id, err := strconv.ParseUint(sysid, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repository.EnsureIdentity(t.Context(), b, repository.NewIdentity(id, 16<<20, 15, repository.LZ4, "db-1", time.Now()), nil); err != nil {
		t.Fatal(err)
	}

	pg.SQL(t, "SELECT pg_create_physical_replication_slot('walvault', true)")
	dir := testenv.UserDir(t)
	recv := pg.Command(t, "pg_receivewal", "-d", pg.ConnString()+" application_name="+receiveAppName,
		"-D", dir, "--slot", "walvault", "--synchronous", "--status-interval", "1", "--no-loop")
	var recvErr bytes.Buffer
	recv.Stderr = &recvErr
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Process.Kill(); recv.Wait() })
	// Wait until it has flushed everything (the server is idle), so the
	// flush position stays in the segment of the partial below.
	var flush string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := pg.SQL(t, "SELECT coalesce(flush_lsn::text, ''), coalesce(flush_lsn = pg_current_wal_lsn(), false) FROM pg_stat_replication WHERE application_name = '"+receiveAppName+"'")
		if lsn, caughtUp, _ := strings.Cut(out, "|"); caughtUp == "t" {
			flush = lsn
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg_receivewal did not catch up in 30s (%q): %s", out, recvErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	lsn, err := wal.ParseLSN(flush)
	if err != nil {
		t.Fatal(err)
	}
	// What wal-receive would have stored: a partial up to the end of the
	// segment being written.
	seg, _ := wal.SegmentFromLSN(1, lsn-1, 16<<20)
	segStart, _ := seg.StartLSN(16 << 20)
	putWAL(t, b, repository.PartialKey(seg, segStart+16<<20, repository.LZ4))

	var logs bytes.Buffer // slog's handler serialises writes
	m, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString(), WALTimeout: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Logf("error: %v", err)
	var te *walTimeoutError
	if !errors.As(err, &te) || m.ID == "" {
		t.Fatalf("Push with WAL that never arrives: got %+v, %v; want the manifest and a timeout", m, err)
	}
	log := logs.String()
	for _, want := range []string{"WAL source: wal-receive on slot walvault", "flushed=", "waiting for wal-receive"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "WAL archiving is not enabled") {
		t.Errorf("BASE_BACKUP waited for archiving (PostgreSQL's notice is in the log):\n%s", log)
	}
	list, err := repository.ListBackups(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != m.ID || list[0].Status != repository.StatusWaitingForWALs || list[0].MissingWAL != te.segment {
		t.Fatalf("backups: %+v, want %s WAITING_FOR_WALS for %s", list, m.ID, te.segment)
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPositions checks the manifest's LSNs, timelines and segments agree.
func checkPositions(t *testing.T, m repository.BackupManifest) {
	t.Helper()
	if m.StartTimeline != 1 || m.StopTimeline != 1 {
		t.Errorf("timelines: got %d..%d, want 1..1", m.StartTimeline, m.StopTimeline)
	}
	if len(m.StartWAL) != 24 || len(m.StopWAL) != 24 || m.StartWAL > m.StopWAL || !strings.HasPrefix(m.StartWAL, "00000001") {
		t.Errorf("WAL: got %s..%s, want two segment names on timeline 1 in order", m.StartWAL, m.StopWAL)
	}
	if m.StartLSN == "" || m.StopLSN == "" || m.StartTime.IsZero() || m.StopTime.Before(m.StartTime) {
		t.Errorf("positions: got LSN %s..%s, time %s..%s", m.StartLSN, m.StopLSN, m.StartTime, m.StopTime)
	}
}

// checkPart reads a part back, checks its stored size and the sha256 of its
// stored bytes against the manifest, and returns the raw bytes.
func checkPart(t *testing.T, b storage.Backend, p repository.BackupPart) []byte {
	t.Helper()
	rc, info, err := b.Get(t.Context(), p.Key)
	if err != nil {
		t.Fatalf("Get(%s): %v", p.Key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", p.Key, err)
	}
	if int64(len(body)) != p.StoredSize || info.Size != p.StoredSize {
		t.Errorf("%s: stored %d bytes (info %d), manifest says %d", p.Key, len(body), info.Size, p.StoredSize)
	}
	r, err := p.Compression.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", p.Key, err)
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != p.StoredSHA256 || p.SHA256 != "" || int64(len(raw)) != p.RawSize {
		t.Errorf("%s: stored sha256 %s, %d raw bytes; manifest says %s (raw sha256 %q, want none), %d bytes", p.Key, got, len(raw), p.StoredSHA256, p.SHA256, p.RawSize)
	}
	return raw
}

// readTar concatenates an archive's parts and reads it as a tar: the file
// contents by name (directories and links as empty entries).
func readTar(t *testing.T, b storage.Backend, a repository.BackupArchive) map[string][]byte {
	t.Helper()
	var readers []io.Reader
	for _, p := range a.Parts {
		readers = append(readers, bytes.NewReader(checkPart(t, b, p)))
	}
	tr := tar.NewReader(io.MultiReader(readers...))
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not a valid tar after %d entries: %v", a.Name, len(files), err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if hdr.Typeflag != tar.TypeReg {
			files[name+"/"] = nil
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: reading %s: %v", a.Name, hdr.Name, err)
		}
		files[name] = body
	}
	return files
}

// verifyBackup lays the archives out as a data directory and runs
// pg_verifybackup on it against PostgreSQL's backup_manifest.
func verifyBackup(t *testing.T, pg *testenv.Postgres, base, ts map[string][]byte, tsOID string, manifest []byte) {
	t.Helper()
	dir := testenv.UserDir(t)
	write := func(root string, files map[string][]byte) {
		for name, body := range files {
			p := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(name, "/")))
			if strings.HasSuffix(name, "/") {
				if err := os.MkdirAll(p, 0o700); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, body, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(dir, base)
	write(filepath.Join(dir, "pg_tblspc", tsOID), ts)
	if err := os.WriteFile(filepath.Join(dir, "backup_manifest"), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, dir)
	stdout, stderr, err := pg.Run(t, "pg_verifybackup", "-n", dir)
	if err != nil {
		t.Errorf("pg_verifybackup -n: %v\n%s%s", err, stdout, stderr)
	}
}

func hasPrefix(files map[string][]byte, prefix string) bool {
	for name := range files {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// ourGoroutines returns the stacks of goroutines this package started
// (part uploads, progress logging) that are still running.
func ourGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "basebackup.(*uploader).put.func") || strings.Contains(g, "basebackup.(*uploader).start.func") || strings.Contains(g, "basebackup.(*progress).logLoop") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkNothingStored fails if any object exists under prefix.
func checkNothingStored(t *testing.T, b storage.Backend, prefix string) {
	t.Helper()
	err := b.List(t.Context(), prefix, func(oi storage.ObjectInfo) error {
		if oi.Key != repository.IdentityKey {
			t.Errorf("a refused push stored %s", oi.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cancellingBackend cancels the context when a Put of a key containing
// when begins, as an interrupt midway through a backup would.
type cancellingBackend struct {
	storage.Backend
	when   string
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancellingBackend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if strings.Contains(key, c.when) {
		c.once.Do(c.cancel)
	}
	return c.Backend.Put(ctx, key, r, opts)
}
