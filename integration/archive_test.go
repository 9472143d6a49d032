package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// repos runs fn against each kind of repository.
func repos(t *testing.T, fn func(t *testing.T, r *repo)) {
	for _, mk := range []func(*testing.T) *repo{fileRepo, s3Repo} {
		r := mk(t)
		t.Run(r.name, func(t *testing.T) { fn(t, r) })
	}
}

// archivingServer starts PostgreSQL 15 whose archive_command pushes with
// walvault and also copies each file to a plain directory, the ground truth
// every fetched file is compared with.
func archivingServer(t *testing.T, r *repo) (*testenv.Postgres, string) {
	return archivingServerWith(t, r, testenv.PostgresOptions{})
}

// archivingServerWith is archivingServer with more options (another
// major, settings); it sets ArchiveCommand and Env itself.
func archivingServerWith(t *testing.T, r *repo, opts testenv.PostgresOptions) (*testenv.Postgres, string) {
	bin := testenv.BuildWalvault(t)
	copies := filepath.Join(testenv.UserDir(t), "copies")
	if err := os.Mkdir(copies, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, copies)
	opts.ArchiveCommand = bin + " wal-push %p && cp %p " + copies + "/%f"
	opts.Env = r.env
	pg := testenv.StartPostgres(t, opts)
	return pg, copies
}

func TestArchiveAndFetchUnderLoad(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, copies := archivingServer(t, r)
		pg.Pgbench(t, "-i", "-s", "2", "-q")
		pg.Pgbench(t, "-T", "3", "-c", "2")
		// A base backup leaves a backup history file for archive_command.
		pg.SQL(t, "SELECT pg_backup_start('walvault-it', true); SELECT * FROM pg_backup_stop()")
		last := pg.SwitchWAL(t)
		pg.WaitArchived(t, last, 60*time.Second)

		entries := fetchEveryArchivedFile(t, r, copies)
		segments := countKind(t, entries, wal.KindSegment)
		if backups := countKind(t, entries, wal.KindBackupHistory); backups != 1 {
			t.Fatalf("%d backup history files archived, want 1", backups)
		}
		if segments < 3 {
			t.Fatalf("only %d segments archived under pgbench load, want at least 3", segments)
		}
		// The repository records the cluster it belongs to.
		sysid := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
		id, err := repository.LoadIdentity(t.Context(), r.backend)
		if err != nil {
			t.Fatalf("load walvault.json: %v", err)
		}
		if id.SystemID != sysid || id.WALSegmentSize != 16<<20 || id.PGMajor != 15 || id.Compression != repository.LZ4 {
			t.Fatalf("walvault.json = %+v, want system id %s, 16 MiB segments, PostgreSQL 15, lz4", id, sysid)
		}
		// Stored objects really are compressed and carry their checksums.
		seg := firstSegment(t, entries)
		key := repository.WALKey(seg, repository.LZ4)
		body, info := getObject(t, r.backend, key)
		if len(body) >= 16<<20 || !bytes.HasPrefix(body, []byte{0x04, 0x22, 0x4d, 0x18}) {
			t.Fatalf("%s: %d bytes, want an lz4 frame smaller than the 16 MiB segment", key, len(body))
		}
		for _, m := range []string{repository.MetaSHA256, repository.MetaRawSize, repository.MetaSystemID, repository.MetaHost, repository.MetaPushedAt} {
			if info.Metadata[m] == "" {
				t.Errorf("%s: metadata %q missing (have %v)", key, m, info.Metadata)
			}
		}
	})
}

// fetchEveryArchivedFile fetches back every file archive_command copied to
// copies and fails unless each is byte-identical to the copy. It returns
// the copies.
func fetchEveryArchivedFile(t *testing.T, r *repo, copies string) []os.DirEntry {
	t.Helper()
	return fetchEveryArchivedFileWith(t, r.env, copies, func(res result) {})
}

// fetchEveryArchivedFileWith is fetchEveryArchivedFile with walvault's
// environment env, handing each wal-fetch's result to seen.
func fetchEveryArchivedFileWith(t *testing.T, env []string, copies string, seen func(result)) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(copies)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, e := range entries {
		name := e.Name()
		if _, err := wal.Classify(name); err != nil {
			t.Fatalf("archive_command was given %q: %v", name, err)
		}
		dest := filepath.Join(out, name)
		res := walvault(t, env, "wal-fetch", name, dest)
		seen(res)
		if res.code != 0 {
			t.Fatalf("wal-fetch %s: %v", name, res)
		}
		if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(copies, name))) {
			t.Fatalf("%s fetched back differs from what PostgreSQL archived", name)
		}
	}
	return entries
}

func countKind(t *testing.T, entries []os.DirEntry, k wal.Kind) int {
	n := 0
	for _, e := range entries {
		if f, err := wal.Classify(e.Name()); err == nil && f.Kind == k {
			n++
		}
	}
	return n
}

func firstSegment(t *testing.T, entries []os.DirEntry) wal.FileName {
	for _, e := range entries {
		if f, err := wal.Classify(e.Name()); err == nil && f.Kind == wal.KindSegment {
			return f
		}
	}
	t.Fatal("no segment archived")
	return wal.FileName{}
}

