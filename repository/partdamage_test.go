package repository_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

var partSegs = []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}

// partRepo holds three DONE full backups in a versioned store, each a
// one-part base.tar and its backup_manifest, as backup-push stores them.
func partRepo(t *testing.T) (*mem.Backend, []repository.BackupManifest) {
	t.Helper()
	b := repotest.New(t, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created))
	archiveSegments(t, b, partSegs...)
	var ms []repository.BackupManifest
	for i, id := range []string{"20261125T100000Z", "20261125T110000Z", "20261125T120000Z"} {
		ms = append(ms, repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: manifest(id, partSegs[i], partSegs[i]),
			Archives: []repotest.Archive{{Name: "base.tar", Data: bytes.Repeat([]byte("tar of "+id), 500)}},
		}))
	}
	return b, ms
}

// loadModes are every way of loading an inventory: each lists backups/
// whole, so each must see a damaged part.
var loadModes = []struct {
	name string
	opts repository.LoadOptions
}{
	{"BackupsOnly", repository.LoadOptions{BackupsOnly: true}},
	{"default", repository.LoadOptions{}},
	{"WALObjects", repository.LoadOptions{WALObjects: true}},
	{"Histories", repository.LoadOptions{Histories: true}},
	{"Hidden", repository.LoadOptions{Hidden: true}},
	{"BackupsOnly+ReadAhead", repository.LoadOptions{BackupsOnly: true, ReadAhead: []string{"20261125T120000Z"}}},
}

func catalogOf(t *testing.T, b storage.Backend, opts repository.LoadOptions) (*repository.Inventory, []repository.BackupInfo) {
	t.Helper()
	inv, err := repository.LoadInventory(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("LoadInventory: %v", err)
	}
	list, err := inv.Catalog()
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	return inv, list
}

// TestCatalogDamagedPart: a backup whose listing shows an object of its
// manifest (a part, backup_manifest) of another size or missing is
// DAMAGED, naming the object and the sizes, in every load mode; it keeps
// its manifest, and LATEST is the newest backup that can be restored.
func TestCatalogDamagedPart(t *testing.T) {
	cases := []struct {
		name   string
		object func(m repository.BackupManifest) repository.BackupPart
		damage func(t *testing.T, b *mem.Backend, key string)
		want   string // in the damage, after the key
		remedy string // in DamagedError
	}{
		{"part truncated", firstPart, shorten, "has 100 bytes, its manifest says", "version history"},
		{"part deleted", firstPart, remove, "is missing (its manifest records", "copy-object"},
		{"backup_manifest truncated", pgManifest, shorten, "has 100 bytes, its manifest says", "version history"},
		{"backup_manifest deleted", pgManifest, remove, "is missing (its manifest records", "no delete marker hides"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, ms := partRepo(t)
			m := ms[2]
			p := c.object(m)
			c.damage(t, b, p.Key)
			for _, mode := range loadModes {
				inv, list := catalogOf(t, b, mode.opts)
				if st := inv.Backup(m.ID).Status(); st != repository.StatusDamaged {
					t.Errorf("%s: Backup.Status() = %s, want DAMAGED", mode.name, st)
				}
				for i, bi := range list {
					want := repository.StatusDone
					if i == 2 {
						want = repository.StatusDamaged
					}
					if bi.Status != want {
						t.Errorf("%s: backup %s is %s, want %s", mode.name, bi.ID, bi.Status, want)
					}
				}
				bi := list[2]
				var pd *repository.PartDamage
				if !errors.As(bi.Damage, &pd) || pd.Key != p.Key || pd.Want != p.StoredSize {
					t.Fatalf("%s: damage %#v, want a PartDamage of %s recording %d bytes", mode.name, bi.Damage, p.Key, p.StoredSize)
				}
				if msg := bi.Damage.Error(); !strings.Contains(msg, p.Key+" "+c.want) || !strings.Contains(msg, fmt.Sprint(p.StoredSize)) {
					t.Errorf("%s: damage %q, want it to say %s %s %d", mode.name, msg, p.Key, c.want, p.StoredSize)
				}
				if bi.Manifest == nil || bi.Manifest.ID != m.ID {
					t.Errorf("%s: DAMAGED by a part, the manifest %v should stay known", mode.name, bi.Manifest)
				}
				if latest, err := repository.FindBackup(list, repository.LatestRef); err != nil || latest.ID != ms[1].ID {
					t.Errorf("%s: LATEST = %s, %v; want %s, the newest backup that can be restored", mode.name, latest.ID, err, ms[1].ID)
				}
				err := repository.DamagedError(bi)
				if !errors.Is(err, repository.ErrNoBackup) || !strings.Contains(err.Error(), p.Key) || !strings.Contains(err.Error(), c.remedy) {
					t.Errorf("%s: DamagedError: %v; want ErrNoBackup naming %s and %q", mode.name, err, p.Key, c.remedy)
				}
			}
		})
	}
}

