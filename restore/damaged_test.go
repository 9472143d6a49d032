package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestRestoreAroundDamagedManifest: with the newest backup's manifest
// overwritten (a newer version over the locked original), LATEST restores
// the newest intact backup, another backup restores by id, and naming the
// damaged one fails before anything is written, saying where the original
// is.
func TestRestoreAroundDamagedManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newFixtureRepo(t)
	ids := []string{fixtureID, "20261125T100100Z", "20261125T100200Z"}
	for i, id := range ids {
		// The later two lie in segment 3, archived once below.
		storeFixture(t, b, fixture{id: id, stopTime: fixtureMTime.Add(time.Duration(i) * time.Minute), skipWAL: i > 0, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	}
	putSegment(t, b, 1, 3)
	damaged := ids[2]
	if err := b.Put(ctx, repository.BackupManifestKey(damaged), strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ ref, want string }{
		{repository.LatestRef, ids[1]},
		{ids[0], ids[0]},
	} {
		opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
		opts.BackupRef = tc.ref
		res, err := RestoreBackup(ctx, b, opts)
		if err != nil {
			t.Fatalf("restore --backup %s with %s damaged: %v", tc.ref, damaged, err)
		}
		if res.Backup.ID != tc.want {
			t.Errorf("restore --backup %s restored %s, want %s", tc.ref, res.Backup.ID, tc.want)
		}
	}

	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.BackupRef = damaged
	_, err := RestoreBackup(ctx, b, opts)
	if !errors.Is(err, repository.ErrNoBackup) {
		t.Fatalf("restore --backup %s (damaged): %v, want ErrNoBackup", damaged, err)
	}
	for _, want := range []string{damaged + " is DAMAGED", "not valid JSON", "version history"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("restore --backup %s: %q does not say %q", damaged, err, want)
		}
	}
	if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data dir after the refused restore: %v, want it never created", err)
	}
}

// TestRestoreAroundDamagedPart: with the newest backup's only part
// replaced by a shorter version (a newer version over the locked
// original), LATEST restores the newest intact backup, and naming the
// damaged one fails before anything is written, naming the part, its
// sizes and where the original is.
func TestRestoreAroundDamagedPart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newFixtureRepo(t)
	ids := []string{fixtureID, "20261125T100100Z", "20261125T100200Z"}
	var ms []repository.BackupManifest
	for i, id := range ids {
		ms = append(ms, storeFixture(t, b, fixture{id: id, stopTime: fixtureMTime.Add(time.Duration(i) * time.Minute), skipWAL: i > 0, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}}))
	}
	putSegment(t, b, 1, 3)
	damaged := ids[2]
	part := ms[2].Archives[0].Parts[0]
	if err := b.Put(ctx, part.Key, strings.NewReader("short"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}

	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	res, err := RestoreBackup(ctx, b, opts)
	if err != nil {
		t.Fatalf("restore LATEST with a part of %s damaged: %v", damaged, err)
	}
	if res.Backup.ID != ids[1] {
		t.Errorf("restore LATEST restored %s, want %s, the newest intact backup", res.Backup.ID, ids[1])
	}

	opts = restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.BackupRef = damaged
	_, err = RestoreBackup(ctx, b, opts)
	if !errors.Is(err, repository.ErrNoBackup) {
		t.Fatalf("restore --backup %s (damaged): %v, want ErrNoBackup", damaged, err)
	}
	for _, want := range []string{damaged + " is DAMAGED", fmt.Sprintf("%s has 5 bytes, its manifest says %d", part.Key, part.StoredSize), "version history"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("restore --backup %s: %q does not say %q", damaged, err, want)
		}
	}
	if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data dir after the refused restore: %v, want it never created", err)
	}
}

// goneAfterListing wraps b so that key is deleted at restore's first
// listing under wal/, which comes after the catalog (backups/ is listed
// first) found key present: a part that vanishes between the listing and
// the read, which only restore's own check of each part can catch.
func goneAfterListing(t *testing.T, b storage.Backend, key string) storage.Backend {
	t.Helper()
	f := storagetest.NewFault(b)
	var once sync.Once
	f.Before(storagetest.OpList, storagetest.Prefix(repository.WALPrefix), func(ctx context.Context, _ string) error {
		once.Do(func() {
			if err := b.Delete(ctx, key); err != nil {
				t.Errorf("delete %s: %v", key, err)
			}
		})
		return nil
	})
	return f
}
