package repository_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// lostIdentityRepo is cluster 7's repository, with a segment and a backup
// (when asked), whose walvault.json was deleted with every version.
func lostIdentityRepo(t *testing.T, segment, backup bool) *mem.Backend {
	t.Helper()
	b := repotest.New(t, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created))
	seg := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	if segment {
		repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: seg}, repository.LZ4),
			repository.LZ4, []byte("segment"), map[string]string{repository.MetaSystemID: "7"})
	} else {
		// A history file records no cluster.
		repotest.Put(t, b, "wal/00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	}
	if backup {
		at := created.Add(time.Hour)
		m := repository.BackupManifest{
			FormatVersion: repository.FormatVersion, ID: repository.NewBackupID(at), SystemID: "7", PGVersion: 150010, WALSegmentSize: 16 << 20,
			StartTimeline: 1, StartLSN: "0/3000028", StopTimeline: 1, StopLSN: "0/3000100",
			StartWAL: seg.String(), StopWAL: seg.String(), StartTime: at, StopTime: at.Add(time.Minute),
		}
		repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("part")}}})
	}
	if err := b.Delete(context.Background(), repository.IdentityKey); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLostIdentityNotClaimedByAnotherCluster: a repository that lost its
// walvault.json is not taken over by the next cluster that pushes to it
// (its WAL would mix with the owner's, whose backups would turn foreign);
// its owner, proven by the objects' own records, writes it anew.
func TestLostIdentityNotClaimedByAnotherCluster(t *testing.T) {
	ensures := map[string]func(context.Context, storage.Backend, repository.Identity, *storage.Retention) (repository.Identity, error){
		"EnsureIdentity": repository.EnsureIdentity,
		"EnsureProvenIdentity": func(ctx context.Context, b storage.Backend, want repository.Identity, ret *storage.Retention) (repository.Identity, error) {
			return repository.EnsureProvenIdentity(ctx, b, want, ret, time.Time{})
		},
	}
	for name, ensure := range ensures {
		for _, c := range []struct {
			what            string
			segment, backup bool
		}{{"segment and backup", true, true}, {"segment only", true, false}, {"backup only", false, true}} {
			t.Run(name+"/"+c.what, func(t *testing.T) {
				ctx := context.Background()
				b := lostIdentityRepo(t, c.segment, c.backup)
				other := repository.NewIdentity(8, 16<<20, 15, repository.LZ4, "intruder", created)
				_, err := ensure(ctx, b, other, nil)
				if !errors.Is(err, repository.ErrIdentityLost) || !errors.Is(err, repository.ErrWrongCluster) {
					t.Fatalf("another cluster's first push: got %v, want ErrIdentityLost and ErrWrongCluster", err)
				}
				for _, want := range []string{"system identifier 7", "this server's is 8", "Nothing was written"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal %q lacks %q", err, want)
					}
				}
				if _, err := b.Stat(ctx, repository.IdentityKey); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("after the refusal walvault.json: %v, want still absent", err)
				}

				owner := repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "owner", created)
				id, err := ensure(ctx, b, owner, nil)
				if err != nil {
					t.Fatalf("the owner's push: %v", err)
				}
				if id.SystemID != "7" || id.Recreated == "" {
					t.Errorf("the owner's push: identity %+v, want cluster 7 recreated with its proof", id)
				}
				if c.segment && !strings.Contains(id.Recreated, "wal/00000001/000000010000000000000003") {
					t.Errorf("proof %q does not name the segment", id.Recreated)
				}
				got, err := repository.LoadIdentity(ctx, b)
				if err != nil || got.SystemID != "7" {
					t.Fatalf("walvault.json after the owner's push: %+v, %v", got, err)
				}
				if again, err := ensure(ctx, b, owner, nil); err != nil || again.Recreated != "" {
					t.Errorf("a later push: %+v, %v; want the identity read, not recreated", again, err)
				}
			})
		}
	}
}

// TestLostIdentityWithoutProof: objects that record no cluster (a history
// file alone) prove nobody's claim: every cluster is refused.
func TestLostIdentityWithoutProof(t *testing.T) {
	b := lostIdentityRepo(t, false, false)
	_, err := repository.EnsureIdentity(context.Background(), b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil)
	if !errors.Is(err, repository.ErrIdentityLost) || errors.Is(err, repository.ErrWrongCluster) {
		t.Fatalf("got %v, want ErrIdentityLost without ErrWrongCluster", err)
	}
	if !strings.Contains(err.Error(), "wal/00000002.history") {
		t.Errorf("refusal %q does not name what the repository holds", err)
	}
	// History files only (an older walvault's, which record no cluster):
	// the way out is said.
	if !strings.Contains(err.Error(), "delete wal/00000002.history") || !strings.Contains(err.Error(), "walvault wal-push pg_wal/00000002.history") {
		t.Errorf("refusal %q does not say how to archive again", err)
	}
}

// TestNewRepositoryClaimCost: a first push into an empty repository asks
// two listings more (wal/ and backups/, at once), nothing else.
func TestNewRepositoryClaimCost(t *testing.T) {
	var c storage.Counter
	b := storage.Count(mem.New(), &c)
	if _, err := repository.EnsureIdentity(context.Background(), b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	if got := c.Counts(); got.List != 2 || got.Stat != 0 {
		t.Errorf("first push into an empty repository: %+v, want 2 listings and no Stat", got)
	}
}

// TestLostIdentityDescribed: readers say that a repository without
// walvault.json but with WAL and backups lost it, rather than that nothing
// was ever archived.
func TestLostIdentityDescribed(t *testing.T) {
	ctx := context.Background()
	inv, err := repository.LoadInventory(ctx, lostIdentityRepo(t, true, true), repository.LoadOptions{Histories: true})
	if err != nil {
		t.Fatal(err)
	}
	got := inv.LostIdentity()
	for _, want := range []string{"1 WAL file", "1 backup", "was deleted"} {
		if !strings.Contains(got, want) {
			t.Errorf("LostIdentity() = %q, lacks %q", got, want)
		}
	}
	empty, err := repository.LoadInventory(ctx, mem.New(), repository.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.LostIdentity(); got != "" {
		t.Errorf("an empty repository: LostIdentity() = %q, want none", got)
	}
}

// TestLostIdentityNewPrefix: a new prefix whose first push was a backup
// history file (PostgreSQL archives it just after the backup's segment)
// holds no walvault.json yet; that is said, not that it was deleted with
// every version (explore25b F5).
func TestLostIdentityNewPrefix(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	repotest.Put(t, b, "wal/00000001/000000010000000000000002.00000028.backup", []byte("START WAL LOCATION: 0/2000028\n"))
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Histories: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.LostIdentity(); strings.Contains(got, "was deleted") || !strings.Contains(got, "no WAL segment") {
		t.Errorf("a prefix holding a backup history file only: LostIdentity() = %q, want it called new, not deleted", got)
	}
}
