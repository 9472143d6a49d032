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
			repotest.Put(t, b, walSegmentKey(0, n), []byte("segment"))
		}
	}
	for _, k := range extra {
		repotest.Put(t, b, k, []byte("segment"))
	}
	return b
}
