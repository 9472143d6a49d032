package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestRestoreBackupGapBeforeTheEnd: a restore with no target, whose
// recovery would stop at a missing segment while later WAL is archived,
// is refused before anything is written (PostgreSQL would open at the gap
// and leave the rest out); --accept-gap restores and says where recovery
// stops; a time target restores with the same warning.
func TestRestoreBackupGapBeforeTheEnd(t *testing.T) {
	t.Parallel()
	// 3 to 0x24 follow the backup but for the lost one, and, far later,
	// the archive resumed.
	repo := func(t *testing.T, lost uint32, resumed bool) storage.Backend {
		if resumed {
			return walFixtureRepo(t, lost, walSegmentKey(3, 7))
		}
		return walFixtureRepo(t, lost)
	}
	at := fixtureMTime.Add(time.Minute)
	for _, tc := range []struct {
		name     string
		lost     uint32
		resumed  bool
		target   Target
		accept   bool
		wantErr  string // "": restores
		wantNote string
	}{
		{"no gap", 0, false, Target{}, false, "", ""},
		{"a gap", 0x22, false, Target{}, false, "segment 000000010000000000000022 is missing from the archive though 000000010000000000000023 and later WAL are archived", ""},
		{"lost WAL at the end, then the archive resumed", 0, true, Target{}, false, "segment 000000010000000000000025 is missing from the archive though 000000010000000300000007", ""},
		{"a gap, accepted", 0x22, false, Target{}, true, "", "--accept-gap"},
		{"a gap, a time target", 0x22, false, Target{Time: &at, Action: "promote"}, false, "", "recovery ended before configured recovery target was reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.Target, opts.AcceptGap = tc.target, tc.accept
			opts.RestoreCommandAcceptingGap = "/usr/local/bin/walvault wal-fetch --accept-gap %f %p"
			res, err := RestoreBackup(context.Background(), repo(t, tc.lost, tc.resumed), opts)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrGap) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("RestoreBackup: got %v, want ErrGap mentioning %q", err, tc.wantErr)
				}
				if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("data directory after the refusal: %v, want it absent", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			notes := strings.Join(res.Warnings, "\n")
			if tc.wantNote == "" && notes != "" || !strings.Contains(notes, tc.wantNote) {
				t.Errorf("result's warnings %q, want one mentioning %q", notes, tc.wantNote)
			}
			// A target past a known gap ends recovery there: wal-fetch
			// answers the missing segment missing (--accept-gap).
			accepting := strings.Contains(readFile(t, filepath.Join(opts.DataDir, "postgresql.auto.conf")), "--accept-gap")
			if want := tc.lost != 0 && tc.target.Time != nil; accepting != want {
				t.Errorf("restore_command with --accept-gap: %v, want %v", accepting, want)
			}
		})
	}
}

// TestRestoreBackupFollowsOverrunTimeline: a restore to latest that
// follows a timeline whose parent went on past the branch point (a
// restored copy promoted into the repository while the original goes on)
// restores, and says so with the way to follow the parent.
func TestRestoreBackupFollowsOverrunTimeline(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	put := func(tli wal.TimelineID, n uint32) { putSegment(t, b, tli, n) }
	for n := uint32(3); n <= 0x24; n++ {
		put(1, n)
	}
	for n := uint32(0x10); n <= 0x12; n++ {
		put(2, n)
	}
	sw := wal.LSN(0x10*fixtureSegSize + 0x100)
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t"+sw.String()+"\tno recovery target specified\n"))
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	notes := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"timeline 1 holds WAL archived past the point where timeline 2 branched off it (" + sw.String() + "), from 000000010000000000000011 on", "--target-timeline 1"} {
		if !strings.Contains(notes, want) {
			t.Errorf("warnings %q lack %q", notes, want)
		}
	}
}

