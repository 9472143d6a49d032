package repository_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// damagedRepo holds three DONE backups in a versioned store; the middle
// one's manifest is then overwritten with 5 bytes, as whoever holds the
// host's credentials can do under Object Lock (the original stays an older
// version).
func damagedRepo(t *testing.T) (*mem.Backend, []string) {
	t.Helper()
	ctx := context.Background()
	b := mem.New()
	if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	archiveSegments(t, b, "000000010000000000000002", "000000010000000000000003", "000000010000000000000004")
	ids := []string{"20261125T100000Z", "20261125T110000Z", "20261125T120000Z"}
	for i, id := range ids {
		seg := []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}[i]
		if err := repository.WriteBackupManifest(ctx, b, manifest(id, seg, seg), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, repository.BackupManifestKey(ids[1]), bytes.NewReader([]byte("hello")), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	return b, ids
}

// TestCatalogKeepsOthersOfDamagedManifest: one damaged manifest is a
// DAMAGED entry, and every other backup is listed as before.
func TestCatalogKeepsOthersOfDamagedManifest(t *testing.T) {
	b, ids := damagedRepo(t)
	got, err := repository.ListBackups(context.Background(), b)
	if err != nil {
		t.Fatalf("ListBackups with one damaged manifest: %v", err)
	}
	want := []repository.BackupStatus{repository.StatusDone, repository.StatusDamaged, repository.StatusDone}
	if len(got) != len(want) {
		t.Fatalf("got %d backups %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].ID != ids[i] || got[i].Status != w {
			t.Errorf("backup %d: got %s %s, want %s %s", i, got[i].ID, got[i].Status, ids[i], w)
		}
		if (got[i].Manifest == nil) != (w == repository.StatusDamaged) || (got[i].Damage != nil) != (w == repository.StatusDamaged) {
			t.Errorf("backup %s: manifest %v, damage %v; want a manifest only when %s", ids[i], got[i].Manifest, got[i].Damage, repository.StatusDone)
		}
	}
	if d := got[1].Damage; d == nil || !strings.Contains(d.Error(), "not valid JSON") {
		t.Errorf("damage of %s: %v, want it to say the manifest is not valid JSON", ids[1], d)
	}

	if bi, err := repository.FindBackup(got, repository.LatestRef); err != nil || bi.ID != ids[2] {
		t.Errorf("LATEST = %s, %v; want %s", bi.ID, err, ids[2])
	}
	if bi, err := repository.FindBackup(got, ids[0]); err != nil || bi.Status != repository.StatusDone {
		t.Errorf("FindBackup(%s) = %+v, %v; want it DONE", ids[0], bi, err)
	}
	err = repository.DamagedError(got[1])
	if !errors.Is(err, repository.ErrNoBackup) || !strings.Contains(err.Error(), "DAMAGED") || !strings.Contains(err.Error(), "version history") {
		t.Errorf("DamagedError: %v; want ErrNoBackup naming the damage and the version history", err)
	}
}

// TestCatalogLatestSkipsNewestDamaged: a damaged newest backup is never
// LATEST.
func TestCatalogLatestSkipsNewestDamaged(t *testing.T) {
	ctx := context.Background()
	b, ids := damagedRepo(t)
	if err := b.Put(ctx, repository.BackupManifestKey(ids[2]), strings.NewReader(`{"format_version":99}`), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := repository.ListBackups(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got[2].Status != repository.StatusDamaged || !strings.Contains(got[2].Damage.Error(), "upgrade walvault") {
		t.Errorf("newer-format manifest: %s %v, want DAMAGED saying to upgrade", got[2].Status, got[2].Damage)
	}
	if bi, err := repository.FindBackup(got, repository.LatestRef); err != nil || bi.ID != ids[0] {
		t.Errorf("LATEST = %s, %v; want %s, the newest intact DONE backup", bi.ID, err, ids[0])
	}
}

// TestCatalogDamagedParentBreaksChain: an incremental on a damaged backup
// cannot be restored, and says why.
func TestCatalogDamagedParentBreaksChain(t *testing.T) {
	backups := []repository.BackupInfo{
		{ID: "20261125T100000Z", Status: repository.StatusDamaged, Damage: errors.New("not valid JSON")},
		{ID: "20261125T110000Z", Status: repository.StatusDone, Manifest: &repository.BackupManifest{ID: "20261125T110000Z", Type: repository.BackupIncremental, Parent: "20261125T100000Z"}},
	}
	_, err := repository.Chain(backups, backups[1].ID)
	if !errors.Is(err, repository.ErrBrokenChain) || !strings.Contains(err.Error(), "DAMAGED") {
		t.Errorf("Chain over a damaged parent: %v, want ErrBrokenChain naming it DAMAGED", err)
	}
}

// TestCatalogManifestReadErrorFails: a storage failure reading a manifest
// is no damage: the load fails, as before.
func TestCatalogManifestReadErrorFails(t *testing.T) {
	inner, ids := damagedRepo(t)
	b := storagetest.NewFault(inner)
	transient := errors.New("connection reset by peer")
	b.Fail(storagetest.OpGet, storagetest.Key(repository.BackupManifestKey(ids[0])), transient)
	if got, err := repository.ListBackups(context.Background(), b); !errors.Is(err, transient) {
		t.Fatalf("ListBackups with a failing manifest read: %+v, %v; want an error wrapping %v", got, err, transient)
	}
}

// TestCatalogManifestLSNsDisagree: a manifest whose LSNs disagree with the
// segments it names (one flipped bit in start_lsn made a backup start
// after it stopped, and retention then deleted the WAL it needs) is
// DAMAGED, saying which field; a consistent one is DONE.
func TestCatalogManifestLSNsDisagree(t *testing.T) {
	ctx := context.Background()
	const seg6 = "000000010000000000000006"
	for _, tc := range []struct {
		name, start, stop string
		want              string // "": DONE
	}{
		{"consistent", "0/6000028", "0/6000100", ""},
		{"stop at a segment's first byte", "0/6000028", "0/7000000", ""},
		{"start after stop", "0/7000028", "0/6000100", "stop_lsn 0/6000100 is not after start_lsn 0/7000028"},
		{"start in another segment", "0/4000028", "0/6000100", "start_lsn 0/4000028 lies in segment 000000010000000000000004, but start_wal says " + seg6},
		{"stop in another segment", "0/6000028", "0/E000100", "the byte before stop_lsn 0/E0000FF lies in segment 00000001000000000000000E, but stop_wal says " + seg6},
		{"unparsable", "0/6000028", "0/60zz", "stop_lsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
				t.Fatal(err)
			}
			archiveSegments(t, b, seg6)
			m := manifest("20261125T100000Z", seg6, seg6)
			m.StartLSN, m.StopLSN = tc.start, tc.stop
			if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
				t.Fatal(err)
			}
			got, err := repository.ListBackups(ctx, b)
			if err != nil || len(got) != 1 {
				t.Fatalf("ListBackups: %v, %v", got, err)
			}
			if tc.want == "" {
				if got[0].Status != repository.StatusDone {
					t.Errorf("status %s (%v), want DONE", got[0].Status, got[0].Damage)
				}
				return
			}
			if got[0].Status != repository.StatusDamaged || got[0].Damage == nil || !strings.Contains(got[0].Damage.Error(), tc.want) {
				t.Errorf("status %s, damage %v; want DAMAGED saying %q", got[0].Status, got[0].Damage, tc.want)
			}
		})
	}
}

// TestCatalogLostIdentitySaysWhat: backups without walvault.json (deleted
// with every version) are refused, as nothing can be checked without it,
// with what happened and how to get it back, not a bare "not found".
func TestCatalogLostIdentitySaysWhat(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	archiveSegments(t, b, "000000010000000000000002")
	if err := repository.WriteBackupManifest(ctx, b, manifest("20261125T100000Z", "000000010000000000000002", "000000010000000000000002"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := repository.ListBackups(ctx, b)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "was deleted, with every version") || !strings.Contains(err.Error(), "put its last version back") {
		t.Fatalf("ListBackups without walvault.json: %v; want not found, saying it was deleted and how to get it back", err)
	}
}
