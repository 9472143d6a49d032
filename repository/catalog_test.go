package repository_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// manifest is a backup of a 16 MiB-segment cluster from start to stop WAL.
func manifest(id, startWAL, stopWAL string) repository.BackupManifest {
	return repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, SystemID: "7",
		WALSegmentSize: 16 << 20, StartTimeline: 1, StopTimeline: 1,
		StartWAL: startWAL, StopWAL: stopWAL,
	}
}

func archiveSegments(t *testing.T, b storage.Backend, names ...string) {
	t.Helper()
	for _, n := range names {
		putRaw(t, b, "wal/00000001/"+n+".lz4", "x")
	}
}

func TestListBackupsStatus(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	archiveSegments(t, b, "000000010000000000000002", "000000010000000000000003", "000000010000000000000004", "000000010000000000000007")
	for _, m := range []repository.BackupManifest{
		manifest("20261125T100000Z", "000000010000000000000002", "000000010000000000000004"), // all WAL there
		manifest("20261125T110000Z", "000000010000000000000004", "000000010000000000000006"), // 5 and 6 missing
		manifest("20261125T130000Z", "000000010000000000000007", "000000010000000000000007"), // single segment
	} {
		if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// An interrupted push: parts, no manifest.
	putRaw(t, b, repository.BackupPartKey("20261125T120000Z", "base.tar", 0, repository.LZ4), "part")
	// Not ours: ignored.
	putRaw(t, b, "backups/notes.txt", "hello")

	got, err := repository.ListBackups(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      string
		status  repository.BackupStatus
		missing string
	}{
		{"20261125T100000Z", repository.StatusDone, ""},
		{"20261125T110000Z", repository.StatusWaitingForWALs, "000000010000000000000005"},
		{"20261125T120000Z", repository.StatusIncomplete, ""},
		{"20261125T130000Z", repository.StatusDone, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d backups %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Status != w.status || got[i].MissingWAL != w.missing {
			t.Errorf("backup %d: got %s %s missing %q, want %s %s missing %q", i, got[i].ID, got[i].Status, got[i].MissingWAL, w.id, w.status, w.missing)
		}
		if (got[i].Manifest == nil) != (w.status == repository.StatusIncomplete) {
			t.Errorf("backup %s: manifest presence wrong for status %s", w.id, w.status)
		}
	}

	tests := []struct {
		ref     string
		want    string
		wantErr string
	}{
		{"LATEST", "20261125T130000Z", ""},
		{"", "20261125T130000Z", ""},
		{"20261125T110000Z", "20261125T110000Z", ""},
		{"20261125T140000Z", "", "does not exist"},
		{"../../etc", "", "invalid backup id"},
	}
	for _, tc := range tests {
		bi, err := repository.FindBackup(got, tc.ref)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("FindBackup(%q): err %v, want %q", tc.ref, err, tc.wantErr)
			}
			continue
		}
		if err != nil || bi.ID != tc.want {
			t.Errorf("FindBackup(%q) = %s, %v; want %s", tc.ref, bi.ID, err, tc.want)
		}
	}
}

func TestFindBackupLatestSkipsUnfinished(t *testing.T) {
	backups := []repository.BackupInfo{
		{ID: "20261125T100000Z", Status: repository.StatusDone},
		{ID: "20261125T110000Z", Status: repository.StatusWaitingForWALs},
		{ID: "20261125T120000Z", Status: repository.StatusIncomplete},
	}
	bi, err := repository.FindBackup(backups, "LATEST")
	if err != nil || bi.ID != "20261125T100000Z" {
		t.Fatalf("LATEST = %s, %v; want the only DONE backup", bi.ID, err)
	}
	if _, err := repository.FindBackup(backups[1:], "LATEST"); !errors.Is(err, repository.ErrNoBackup) {
		t.Fatalf("LATEST with nothing DONE: err %v, want ErrNoBackup", err)
	}
}

// TestFindBackupLatestBrokenChains: with DONE backups that are all
// incrementals on a DAMAGED full backup, LATEST says so, naming the break,
// instead of "no backup is DONE yet" and advice about archiving
// (explore25d F3).
func TestFindBackupLatestBrokenChains(t *testing.T) {
	incr := func(id, parent string) repository.BackupInfo {
		return repository.BackupInfo{ID: id, Status: repository.StatusDone, Manifest: &repository.BackupManifest{ID: id, Parent: parent, SystemID: "7"}}
	}
	backups := []repository.BackupInfo{
		{ID: "20261125T100000Z", Status: repository.StatusDamaged, Damage: errors.New("part base.tar.lz4 has 5 bytes")},
		incr("20261125T110000Z", "20261125T100000Z"),
		incr("20261125T120000Z", "20261125T110000Z"),
	}
	_, err := repository.FindBackup(backups, "LATEST")
	if !errors.Is(err, repository.ErrNoBackup) || strings.Contains(err.Error(), "DONE yet") ||
		!strings.Contains(err.Error(), "20261125T100000Z, which is DAMAGED") || !strings.Contains(err.Error(), "take a full backup") {
		t.Fatalf("LATEST with every chain broken: %v, want ErrNoBackup naming the DAMAGED full backup", err)
	}
}

func TestBackupManifestWriteOnce(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	m := manifest("20261125T100000Z", "000000010000000000000002", "000000010000000000000002")
	m.StopTime = time.Date(2026, 11, 25, 10, 0, 5, 0, time.UTC)
	if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
		t.Fatal(err)
	}
	m2 := m
	m2.Label = "other"
	if err := repository.WriteBackupManifest(ctx, b, m2, nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second manifest write: err %v, want ErrExists", err)
	}
	got, err := repository.LoadBackupManifest(ctx, b, m.ID)
	if err != nil || got.Label != "" || !got.StopTime.Equal(m.StopTime) {
		t.Fatalf("LoadBackupManifest = %+v, %v; want the first manifest", got, err)
	}
	if _, err := repository.LoadBackupManifest(ctx, b, "20261125T100001Z"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing manifest: err %v, want ErrNotFound", err)
	}
}

// TestMisorderedAcrossTimelines: two backups of timeline 1 whose times
// and WAL positions disagree are found though a backup of timeline 2
// lies between them in id order (explore23e F6).
func TestMisorderedAcrossTimelines(t *testing.T) {
	done := func(id string, tli uint32, startLSN string) repository.BackupInfo {
		m := repository.BackupManifest{ID: id, StartTimeline: tli, StartLSN: startLSN}
		return repository.BackupInfo{ID: id, Status: repository.StatusDone, Manifest: &m}
	}
	backups := []repository.BackupInfo{
		done("20261201T000000Z", 1, "0/8000028"),
		done("20261202T000000Z", 2, "0/9000028"),
		done("20261203T000000Z", 1, "0/3000028"), // later by time, earlier by WAL
	}
	newer, older, ok := repository.Misordered(backups)
	if !ok || newer.ID != "20261203T000000Z" || older.ID != "20261201T000000Z" {
		t.Errorf("Misordered: %s, %s, %v; want 20261203T000000Z newer than 20261201T000000Z by time, older by WAL", newer.ID, older.ID, ok)
	}
}