// TestRestoreBackupLSNPastBranch: an LSN target past the point where the
// followed timeline branched off names another point on the parent; a
// restore to it gets the checks a recovery to latest gets: a warning when
// the parent holds WAL past the branch, a refusal naming --target-timeline
// when the parent received WAL after the followed one last did
// (explore24b F3).
func TestRestoreBackupLSNPastBranch(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	put := func(tli wal.TimelineID, n uint32) { putSegment(t, b, tli, n) }
	for n := uint32(3); n <= 0x14; n++ {
		put(1, n)
	}
	sw := wal.LSN(0x10*fixtureSegSize + 0x100)
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t"+sw.String()+"\tno recovery target specified\n"))
	for n := uint32(0x10); n <= 0x12; n++ {
		put(2, n)
	}
	target := wal.LSN(0x11*fixtureSegSize + 0x200)
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{LSN: &target}
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	notes := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"the target LSN " + target.String() + " lies past where timeline 2 branched off timeline 1 (" + sw.String() + ")", "--target-timeline 1"} {
		if !strings.Contains(notes, want) {
			t.Errorf("warnings %q lack %q", notes, want)
		}
	}

	// Timeline 1 goes on after timeline 2's last WAL: which one the LSN
	// means cannot be told.
	time.Sleep(10 * time.Millisecond)
	put(1, 0x15)
	opts = restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{LSN: &target}
	if _, err := RestoreBackup(context.Background(), b, opts); !errors.Is(err, ErrTimelineUnclear) || !strings.Contains(err.Error(), "--target-timeline 1") {
		t.Fatalf("RestoreBackup with timeline 1 archiving after timeline 2: got %v, want ErrTimelineUnclear naming --target-timeline 1", err)
	}
}

// TestRestoreBackupUnknownTimeline: a --target-timeline the repository has
// no history file of is refused before anything is downloaded: PostgreSQL
// would stop at once (explore24b F5).
func TestRestoreBackupUnknownTimeline(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{Timeline: "5"}
	_, err := RestoreBackup(context.Background(), b, opts)
	if !errors.Is(err, ErrNoTimeline) || !strings.Contains(err.Error(), "00000005.history") {
		t.Fatalf("RestoreBackup --target-timeline 5: got %v, want ErrNoTimeline naming 00000005.history", err)
	}
	if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data directory after the refusal: %v, want it absent", err)
	}
}

