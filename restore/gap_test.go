package restore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	segKey := func(log, seg uint32) string {
		return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: log, Seg: seg}}, repository.LZ4)
	}
	// The backup's WAL is segment 2 of these 1 MiB segments; 3 to 0x24
	// follow but for the lost one, and, far later, the archive resumed.
	repo := func(t *testing.T, lost uint32, resumed bool) storage.Backend {
		b := newFixtureRepo(t)
		storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
		for n := uint32(3); n <= 0x24; n++ {
			if n != lost {
				repotest.Put(t, b, segKey(0, n), []byte("segment"))
			}
		}
		if resumed {
			repotest.Put(t, b, segKey(3, 7), []byte("segment"))
		}
		return b
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
			if tc.wantNote == "" && res.Gap != "" || !strings.Contains(res.Gap, tc.wantNote) {
				t.Errorf("result's gap note %q, want one mentioning %q", res.Gap, tc.wantNote)
			}
		})
	}
}
