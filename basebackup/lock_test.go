package basebackup

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// TestPushLock: a backup into a repository whose walvault.json records a
// lock policy locks every object it writes; a backup configured with
// another policy than the repository's is refused before it starts.
func TestPushLock(t *testing.T) {
	t.Parallel()
	pg, unlocked := archivingServer(t)
	sysid, err := strconv.ParseUint(pg.SQL(t, "SELECT system_identifier FROM pg_control_system()"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	policy := repository.LockPolicy{Mode: storage.Compliance, Days: 3}

	inner := mem.New()
	// A lock-enabled bucket that records the options of every Put.
	locked := storagetest.NewFault(inner)
	ident := repository.NewIdentity(sysid, 16<<20, 15, repository.LZ4, "db-1", now).WithLock(policy)
	if _, err := repository.EnsureIdentity(ctxTimeout(t), inner, ident, nil); err != nil {
		t.Fatal(err)
	}
	// The server's archiving reaches inner: its last archived segment is
	// there, as backup-push wants to see.
	last := pg.SwitchWAL(t)
	pg.WaitArchived(t, last, 60*time.Second)
	f, err := wal.Classify(last)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := unlocked.Get(ctxTimeout(t), repository.WALKey(f, repository.LZ4))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	repotest.Put(t, inner, repository.WALKey(f, repository.LZ4), body)

	t.Run("locked repository", func(t *testing.T) {
		// The server archives to unlocked: the backup's WAL is looked for
		// there.
		m, err := Push(ctxTimeout(t), walListedFrom{locked, unlocked}, Options{ConnString: pg.ConnString(), PartSize: MinPartSize, Lock: policy, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatalf("Push with the repository's policy: %v", err)
		}
		want := storage.Retention{Mode: storage.Compliance, Until: now.Add(3 * 24 * time.Hour)}
		keys := []string{m.PGManifest.Key, repository.BackupManifestKey(m.ID), repository.BackupStartedKey(m.ID)}
		for _, a := range m.Archives {
			for _, p := range a.Parts {
				keys = append(keys, p.Key)
			}
		}
		if len(keys) < 4 {
			t.Fatalf("backup has only %d objects: %v", len(keys), keys)
		}
		for _, k := range keys {
			if o, _ := locked.PutOptions(k); o.Retention == nil || *o.Retention != want {
				t.Errorf("retention of %s: got %+v, want %+v", k, o.Retention, want)
			}
		}
		if n := len(locked.Returned(storagetest.OpPut)); n != len(keys) {
			t.Errorf("backup wrote %d objects, its manifest and start record are %d", n, len(keys))
		}
	})

	for _, tc := range []struct {
		name string
		b    storage.Backend
		lock repository.LockPolicy
		want []string
	}{
		{"lock into an unlocked repository", unlocked, policy, []string{"records Object Lock off", "configured with COMPLIANCE for 3 days", "lock-mode off"}},
		{"no lock into a locked repository", inner, repository.LockPolicy{}, []string{"records Object Lock COMPLIANCE for 3 days", "configured with off", "lock-mode compliance and lock-days 3"}},
		{"other days", inner, repository.LockPolicy{Mode: storage.Compliance, Days: 30}, []string{"COMPLIANCE for 3 days", "COMPLIANCE for 30 days"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := objectCount(t, tc.b)
			_, err := Push(ctxTimeout(t), tc.b, Options{ConnString: pg.ConnString(), Lock: tc.lock})
			if !errors.Is(err, ErrRefused) || !errors.Is(err, repository.ErrLockPolicy) {
				t.Fatalf("Push with policy %v: got %v, want a refusal wrapping ErrRefused and repository.ErrLockPolicy", tc.lock, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q: want it to contain %q", err, w)
				}
			}
			if after := objectCount(t, tc.b); after != before {
				t.Errorf("a refused backup stored %d objects", after-before)
			}
		})
	}
}

func objectCount(t *testing.T, b storage.Backend) int {
	t.Helper()
	n := 0
	if err := b.List(t.Context(), repository.BackupsPrefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// walListedFrom is a backend whose listings under wal/ are another's: the
// repository a test server archives to, for a backend standing in for
// the one it would archive to.
type walListedFrom struct {
	*storagetest.Fault
	wal storage.Backend
}

func (w walListedFrom) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if strings.HasPrefix(prefix, repository.WALPrefix) {
		return w.wal.List(ctx, prefix, fn)
	}
	return w.Fault.List(ctx, prefix, fn)
}