// TestRestoreBackupXIDNamesOlderBackup: an xid or restore point target
// cannot be placed among the backups, so the newest is restored; with an
// older one in the repository the result says which to name if the target
// came before (explore24b F4).
func TestRestoreBackupXIDNamesOlderBackup(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	storeFixture(t, b, fixture{id: "20261125T110000Z", stopTime: fixtureMTime.Add(time.Hour), skipWAL: true, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	putSegment(t, b, 1, 3)
	for _, target := range []Target{{XID: "1234"}, {Name: "before_the_mistake"}} {
		opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
		opts.Target = target
		res, err := RestoreBackup(context.Background(), b, opts)
		if err != nil {
			t.Fatalf("RestoreBackup to %s: %v", target, err)
		}
		if notes := strings.Join(res.Warnings, "\n"); !strings.Contains(notes, "the newest, 20261125T110000Z") || !strings.Contains(notes, "--backup "+fixtureID) {
			t.Errorf("restore to %s: warnings %q, want the newest backup named and --backup %s", target, notes, fixtureID)
		}
	}
}

// TestRestoreBackupChildWithoutWAL: timeline 2's history file is archived
// but none of its WAL (its server was lost right after its promotion):
// PostgreSQL would replay timeline 1's copy of the branch segment and its
// later WAL as timeline 2's, bringing back what the point-in-time restore
// discarded (explore24b F1). A restore to latest is refused, naming the
// branch point as a target; with a target, a warning says it.
func TestRestoreBackupChildWithoutWAL(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	for n := uint32(3); n <= 0x12; n++ {
		putSegment(t, b, 1, n)
	}
	sw := wal.LSN(0x10*fixtureSegSize + 0x100)
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t"+sw.String()+"\tno recovery target specified\n"))
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	_, err := RestoreBackup(context.Background(), b, opts)
	if !errors.Is(err, ErrTimelineWithoutWAL) {
		t.Fatalf("RestoreBackup to latest: got %v, want ErrTimelineWithoutWAL", err)
	}
	for _, want := range []string{"not its first segment 000000020000000000000010", "--target-timeline 1 --target-lsn " + sw.String() + " --target-inclusive=false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data directory after the refusal: %v, want it absent", err)
	}

	// An LSN target before the branch point is reached in timeline 1's
	// copy of the branch segment, as PostgreSQL reads it (explore24e F3).
	// Exclusive only: inclusive, recovery stops after the first record at
	// or past the target, which may be timeline 1's first past the branch
	// (explore24g F1).
	before := sw - 0x80
	opts = restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{LSN: &before, Inclusive: ptr(false)}
	if _, err := RestoreBackup(context.Background(), b, opts); err != nil {
		t.Fatalf("RestoreBackup to %s, exclusive, before the branch point: %v", before, err)
	}
	opts = restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{LSN: &before}
	if _, err := RestoreBackup(context.Background(), b, opts); err == nil || !strings.Contains(err.Error(), "--target-inclusive=false") {
		t.Fatalf("RestoreBackup to %s, inclusive, before the branch point: %v; want a refusal naming --target-inclusive=false", before, err)
	}

	// Once timeline 2's first segment is archived, PostgreSQL reads
	// timeline 2 from it on: nothing to say.
	putSegment(t, b, 2, 0x10)
	res, err := RestoreBackup(context.Background(), b, restoreOpts(t, filepath.Join(t.TempDir(), "data")))
	if err != nil {
		t.Fatalf("RestoreBackup with timeline 2's first segment archived: %v", err)
	}
	if notes := strings.Join(res.Warnings, "\n"); strings.Contains(notes, "not its first segment") {
		t.Errorf("warnings %q: want none about timeline 2's first segment", notes)
	}
}

// TestRestoreBackupTargetAfterArchive: a time target after the newest
// segment recovery can read was archived restores with a warning that
// PostgreSQL will replay everything and then fail, unless more WAL is
// archived (explore23c F7); one before it, none.
func TestRestoreBackupTargetAfterArchive(t *testing.T) {
	t.Parallel()
	pushed := fixtureMTime.Add(30 * time.Second)
	for _, tc := range []struct {
		name   string
		target time.Time
		warned bool
	}{
		{"after the newest segment was archived", pushed.Add(time.Minute), true},
		{"before it", pushed.Add(-time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := walFixtureRepo(t, 0x24) // 3 to 0x23
			last := walSegmentKey(0, 0x23)
			if err := b.Delete(t.Context(), last); err != nil {
				t.Fatal(err)
			}
			repotest.PutWAL(t, b, last, repository.LZ4, []byte("segment"), map[string]string{repository.MetaPushedAt: pushed.Format(time.RFC3339Nano)})
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.Target = Target{Time: &tc.target, Action: "promote"}
			res, err := RestoreBackup(t.Context(), b, opts)
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			notes := strings.Join(res.Warnings, "\n")
			if warned := strings.Contains(notes, "000000010000000000000023, the newest segment recovery can read, was archived: no archived commit is that late"); warned != tc.warned {
				t.Errorf("warnings %q; want the target-after-archive warning: %v", notes, tc.warned)
			}
		})
	}
}

// TestRestoreBackupKeepsGroupAccess: a cluster made with initdb -g (its
// directories 0750) is restored with a data directory of mode 0750, so
// PostgreSQL keeps group access; one without stays 0700 (explore23d F3).
func TestRestoreBackupKeepsGroupAccess(t *testing.T) {
	t.Parallel()
	for _, dirMode := range []int64{0o700, 0o750} {
		t.Run(fmt.Sprintf("%04o", dirMode), func(t *testing.T) {
			t.Parallel()
			entries := baseEntries()
			for i := range entries {
				if entries[i].typ == tar.TypeDir {
					entries[i].mode = dirMode
				}
			}
			b := newFixtureRepo(t)
			storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: entries}}})
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.Target = Target{Immediate: true}
			if _, err := RestoreBackup(t.Context(), b, opts); err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			fi, err := os.Stat(opts.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			if got := int64(fi.Mode().Perm()); got != dirMode {
				t.Errorf("data directory mode %04o, want %04o as the backed-up cluster's directories", got, dirMode)
			}
		})
	}
}

