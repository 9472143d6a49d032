package verify

import (
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
)

// TestDeletedWALOfADoneBackup: a backup's last segments, in the repository
// when backup-push recorded it DONE, are deleted and nothing later is
// archived: verify no longer takes that for "not archived yet" (a
// warning, exit 0) but reports the backup unrestorable (explore25a F6); a
// backup recorded WAITING_FOR_WALS, whose WAL never came, stays a warning.
func TestDeletedWALOfADoneBackup(t *testing.T) {
	for _, stored := range []bool{true, false} {
		b, _ := filetest.New(t)
		fixtureOn(t, b, testIdentity(), 3) // segments 1 to 3; segments 4 and 5 are gone
		repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.FormatVersion, ID: "20261125T113000Z", SystemID: testSysID, PGVersion: 150010,
				WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1, WALStored: stored,
				StartWAL: wal.Segment{Timeline: 1, Seg: 4}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: 5}.String(),
			},
			Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("tar")}},
		})
		r := run(t, b, false)
		found := strings.Join(kinds(r.Problems), "\n")
		switch {
		case stored && !strings.Contains(found, KindWALGap):
			t.Errorf("WAL of a backup recorded DONE is gone: problems %q, want a wal_gap\n%s", found, text(t, r))
		case !stored && found != "":
			t.Errorf("a backup recorded WAITING_FOR_WALS: problems %q, want none (a warning)", found)
		}
	}
}