func TestPushIsIdempotentAndNeverOverwrites(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, copies := archivingServer(t, r)
		pg.SQL(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
		name := pg.SwitchWAL(t)
		pg.WaitArchived(t, name, 60*time.Second)
		seg := filepath.Join(copies, name)
		key := repository.WALKey(waltest.FileName(t, name), repository.LZ4)
		before, _ := getObject(t, r.backend, key)

		// The same file again: PostgreSQL does this after a crash.
		if res := walvault(t, r.env, "wal-push", seg); res.code != 0 || !strings.Contains(res.stderr, "already archived") {
			t.Fatalf("identical re-push: %v\nwant exit 0 and 'already archived'", res)
		}

		// Different content under the archived name.
		changed := filepath.Join(t.TempDir(), name)
		data := readFile(t, seg)
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(changed, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res := walvault(t, r.env, "wal-push", changed)
		if res.code == 0 {
			t.Fatalf("push of different content under an archived name succeeded: %v", res)
		}
		for _, want := range []string{name, "already archived", "nothing was overwritten"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("conflict message lacks %q:\n%s", want, res.stderr)
			}
		}
		if strings.Count(res.stderr, "sha256=") != 2 {
			t.Errorf("conflict message should show both checksums:\n%s", res.stderr)
		}
		after, _ := getObject(t, r.backend, key)
		if !bytes.Equal(before, after) {
			t.Fatal("the archived object changed after a conflicting push")
		}
	})
}

func TestFetchAnswersPostgreSQLsQuestionsExactly(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, copies := archivingServer(t, r)
		pg.SQL(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
		name := pg.SwitchWAL(t)
		pg.WaitArchived(t, name, 60*time.Second)
		dir := t.TempDir()

		t.Run("missing file exits 1 at once and writes nothing", func(t *testing.T) {
			dest := filepath.Join(dir, "RECOVERYXLOG")
			res := walvault(t, r.env, "wal-fetch", "0000000100000000000000FF", dest)
			if res.code != 1 {
				t.Fatalf("want exit 1 for a missing file: %v", res)
			}
			if res.elapsed > time.Second {
				t.Errorf("missing file took %v to report, want well under a second", res.elapsed)
			}
			assertAbsent(t, dest)
			if res := walvault(t, r.env, "wal-fetch", "00000009.history", dest); res.code != 1 {
				t.Fatalf("want exit 1 for a missing history file: %v", res)
			}
		})

		t.Run("corrupt object is refused", func(t *testing.T) {
			key := repository.WALKey(waltest.FileName(t, name), repository.LZ4)
			original, _ := getObject(t, r.backend, key)
			r.tamper(t, key, corruptDecoded(t, repository.LZ4, original))
			defer r.tamper(t, key, original)
			dest := filepath.Join(dir, "RECOVERYXLOG")
			res := walvault(t, r.env, "wal-fetch", name, dest)
			if res.code < 126 {
				t.Fatalf("corrupt object: want an exit status above 125 so recovery stops: %v", res)
			}
			assertAbsent(t, dest)
			if !strings.Contains(res.stderr, "corrupt") || !strings.Contains(res.stderr, "what to do: find another copy") {
				t.Errorf("message should say the archived file is corrupt, and what to do:\n%s", res.stderr)
			}
		})

		t.Run("fetched file matches the archived one", func(t *testing.T) {
			dest := filepath.Join(dir, "RECOVERYXLOG")
			if res := walvault(t, r.env, "wal-fetch", name, dest); res.code != 0 {
				t.Fatal(res)
			}
			if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(copies, name))) {
				t.Fatal("fetched segment differs")
			}
		})

		if r.stop != nil {
			t.Run("unreachable storage stops recovery within the deadline", func(t *testing.T) {
				r.stop(t)
				dest := filepath.Join(dir, "unreachable")
				env := append(r.env, "WALVAULT_TIMEOUT=5s")
				res := walvault(t, env, "wal-fetch", name, dest)
				if res.code < 126 {
					t.Fatalf("storage down: want exit above 125, got %v", res)
				}
				if res.elapsed > 15*time.Second {
					t.Errorf("took %v with a 5s deadline", res.elapsed)
				}
				assertAbsent(t, dest)
			})
		}
	})
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists (err %v), want nothing written", path, err)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*walvault*"))
	if len(matches) > 0 {
		t.Fatalf("temporary files left behind: %v", matches)
	}
}

// TestHistoryFileRoundTrip pushes a timeline history file as PostgreSQL
// does after a promotion; it is stored as it is and fetched back.
func TestHistoryFileRoundTrip(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		// The history file belongs to a cluster whose repository exists.
		pg, _ := archivingServer(t, r)
		pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
		src := filepath.Join(t.TempDir(), "00000002.history")
		content := readFile(t, "../wal/testdata/history/00000002.history")
		if err := os.WriteFile(src, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if res := walvault(t, r.env, "wal-push", src); res.code != 0 {
			t.Fatal(res)
		}
		stored, _ := getObject(t, r.backend, "wal/00000002.history")
		if !bytes.Equal(stored, content) {
			t.Fatalf("wal/00000002.history holds %q, want the file as PostgreSQL wrote it", stored)
		}
		dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
		if res := walvault(t, r.env, "wal-fetch", "00000002.history", dest); res.code != 0 {
			t.Fatal(res)
		}
		if !bytes.Equal(readFile(t, dest), content) {
			t.Fatal("fetched history file differs")
		}
	})
}