// TestRestoreBackupIntoLinkedDataDir: a data directory given as a link to
// an empty directory (Debian's /var/lib/postgresql/15/main -> /srv/...)
// is restored where it leads, every file handed to the server's user
// (explore23d F9: run as root, all stayed root's, and PostgreSQL could
// not start).
func TestRestoreBackupIntoLinkedDataDir(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real"), filepath.Join(dir, "link")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	opts := restoreOpts(t, link)
	opts.Target = Target{Immediate: true}
	if _, err := RestoreBackup(t.Context(), b, opts); err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	_, uid := testOwner(t)
	n := 0
	err := filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, want %d", p, st.Uid, uid)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(real, "global", "pg_control")); err != nil || n < 5 {
		t.Errorf("restored through the link: %d entries, pg_control %v; want the backup in %s", n, err, real)
	}
}

// TestRestoreBackupFirstSegmentWithoutMetadata: a repository copied by a
// tool that drops S3 user metadata restores whole, but wal-fetch refuses
// its first segment and recovery cannot start: the restore is refused
// before anything is extracted, saying why (explore23d F2).
func TestRestoreBackupFirstSegmentWithoutMetadata(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, skipWAL: true, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	key := walSegmentKey(0, 3)
	repotest.Put(t, b, key, []byte("copied without its metadata"))
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{Immediate: true}
	_, err := RestoreBackup(t.Context(), b, opts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key+", the segment backup "+fixtureID+"'s recovery reads first, has no valid sha256/raw-size metadata") {
		t.Fatalf("RestoreBackup: %v; want ErrCorrupt naming %s", err, key)
	}
	if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data directory after the refusal: %v, want it removed", err)
	}
}

// TestRestoreBackupWarnsMisordered: a --target-time restore in a
// repository whose backups' times disagree with their WAL positions (a
// clock was off) says that the choice by time may be wrong (explore23e
// F4).
func TestRestoreBackupWarnsMisordered(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	// The earlier by id starts in segment 3, the later in segment 2.
	storeFixture(t, b, fixture{id: "20261125T095000Z", stopTime: fixtureMTime.Add(-10 * time.Minute), skipWAL: true, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	repotest.PutWAL(t, b, walSegmentKey(0, 3), repository.LZ4, []byte("segment"), nil)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	for n := uint32(4); n <= 6; n++ {
		repotest.PutWAL(t, b, walSegmentKey(0, n), repository.LZ4, []byte("segment"), nil)
	}
	at := fixtureMTime.Add(time.Minute)
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{Time: &at, Action: "promote"}
	res, err := RestoreBackup(t.Context(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	if notes := strings.Join(res.Warnings, "\n"); !strings.Contains(notes, "older by its WAL position") || !strings.Contains(notes, "--backup") {
		t.Errorf("warnings %q; want the misordered backups named, with --backup", notes)
	}
}

// TestRestoreBackupIntoDanglingLink: a data directory given as a link to
// nothing is refused saying so, not as a directory that "appeared while
// restore was starting" (explore23f nit).
func TestRestoreBackupIntoDanglingLink(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(t.TempDir(), "absent"), link); err != nil {
		t.Fatal(err)
	}
	opts := restoreOpts(t, link)
	opts.Target = Target{Immediate: true}
	if _, err := RestoreBackup(t.Context(), b, opts); err == nil || !strings.Contains(err.Error(), "does not lead to a directory") {
		t.Fatalf("RestoreBackup into a dangling link: %v; want a refusal saying the link leads nowhere", err)
	}
}

// putSegment archives a stand-in for segment n of timeline tli.
func putSegment(t *testing.T, b storage.Backend, tli wal.TimelineID, n uint32) {
	t.Helper()
	repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: wal.Segment{Timeline: tli, Seg: n}}, repository.LZ4), repository.LZ4, []byte("segment"), nil)
}
