package repository

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestChain(t *testing.T) {
	t.Parallel()
	b := func(id, parent string, st BackupStatus) BackupInfo {
		bi := BackupInfo{ID: id, Status: st}
		if st != StatusIncomplete {
			bi.Manifest = &BackupManifest{ID: id, SystemID: "7", Type: BackupFull}
			if parent != "" {
				bi.Manifest.Type, bi.Manifest.Parent = BackupIncremental, parent
			}
		}
		return bi
	}
	backups := []BackupInfo{
		b("20260101T000000Z", "", StatusDone),
		b("20260102T000000Z", "20260101T000000Z", StatusDone),
		b("20260103T000000Z", "20260102T000000Z", StatusDone),
		b("20260104T000000Z", "", StatusWaitingForWALs),
		b("20260105T000000Z", "20260104T000000Z", StatusDone),
		b("20260106T000000Z", "20260100T000000Z", StatusDone), // parent deleted
		b("20260107T000000Z", "", StatusIncomplete),
		b("20260108T000000Z", "20260107T000000Z", StatusDone),
	}
	chain, err := Chain(backups, "20260103T000000Z")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range chain {
		ids = append(ids, c.ID)
	}
	if want := []string{"20260101T000000Z", "20260102T000000Z", "20260103T000000Z"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("chain %v, want %v", ids, want)
	}
	if c, err := Chain(backups, "20260101T000000Z"); err != nil || len(c) != 1 {
		t.Fatalf("a full backup's chain: %v, %v", c, err)
	}
	for id, want := range map[string]string{
		"20260105T000000Z": "WAITING_FOR_WALS",
		"20260106T000000Z": "not in the repository",
		"20260108T000000Z": "INCOMPLETE",
	} {
		if _, err := Chain(backups, id); !errors.Is(err, ErrBrokenChain) || !strings.Contains(err.Error(), want) {
			t.Errorf("chain of %s: got %v, want ErrBrokenChain saying %q", id, err, want)
		}
	}
	if got, want := Descendants(backups, "20260101T000000Z"), []string{"20260102T000000Z", "20260103T000000Z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("descendants %v, want %v", got, want)
	}
	if got, want := Ancestors(backups, "20260103T000000Z"), []string{"20260102T000000Z", "20260101T000000Z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ancestors %v, want %v", got, want)
	}
}

// TestFindLatestIncremental: LATEST is what restore takes: an incremental
// backup whose chain is complete, else the newest backup that restores.
func TestFindLatestIncremental(t *testing.T) {
	t.Parallel()
	backups := []BackupInfo{
		{ID: "20260101T000000Z", Status: StatusDone, Manifest: &BackupManifest{ID: "20260101T000000Z"}},
		{ID: "20260102T000000Z", Status: StatusDone, Manifest: &BackupManifest{ID: "20260102T000000Z", Type: BackupIncremental, Parent: "20260101T000000Z"}},
	}
	if bi, err := FindBackup(backups, "LATEST"); err != nil || bi.ID != "20260102T000000Z" {
		t.Fatalf("LATEST: got %s, %v; want the incremental backup", bi.ID, err)
	}
	if bi, err := FindBackup(backups, "20260102T000000Z"); err != nil || bi.ID != "20260102T000000Z" {
		t.Fatalf("by id: got %s, %v", bi.ID, err)
	}
	// Its full backup INCOMPLETE: the incremental cannot restore, and
	// nothing else is DONE.
	broken := []BackupInfo{{ID: "20260101T000000Z", Status: StatusIncomplete}, backups[1]}
	if bi, err := FindBackup(broken, "LATEST"); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("LATEST with a broken chain: got %s, %v; want ErrNoBackup", bi.ID, err)
	}
}
