package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// guardFixture is a file repository holding two archived segments, the
// second of which creates a tablespace at outside, and a drill's scratch
// directory with its data directory, as walvault drill leaves it for its
// server.
type guardFixture struct {
	repo    string
	b       *file.Backend
	names   []string
	outside string
	scratch string
	dataDir string
	dest    string
}

func newGuardFixture(t *testing.T) *guardFixture {
	t.Helper()
	f := &guardFixture{repo: t.TempDir(), outside: t.TempDir(), scratch: t.TempDir()}
	c := waltest.Cluster{SystemID: 7300000000000000099, SegmentSize: wal.MinSegmentSize}
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 2}
	start, _ := first.StartLSN(c.SegmentSize)
	w := c.NewWriter(t, first)
	w.FillTo(start + wal.LSN(c.SegmentSize) + wal.HeaderSize)
	w.Add(waltest.TablespaceCreate(16390, f.outside))
	names, segs := w.Segments()
	b, err := file.New(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	src := t.TempDir()
	for i, s := range names {
		p, _ := waltest.WriteFile(t, src, s.String(), segs[i])
		if _, err := archive.Push(context.Background(), b, p, archive.Options{Compression: repository.LZ4, Host: "db-1", Version: "test"}); err != nil {
			t.Fatal(err)
		}
		f.names = append(f.names, s.String())
	}
	f.dataDir = filepath.Join(f.scratch, "data")
	if err := os.MkdirAll(filepath.Join(f.dataDir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dataDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.dest = filepath.Join(f.dataDir, "pg_wal", "RECOVERYXLOG")
	return f
}

func (f *guardFixture) fetch(t *testing.T, guarded bool, name string) (int, string) {
	t.Helper()
	args := []string{"wal-fetch", "--repo", "file://" + f.repo, "--prefetch=0"}
	if guarded {
		args = append(args, "--drill-scratch", f.scratch)
	}
	code, _, stderr := runCmd(t, append(args, name, f.dest)...)
	return code, stderr
}

// refused checks a guard's refusal: exit 200, which stops recovery (1
// would end it and promote), dest removed, the record named.
func (f *guardFixture) refused(t *testing.T, code int, stderr string) {
	t.Helper()
	if code != exitRecoveryMustStop || !strings.Contains(stderr, "restore drill guard: segment "+f.names[1]+" holds CREATE TABLESPACE 16390 at "+f.outside) {
		t.Errorf("exit %d, want %d and the record named:\n%s", code, exitRecoveryMustStop, stderr)
	}
	if _, err := os.Stat(f.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dest after a refusal: %v, want it removed", err)
	}
}

// TestWalFetchDrillGuard: with --drill-scratch, wal-fetch refuses a
// segment that creates a tablespace outside the scratch directory, exit
// 200, and hands over one that does not; without it, it does not look.
func TestWalFetchDrillGuard(t *testing.T) {
	f := newGuardFixture(t)
	if code, stderr := f.fetch(t, true, f.names[0]); code != exitOK {
		t.Fatalf("guarded fetch of a segment without tablespace records: exit %d\n%s", code, stderr)
	}
	code, stderr := f.fetch(t, true, f.names[1])
	f.refused(t, code, stderr)
	if got := restore.DrillGuardRefusal(f.dataDir); !strings.Contains(got, "CREATE TABLESPACE 16390") {
		t.Errorf("the refusal noted for the drill: %q", got)
	}
	// Production's recovery: no guard, no scanning.
	if code, stderr := f.fetch(t, false, f.names[1]); code != exitOK {
		t.Fatalf("unguarded fetch: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(f.dest); err != nil {
		t.Errorf("unguarded fetch: %v", err)
	}
}

// TestWalFetchDrillGuardPrefetched: a segment served from the prefetch
// cache is checked as one downloaded is. The segment is deleted from the
// repository after it was prefetched, so only the cache can serve it.
func TestWalFetchDrillGuardPrefetched(t *testing.T) {
	f := newGuardFixture(t)
	dir := restore.PrefetchDir(f.dest)
	if n, err := restore.PrefetchNext(context.Background(), f.b, dir, f.names[0], wal.MinSegmentSize, 1, restore.FetchOptions{Compression: repository.LZ4}); n != 1 || err != nil {
		t.Fatalf("prefetch: %d, %v", n, err)
	}
	if err := f.b.Delete(context.Background(), repository.WALKey(waltest.FileName(t, f.names[1]), repository.LZ4)); err != nil {
		t.Fatal(err)
	}
	code, stderr := f.fetch(t, true, f.names[1])
	f.refused(t, code, stderr)
	if _, err := os.Stat(filepath.Join(dir, "00000001", f.names[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the prefetched copy: %v; want it taken from the cache (and refused)", err)
	}
}

// TestDrillRestoreCommand: a drill's server fetches its WAL through the
// drill guard, naming the scratch directory its data directory is in.
func TestDrillRestoreCommand(t *testing.T) {
	got := drillRestoreCommandLine("/usr/bin/walvault", "/srv/scratch/walvault-drill-1/data")
	want := "GOTRACEBACK=crash /usr/bin/walvault wal-fetch --config /srv/scratch/walvault-drill-1/data/walvault-restore.yaml --drill-scratch /srv/scratch/walvault-drill-1 %f %p"
	if got != want {
		t.Errorf("drill restore_command:\n got  %s\n want %s", got, want)
	}
}

// TestRestoreCommandLine: the restore_command restore writes runs
// wal-fetch with its tablespace guard and the traceback level that makes
// a runtime failing at start die of a signal, never exit 2 (explore23f
// F2).
func TestRestoreCommandLine(t *testing.T) {
	got := restoreCommandLine("/usr/bin/walvault", "/srv/pg data", false)
	want := "GOTRACEBACK=crash /usr/bin/walvault wal-fetch --config '/srv/pg data/walvault-restore.yaml' --tablespace-guard %f %p"
	if got != want {
		t.Errorf("restoreCommandLine:\ngot  %s\nwant %s", got, want)
	}
}

// TestInvokedAs: restore_command names the binary by the link it was run
// by (/usr/local/bin/walvault, which an upgrade switches to a new version
// directory), not by the version directory, which may be removed
// (explore23g F2); a name that leads elsewhere is not used.
func TestInvokedAs(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "walvault-1.2", "walvault")
	other := filepath.Join(dir, "other")
	for _, p := range []string{v1, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "bin", "walvault")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	exe, err := filepath.EvalSymlinks(v1)
	if err != nil {
		t.Fatal(err)
	}
	if got := invokedAs(exe, link); got != link {
		t.Errorf("run by the link: %s, want %s", got, link)
	}
	t.Setenv("PATH", filepath.Dir(link))
	if got := invokedAs(exe, "walvault"); got != link {
		t.Errorf("run by its name in PATH: %s, want %s", got, link)
	}
	if got := invokedAs(exe, other); got != exe {
		t.Errorf("a name that leads elsewhere: %s, want %s", got, exe)
	}
}
