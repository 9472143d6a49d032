package restore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

var guardCluster = waltest.Cluster{SystemID: 7300000000000000077, SegmentSize: wal.MinSegmentSize}

// drillScratch lays out a drill's scratch directory: data/ with PG_VERSION
// and pg_wal/, as the drill's restore leaves it. It returns the scratch
// directory, the data directory and restore_command's %p.
func drillScratch(t *testing.T) (scratch, dataDir, dest string) {
	t.Helper()
	scratch = t.TempDir()
	dataDir = filepath.Join(scratch, "data")
	for _, d := range []string{"pg_wal", "pg_tblspc"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dataDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return scratch, dataDir, filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG")
}

// hand writes seg to dest, as wal-fetch does before the guard looks.
func hand(t *testing.T, dest string, seg []byte) {
	t.Helper()
	if err := os.WriteFile(dest, seg, 0o600); err != nil {
		t.Fatal(err)
	}
}

// walWith is one segment (000000010000000000000003) holding records.
func walWith(t *testing.T, recs ...waltest.Record) (string, []byte) {
	t.Helper()
	w := guardCluster.NewWriter(t, wal.Segment{Timeline: 1, Log: 0, Seg: 3})
	w.Add(waltest.Noop(t, 100))
	for _, r := range recs {
		w.Add(r)
	}
	names, segs := w.Segments()
	return names[0].String(), segs[0]
}

// TestDrillGuardRefuses: a segment that creates a tablespace outside the
// scratch directory (the location existing or not), drops one whose link
// leads outside it, or creates one through a link leading out of it is
// refused: dest is removed, the error names the record and says what its
// replay would do, and the drill can read the reason.
func TestDrillGuardRefuses(t *testing.T) {
	outside := t.TempDir() // production's tablespace, say
	tests := []struct {
		name  string
		setup func(t *testing.T, scratch, dataDir string) waltest.Record
		want  []string
	}{
		{"create at an existing location", func(t *testing.T, _, _ string) waltest.Record {
			return waltest.TablespaceCreate(16390, outside)
		}, []string{"CREATE TABLESPACE 16390 at " + outside, "link to " + outside, "exists on this host", "production's own tablespace"}},
		{"create at a missing location", func(t *testing.T, _, _ string) waltest.Record {
			return waltest.TablespaceCreate(16390, "/nonexistent/ts")
		}, []string{"CREATE TABLESPACE 16390 at /nonexistent/ts", "does not exist on this host"}},
		{"create through a link out of the scratch directory", func(t *testing.T, scratch, _ string) waltest.Record {
			if err := os.Symlink(outside, filepath.Join(scratch, "escape")); err != nil {
				t.Fatal(err)
			}
			return waltest.TablespaceCreate(16390, filepath.Join(scratch, "escape", "ts"))
		}, []string{"CREATE TABLESPACE 16390", "outside the drill's scratch directory"}},
		{"drop of a tablespace linked outside", func(t *testing.T, _, dataDir string) waltest.Record {
			if err := os.Symlink(outside, filepath.Join(dataDir, "pg_tblspc", "16391")); err != nil {
				t.Fatal(err)
			}
			return waltest.TablespaceDrop(16391)
		}, []string{"DROP TABLESPACE 16391", "pg_tblspc/16391 links to " + outside, "remove the empty directories"}},
		{"unknown operation", func(t *testing.T, _, _ string) waltest.Record {
			r := waltest.TablespaceDrop(16391)
			r.Info = 0x20
			return r
		}, []string{"unknown operation 0x20", "PANIC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scratch, dataDir, dest := drillScratch(t)
			name, seg := walWith(t, tc.setup(t, scratch, dataDir))
			hand(t, dest, seg)
			_, err := restore.DrillGuard{Scratch: scratch}.Check(name, dest)
			if !errors.Is(err, restore.ErrDrillGuard) {
				t.Fatalf("Check: %v, want a refusal", err)
			}
			for _, want := range append(tc.want, "segment "+name) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q:\n%v", want, err)
				}
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dest after a refusal: %v, want it removed", err)
			}
			if got := restore.DrillGuardRefusal(dataDir); got != err.Error() {
				t.Errorf("DrillGuardRefusal: %q, want %q", got, err.Error())
			}
		})
	}
}