func firstPart(m repository.BackupManifest) repository.BackupPart  { return m.Archives[0].Parts[0] }
func pgManifest(m repository.BackupManifest) repository.BackupPart { return m.PGManifest }

// shorten uploads a 100-byte version over key, as anyone with the host's
// credentials can (the original stays an older version).
func shorten(t *testing.T, b *mem.Backend, key string) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(make([]byte, 100)), storage.PutOptions{Size: 100}); err != nil {
		t.Fatal(err)
	}
}

// remove deletes key's only version: no delete marker hides it.
func remove(t *testing.T, b *mem.Backend, key string) {
	t.Helper()
	if err := b.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

// TestCatalogHiddenPartNotDamaged: a part hidden behind a delete marker
// still restores (restore reads through the marker), so its backup stays
// DONE, whether or not the load asked for hidden objects, and through
// restore's reading layer too; verify reports the marker. A hidden version
// of another size does not restore: DAMAGED.
func TestCatalogHiddenPartNotDamaged(t *testing.T) {
	b, ms := partRepo(t)
	key := firstPart(ms[2]).Key
	if err := b.Hide(key); err != nil {
		t.Fatal(err)
	}
	views := []struct {
		name string
		b    storage.Backend
	}{{"plain", b}, {"ReadHidden", storage.ReadHidden(b, nil)}}
	for _, v := range views {
		for _, mode := range loadModes {
			inv, list := catalogOf(t, v.b, mode.opts)
			if bk := inv.Backup(ms[2].ID); bk.Status() != repository.StatusDone || bk.PartsErr != nil {
				t.Errorf("%s, %s: hidden part: %s, %v; want DONE", v.name, mode.name, bk.Status(), bk.PartsErr)
			}
			if latest, err := repository.FindBackup(list, repository.LatestRef); err != nil || latest.ID != ms[2].ID {
				t.Errorf("%s, %s: LATEST = %s, %v; want %s", v.name, mode.name, latest.ID, err, ms[2].ID)
			}
		}
	}

	b, ms = partRepo(t)
	key = firstPart(ms[2]).Key
	shorten(t, b, key)
	if err := b.Hide(key); err != nil {
		t.Fatal(err)
	}
	for _, mode := range loadModes {
		_, list := catalogOf(t, b, mode.opts)
		if list[2].Status != repository.StatusDamaged || !strings.Contains(fmt.Sprint(list[2].Damage), key+" has 100 bytes") {
			t.Errorf("%s: hidden part of 100 bytes: %s, %v; want DAMAGED naming its size", mode.name, list[2].Status, list[2].Damage)
		}
	}
}

// TestCatalogPartVersionsRefused: when the storage refuses to list
// versions, a part hidden behind a marker cannot be read by restore
// either: DAMAGED, and the advice names walvault repair. A transient
// failure of that listing is no verdict: the load fails.
func TestCatalogPartVersionsRefused(t *testing.T) {
	inner, ms := partRepo(t)
	key := firstPart(ms[2]).Key
	f := storagetest.NewFault(inner)
	f.Hide(key)
	f.Fail(storagetest.OpListHidden, storagetest.AnyKey, storage.Permanent(errors.New("AccessDenied")))
	_, list := catalogOf(t, f.Versioned(), repository.LoadOptions{BackupsOnly: true})
	var pd *repository.PartDamage
	if list[2].Status != repository.StatusDamaged || !errors.As(list[2].Damage, &pd) || pd.VersionsErr == nil {
		t.Fatalf("versions refused: %s, %#v; want DAMAGED saying versions could not be looked for", list[2].Status, list[2].Damage)
	}
	if err := repository.DamagedError(list[2]); !strings.Contains(err.Error(), "walvault repair") {
		t.Errorf("DamagedError: %v; want it to name walvault repair", err)
	}

	f = storagetest.NewFault(inner)
	f.Hide(key)
	transient := errors.New("connection reset by peer")
	f.Fail(storagetest.OpListHidden, storagetest.AnyKey, transient)
	if _, err := repository.LoadInventory(context.Background(), f.Versioned(), repository.LoadOptions{BackupsOnly: true}); !errors.Is(err, transient) {
		t.Errorf("LoadInventory with a failing versions listing: %v, want an error wrapping %v", err, transient)
	}
}

// TestCatalogPartListedLate: a backup_manifest the first listing missed
// (backup-push wrote it as the listing passed its key, then its manifest)
// is found by the second listing of the folder: no damage.
func TestCatalogPartListedLate(t *testing.T) {
	inner, ms := partRepo(t)
	key := pgManifest(ms[2]).Key
	f := storagetest.NewFault(inner)
	f.Hide(key)
	vf := f.Versioned()
	f.Before(storagetest.OpList, storagetest.Key(repository.BackupPrefix(ms[2].ID)), func(ctx context.Context, _ string) error {
		return vf.Unhide(ctx, key)
	})
	inv, _ := catalogOf(t, f, repository.LoadOptions{BackupsOnly: true})
	if bk := inv.Backup(ms[2].ID); bk.Status() != repository.StatusDone {
		t.Errorf("backup_manifest listed late: %s, %v; want DONE", bk.Status(), bk.PartsErr)
	}
}

// TestCatalogIncompleteStaysIncomplete: a folder without a manifest has no
// record of its parts to fall short of: INCOMPLETE, not DAMAGED.
func TestCatalogIncompleteStaysIncomplete(t *testing.T) {
	b, ms := partRepo(t)
	remove(t, b, repository.BackupManifestKey(ms[2].ID))
	remove(t, b, firstPart(ms[2]).Key)
	for _, mode := range loadModes {
		_, list := catalogOf(t, b, mode.opts)
		if list[2].Status != repository.StatusIncomplete || list[2].Damage != nil {
			t.Errorf("%s: %s, %v; want INCOMPLETE", mode.name, list[2].Status, list[2].Damage)
		}
	}
}

// TestCatalogDamagedPartBreaksChain: an incremental backup on a parent
// with a damaged part cannot be restored: its chain names the parent
// DAMAGED and the part, and LATEST falls back to the newest full backup
// that is intact.
func TestCatalogDamagedPartBreaksChain(t *testing.T) {
	b, ms := partRepo(t)
	archiveSegments(t, b, "000000010000000000000005")
	child := manifest("20261125T130000Z", "000000010000000000000005", "000000010000000000000005")
	child.Type, child.Parent = repository.BackupIncremental, ms[2].ID
	repotest.WriteBackup(t, b, repotest.Backup{Manifest: child, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("incremental")}}})
	key := firstPart(ms[2]).Key
	shorten(t, b, key)

	_, list := catalogOf(t, b, repository.LoadOptions{BackupsOnly: true})
	if list[3].Status != repository.StatusDone {
		t.Fatalf("incremental %s is %s; its own objects are intact, want DONE", list[3].ID, list[3].Status)
	}
	_, err := repository.Chain(list, child.ID)
	if !errors.Is(err, repository.ErrBrokenChain) || !strings.Contains(err.Error(), ms[2].ID+", which is DAMAGED") || !strings.Contains(err.Error(), key) {
		t.Errorf("Chain over a parent with a damaged part: %v; want ErrBrokenChain naming %s DAMAGED and %s", err, ms[2].ID, key)
	}
	if latest, err := repository.FindBackup(list, repository.LatestRef); err != nil || latest.ID != ms[1].ID {
		t.Errorf("LATEST = %s, %v; want %s", latest.ID, err, ms[1].ID)
	}
}
