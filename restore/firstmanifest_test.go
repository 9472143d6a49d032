package restore

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// TestChooseByFirstManifest: a newer version put over a backup's manifest
// with earlier times (so a point-in-time restore would pick that backup
// and recover past its target) does not steer the choice: the backup is
// judged by its manifest's first version, with a warning, and the one
// that really ends before the target is restored (explore22a F4).
func TestChooseByFirstManifest(t *testing.T) {
	b := mem.New()
	at := func(h int) time.Time { return time.Date(2026, 12, 7, h, 0, 0, 0, time.UTC) }
	backup := func(h int) repository.BackupInfo {
		m := repository.BackupManifest{FormatVersion: 1, ID: repository.NewBackupID(at(h)), StartTime: at(h), StopTime: at(h).Add(time.Minute)}
		if err := repository.WriteBackupManifest(t.Context(), b, m, nil); err != nil {
			t.Fatal(err)
		}
		return repository.BackupInfo{ID: m.ID, Status: repository.StatusDone, Manifest: &m}
	}
	early, late := backup(10), backup(14)
	// The forgery: late's manifest, put again with times before the target.
	forged := *late.Manifest
	forged.StartTime, forged.StopTime = at(11), at(11).Add(time.Minute)
	data, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), repository.BackupManifestKey(late.ID), bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	late.Manifest = &forged // as the catalog reads it: the current version
	target := at(12)
	log, logs := testLogger()
	got, err := chooseFollowing(t.Context(), b, &repository.Inventory{}, []repository.BackupInfo{early, late}, "", Target{Time: &target}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != early.ID {
		t.Errorf("chose %s, want %s (the one that really ends before the target)", got.ID, early.ID)
	}
	wantLog(t, logs.String(), "level=WARN", "backup manifest overwritten", "key="+repository.BackupManifestKey(late.ID), "differs=true")
}
