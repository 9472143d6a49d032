package restore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// TestRestoreBackupLSNTarget: a restore to an LSN lists backups/ and the
// WAL from the backup to the target, never all of wal/; it restores when
// every segment on the way is archived, and refuses before writing
// anything when one is missing (a gap) or the archive ends before the
// target.
func TestRestoreBackupLSNTarget(t *testing.T) {
	t.Parallel()
	far := walSegmentKey(3, 7)
	// The backup's WAL is segment 2 (its stop LSN, 0/2000100, lies in
	// segment 0x20 of these 1 MiB segments); 3 to 0x24 follow but for the
	// lost one; a far segment no restore here reads.
	repo := func(t *testing.T, lost uint32) storage.Backend { return walFixtureRepo(t, lost, far) }
	lsnIn := func(seg uint32) wal.LSN { return wal.LSN(uint64(seg)*fixtureSegSize + 0x200) }

	for _, tc := range []struct {
		name    string
		lost    uint32
		target  wal.LSN
		wantMsg string // "": restores
		warns   bool   // restores, saying the target may lie past the WAL
	}{
		{"archived", 0x22, lsnIn(0x20), "", false},
		{"before a missing segment", 0x22, lsnIn(0x21), "", true},
		{"in the last segment before later ones lost", 0, lsnIn(0x24), "", true},
		{"behind a gap", 0x22, lsnIn(0x23), "000000010000000000000022, which recovery reads on the way to the target in 000000010000000000000023, is missing from the archive", false},
		{"beyond the archive", 0, lsnIn(0x25), "beyond the archive: on timeline 1 the archived WAL ends at 0/2500000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := repo(t, tc.lost)
			rec := &storagetest.ListRecorder{Backend: b}
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			target := tc.target
			opts.Target = Target{LSN: &target, Action: "promote"}
			res, err := RestoreBackup(context.Background(), rec, opts)
			switch {
			case tc.wantMsg == "" && err != nil:
				t.Fatalf("RestoreBackup: %v", err)
			case tc.wantMsg == "":
				if warned := strings.Contains(strings.Join(res.Warnings, " "), "the last segment archived on timeline 1 before a missing one"); warned != tc.warns {
					t.Errorf("warnings %q: want the last-segment warning %v", res.Warnings, tc.warns)
				}
			case tc.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("RestoreBackup: got %v, want an error mentioning %q", err, tc.wantMsg)
				}
				if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("data directory after the refusal: %v, want it absent", err)
				}
			}
			for _, p := range rec.Prefixes() {
				if p != repository.BackupsPrefix && !strings.HasPrefix(p, repository.TimelinePrefix(1)+"00000001") || strings.HasPrefix(far, p) {
					t.Errorf("listed %q: want backups/ and the WAL from the backup to the target, not %s", p, far)
				}
			}
		})
	}
}

// walSegmentKey is the key of segment log/seg on timeline 1.
func walSegmentKey(log, seg uint32) string {
	return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: log, Seg: seg}}, repository.LZ4)
}

// walFixtureRepo holds the fixture backup, whose WAL is segment 2, and
// segments 3 to 0x24 of timeline 1 but lost (0: none), and the extra keys.
func walFixtureRepo(t *testing.T, lost uint32, extra ...string) storage.Backend {
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	for n := uint32(3); n <= 0x24; n++ {
		if n != lost {
			repotest.PutWAL(t, b, walSegmentKey(0, n), repository.LZ4, []byte("segment"), nil)
		}
	}
	for _, k := range extra {
		repotest.PutWAL(t, b, k, repository.LZ4, []byte("segment"), nil)
	}
	return b
}

// TestRestoreBackupLSNTargetPastLastRecord: a target in the last segment
// archived before one that is not (the newest, or the last before a gap)
// is reached only up to that segment's last record: a target past a WAL
// switch (the LSN pg_switch_wal() returns lies there), or past the start
// of a record that runs on into the next segment, is refused before
// anything is written; a target at or before it restores, with no
// warning.
func TestRestoreBackupLSNTargetPastLastRecord(t *testing.T) {
	t.Parallel()
	cluster := waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}
	// withSwitch: records, then pg_switch_wal(); it returns the switch's
	// start and end.
	withSwitch := func(t *testing.T, s wal.Segment) (raw []byte, switchAt, switchEnd wal.LSN) {
		w := cluster.NewWriter(t, s)
		for range 3 {
			w.Add(waltest.Noop(t, 200))
		}
		switchAt = w.Add(waltest.Switch())
		_, segs := w.Segments()
		return segs[0], switchAt, switchAt + 24
	}
	// runningOn: full of records, the last of which runs on into the next
	// segment; it returns the start of the last record whole in s.
	runningOn := func(t *testing.T, s wal.Segment) (raw []byte, lastWhole wal.LSN) {
		w := cluster.NewWriter(t, s)
		start, _ := s.StartLSN(fixtureSegSize)
		end := start + wal.LSN(fixtureSegSize)
		w.FillTo(end - 8192 + 64)
		lastWhole = w.Add(waltest.Noop(t, 200))
		w.Add(waltest.Noop(t, 16000)) // crosses into the next segment
		_, segs := w.Segments()
		return segs[0], lastWhole
	}
	replace := func(t *testing.T, b storage.Backend, n uint32, raw []byte) {
		key := walSegmentKey(0, n)
		if err := b.Delete(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		repotest.PutWAL(t, b, key, repository.LZ4, raw, nil)
	}
	newest, gapped := wal.Segment{Timeline: 1, Seg: 0x24}, wal.Segment{Timeline: 1, Seg: 0x21}
	newestSwitch, nSwitchAt, nSwitchEnd := withSwitch(t, newest)
	gappedSwitch, gSwitchAt, gSwitchEnd := withSwitch(t, gapped)
	newestFull, nLastWhole := runningOn(t, newest)

	for _, tc := range []struct {
		name    string
		lost    uint32
		seg     wal.Segment
		raw     []byte
		target  wal.LSN
		wantMsg string // "": restores without a warning
	}{
		{"newest, at the switch", 0, newest, newestSwitch, nSwitchAt, ""},
		{"newest, pg_switch_wal's answer", 0, newest, newestSwitch, nSwitchEnd,
			"none in segment 000000010000000000000024 does: it ends with a WAL switch whose record starts at " + nSwitchAt.String()},
		{"newest, at its last whole record", 0, newest, newestFull, nLastWhole, ""},
		{"newest, past its last whole record", 0, newest, newestFull, nLastWhole + 8,
			"its last whole record starts at " + nLastWhole.String() + " and the next one runs on into segment 000000010000000000000025"},
		{"before a gap, at the switch", 0x22, gapped, gappedSwitch, gSwitchAt, ""},
		{"before a gap, past the switch", 0x22, gapped, gappedSwitch, gSwitchEnd,
			"000000010000000000000022 is missing from the archive, though later segments are archived"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := walFixtureRepo(t, tc.lost)
			replace(t, b, tc.seg.Seg, tc.raw)
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			target := tc.target
			opts.Target = Target{LSN: &target, Action: "promote"}
			res, err := RestoreBackup(context.Background(), b, opts)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("RestoreBackup: %v", err)
				}
				if len(res.Warnings) > 0 {
					t.Errorf("warnings %q, want none: the target is reached in %s", res.Warnings, tc.seg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("RestoreBackup: got %v, want an error mentioning %q", err, tc.wantMsg)
			}
			if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("data directory after the refusal: %v, want it absent", err)
			}
		})
	}
}