// TestDrillGuardAllows: what stays inside the scratch directory passes,
// and the segment stays for PostgreSQL: an in-place tablespace, one
// created inside the scratch directory, drops of one that is not there or
// is linked inside, and segments without tablespace records or that are
// not segments at all.
func TestDrillGuardAllows(t *testing.T) {
	scratch, dataDir, dest := drillScratch(t)
	inside := filepath.Join(scratch, "tablespaces", "16392")
	if err := os.MkdirAll(inside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(inside, filepath.Join(dataDir, "pg_tblspc", "16392")); err != nil {
		t.Fatal(err)
	}
	name, seg := walWith(t,
		waltest.TablespaceCreate(16390, ""),
		waltest.TablespaceCreate(16391, filepath.Join(scratch, "ts")),
		waltest.TablespaceDrop(16393),
		waltest.TablespaceDrop(16392),
	)
	hand(t, dest, seg)
	allowed, err := restore.DrillGuard{Scratch: scratch}.Check(name, dest)
	if err != nil || len(allowed) != 4 {
		t.Fatalf("Check: %v, %v; want the 4 records let through", allowed, err)
	}
	if _, err := os.Stat(dest); err != nil {
		t.Errorf("dest: %v", err)
	}
	name, seg = walWith(t, waltest.Noop(t, 500))
	hand(t, dest, seg)
	if allowed, err := (restore.DrillGuard{Scratch: scratch}).Check(name, dest); err != nil || len(allowed) != 0 {
		t.Errorf("a segment without tablespace records: %v, %v", allowed, err)
	}
	hand(t, dest, []byte("1\t0/3000000\tno recovery target specified\n"))
	if _, err := (restore.DrillGuard{Scratch: scratch}).Check("00000002.history", dest); err != nil {
		t.Errorf("a timeline history file: %v", err)
	}
	if got := restore.DrillGuardRefusal(dataDir); got != "" {
		t.Errorf("DrillGuardRefusal after no refusal: %q", got)
	}
}

// TestDrillGuardAcrossSegments: a CREATE TABLESPACE record that begins in
// one segment and ends in the next is refused with the second, from what
// the check of the first kept, whether its header or only part of its
// data is in the first. Checked alone, as the first segment of a recovery
// (which starts reading after it), the second lets the record's rest by.
func TestDrillGuardAcrossSegments(t *testing.T) {
	for _, back := range []wal.LSN{8, 16, 24, 200} {
		scratch, dataDir, dest := drillScratch(t)
		first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
		w := guardCluster.NewWriter(t, first)
		start, _ := first.StartLSN(guardCluster.SegmentSize)
		w.FillTo(start + wal.LSN(guardCluster.SegmentSize) - back)
		w.Add(waltest.TablespaceCreate(16390, "/srv/pg/"+strings.Repeat("t", 400)))
		names, segs := w.Segments()
		g := restore.DrillGuard{Scratch: scratch}

		hand(t, dest, segs[1])
		if _, err := g.Check(names[1].String(), dest); err != nil {
			t.Errorf("%d bytes back: the second segment alone: %v, want it let by", back, err)
		}
		hand(t, dest, segs[0])
		if _, err := g.Check(names[0].String(), dest); err != nil {
			t.Fatalf("%d bytes back: the first segment: %v", back, err)
		}
		hand(t, dest, segs[1])
		_, err := g.Check(names[1].String(), dest)
		if !errors.Is(err, restore.ErrDrillGuard) || !strings.Contains(err.Error(), "CREATE TABLESPACE 16390") {
			t.Errorf("%d bytes back: the second segment after the first: %v, want the record refused", back, err)
		}
		if restore.DrillGuardRefusal(dataDir) == "" {
			t.Errorf("%d bytes back: no refusal noted", back)
		}
	}
}

// TestDrillGuardCannotTell: a segment whose records cannot be read, or a
// data directory outside the scratch directory, is refused too: the guard
// never lets through what it could not check.
func TestDrillGuardCannotTell(t *testing.T) {
	scratch, _, dest := drillScratch(t)
	name, seg := walWith(t, waltest.Noop(t, 100))
	bad := append([]byte(nil), seg...)
	bad[0] ^= 0xFF // unknown page magic
	hand(t, dest, bad)
	if _, err := (restore.DrillGuard{Scratch: scratch}).Check(name, dest); !errors.Is(err, restore.ErrDrillGuard) || !strings.Contains(err.Error(), "cannot read the records") {
		t.Errorf("a segment with a bad header: %v, want a refusal", err)
	}
	hand(t, dest, seg)
	if _, err := (restore.DrillGuard{Scratch: t.TempDir()}).Check(name, dest); !errors.Is(err, restore.ErrDrillGuard) || !strings.Contains(err.Error(), "not inside the drill's scratch directory") {
		t.Errorf("another scratch directory: %v, want a refusal", err)
	}
	hand(t, filepath.Join(t.TempDir(), "RECOVERYXLOG"), seg)
	if _, err := (restore.DrillGuard{Scratch: scratch}).Check(name, filepath.Join(t.TempDir(), "RECOVERYXLOG")); !errors.Is(err, restore.ErrDrillGuard) {
		t.Errorf("dest outside a data directory: %v, want a refusal", err)
	}
}

// TestDrillGuardBackupStart: records before the backup's start (its
// backup_label's START WAL LOCATION, or backup_label.old's once
// PostgreSQL renamed it) are never replayed, so a tablespace created just
// before the backup, in the segment recovery starts in, does not stop the
// drill; one at or after the start does.
func TestDrillGuardBackupStart(t *testing.T) {
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	w := guardCluster.NewWriter(t, first)
	w.Add(waltest.Noop(t, 100))
	at := w.Add(waltest.TablespaceCreate(16390, "/srv/ts"))
	names, segs := w.Segments()
	label := func(start wal.LSN) string {
		return "START WAL LOCATION: " + start.String() + " (file " + names[0].String() + ")\nCHECKPOINT LOCATION: " + start.String() + "\n"
	}
	tests := []struct {
		file    string
		start   wal.LSN
		refused bool
	}{
		{"backup_label", at + 64, false},
		{"backup_label.old", at + 64, false},
		{"backup_label", at, true},
		{"backup_label.old", at - 8, true},
	}
	for _, tc := range tests {
		scratch, dataDir, dest := drillScratch(t)
		if err := os.WriteFile(filepath.Join(dataDir, tc.file), []byte(label(tc.start)), 0o600); err != nil {
			t.Fatal(err)
		}
		hand(t, dest, segs[0])
		_, err := restore.DrillGuard{Scratch: scratch}.Check(names[0].String(), dest)
		if refused := errors.Is(err, restore.ErrDrillGuard); refused != tc.refused {
			t.Errorf("record at %s, %s starting at %s: %v, want refused %v", at, tc.file, tc.start, err, tc.refused)
		}
	}
}
