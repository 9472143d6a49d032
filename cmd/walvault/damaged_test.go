package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
)

// TestDamagedManifestCommands: with one backup's manifest overwritten,
// backup-list and info list every backup and exit 0, naming the damaged
// one DAMAGED with its reason; info and restore refuse it by id, saying
// where the original is; delete refuses to plan anything.
func TestDamagedManifestCommands(t *testing.T) {
	dir, ids := retentionRepo(t)
	damaged := ids[1]
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), repository.BackupManifestKey(damaged), strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	code, stdout, stderr := runCmd(t, "backup-list")
	if code != exitOK {
		t.Fatalf("backup-list: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{ids[0] + "  DONE", damaged + "  DAMAGED", ids[2] + "  DONE", "backup " + damaged + " is DAMAGED: manifest of backup " + damaged} {
		if !strings.Contains(squeeze(stdout), squeeze(want)) {
			t.Errorf("backup-list does not show %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, "backup-list", "--json")
	var list []backupJSON
	if code != exitOK || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 3 {
		t.Fatalf("backup-list --json: exit %d, %d entries\n%s%s", code, len(list), stdout, stderr)
	}
	if bj := list[1]; bj.ID != damaged || bj.Status != "DAMAGED" || !strings.Contains(bj.Damage, "not valid JSON") || bj.Latest {
		t.Errorf("backup-list --json entry of %s: %+v, want DAMAGED with its damage, not latest", damaged, bj)
	}
	if !list[2].Latest {
		t.Errorf("backup-list --json: %s is not latest: %+v", ids[2], list[2])
	}

	code, stdout, stderr = runCmd(t, "info")
	if code != exitOK || !strings.Contains(stdout, "2 DONE, 0 waiting for WAL, 0 incomplete, 1 DAMAGED") || !strings.Contains(stdout, "DAMAGED      backup "+damaged+": manifest of backup") {
		t.Errorf("info: exit %d, want 0 counting and naming the DAMAGED backup\n%s%s", code, stdout, stderr)
	}
	var sum struct {
		Backups struct{ Done, Damaged int }   `json:"backups"`
		Damaged []struct{ ID, Damage string } `json:"damaged_backups"`
	}
	runInfoJSON(t, &sum)
	if sum.Backups.Done != 2 || sum.Backups.Damaged != 1 || len(sum.Damaged) != 1 || sum.Damaged[0].ID != damaged || !strings.Contains(sum.Damaged[0].Damage, "not valid JSON") {
		t.Errorf("info --json: %+v, want 2 DONE and %s DAMAGED with its damage", sum, damaged)
	}
	code, stdout, stderr = runCmd(t, "info", ids[0])
	if code != exitOK || !strings.Contains(stdout, ids[0]) {
		t.Errorf("info %s: exit %d, want 0\n%s%s", ids[0], code, stdout, stderr)
	}

	for _, args := range [][]string{
		{"info", damaged},
		{"restore", "--pgdata", filepath.Join(t.TempDir(), "data"), "--backup", damaged},
	} {
		code, stdout, stderr = runCmd(t, args...)
		if code != exitFailed || !strings.Contains(stderr, damaged+" is DAMAGED") || !strings.Contains(stderr, "not valid JSON") || !strings.Contains(stderr, "version history") {
			t.Errorf("%v: exit %d, want 1 naming the damage and the version history\n%s%s", args, code, stdout, stderr)
		}
	}

	for _, args := range [][]string{
		{"delete", "--retain", "REDUNDANCY 1"},
		{"delete", "--retain", "REDUNDANCY 1", "--confirm"},
		{"delete", "--backup", ids[0], "--confirm"},
		{"delete", "--backup", damaged, "--confirm"},
	} {
		code, stdout, stderr = runCmd(t, args...)
		if code != exitFailed || !strings.Contains(stderr, damaged+" is DAMAGED") || !strings.Contains(stderr, "deletes nothing") {
			t.Errorf("%v: exit %d, want 1 refusing over the DAMAGED backup\n%s%s", args, code, stdout, stderr)
		}
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("the repository changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestDamagedPartCommands: the newest backup's only part replaced by a
// shorter version (the tester's F7). backup-list shows it DAMAGED, with
// its times, naming the part and the sizes, and LATEST moves to the
// backup before; info and restore refuse it by id, saying where the
// original is; delete refuses every policy (which would have kept the
// damaged backup and deleted an older, restorable one) and leaves the
// repository as it was, until the damaged backup is deleted alone.
func TestDamagedPartCommands(t *testing.T) {
	dir, ids := retentionRepo(t)
	damaged := ids[2]
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := repository.BackupPartKey(damaged, "base.tar", 0, repository.LZ4)
	info, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, strings.NewReader("tr"), storage.PutOptions{Size: 2}); err != nil {
		t.Fatal(err)
	}
	sizes := fmt.Sprintf("%s has 2 bytes, its manifest says %d", key, info.Size)
	before := snapshot(t, dir)

	code, stdout, stderr := runCmd(t, "backup-list")
	if code != exitOK {
		t.Fatalf("backup-list: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{ids[1] + " DONE full - 2026-11-02", "LATEST", damaged + " DAMAGED full - 2026-11-03", "backup " + damaged + " is DAMAGED: part " + sizes} {
		if !strings.Contains(squeeze(stdout), squeeze(want)) {
			t.Errorf("backup-list does not show %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, "backup-list", "--json")
	var list []backupJSON
	if code != exitOK || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 3 {
		t.Fatalf("backup-list --json: exit %d, %d entries\n%s%s", code, len(list), stdout, stderr)
	}
	if bj := list[2]; bj.Status != "DAMAGED" || !strings.Contains(bj.Damage, sizes) || bj.Latest || bj.StopTime == nil {
		t.Errorf("backup-list --json entry of %s: %+v, want DAMAGED with its damage and times, not latest", damaged, bj)
	}
	if !list[1].Latest {
		t.Errorf("backup-list --json: %s is not latest: %+v", ids[1], list[1])
	}
	code, stdout, stderr = runCmd(t, "info")
	if code != exitOK || !strings.Contains(stdout, "2 DONE, 0 waiting for WAL, 0 incomplete, 1 DAMAGED") {
		t.Errorf("info: exit %d, want 0 counting 2 DONE and 1 DAMAGED\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{
		{"info", damaged},
		{"restore", "--pgdata", filepath.Join(t.TempDir(), "data"), "--backup", damaged},
	} {
		code, stdout, stderr = runCmd(t, args...)
		if code != exitFailed || !strings.Contains(stderr, damaged+" is DAMAGED: part "+sizes) || !strings.Contains(stderr, "version history") {
			t.Errorf("%v: exit %d, want 1 naming the part, its sizes and the version history\n%s%s", args, code, stdout, stderr)
		}
	}

	for _, args := range [][]string{
		{"delete", "--retain", "REDUNDANCY 1"},
		{"delete", "--retain", "REDUNDANCY 1", "--confirm"},
		{"delete", "--retain", "RECOVERY WINDOW OF 1 DAYS", "--confirm"},
		{"delete", "--backup", ids[0], "--confirm"},
	} {
		code, stdout, stderr = runCmd(t, args...)
		for _, want := range []string{damaged + " is DAMAGED", sizes, "deletes nothing", "version history", "walvault delete --backup " + damaged + " --confirm"} {
			if code != exitFailed || !strings.Contains(stderr, want) {
				t.Errorf("%v: exit %d, want 1 saying %q\n%s%s", args, code, want, stdout, stderr)
			}
		}
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("the repository changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Deleting the damaged backup alone is the way out; then the policy
	// runs again, and keeps the newest backup that restores.
	code, stdout, stderr = runCmd(t, "delete", "--backup", damaged, "--confirm")
	if code != exitOK {
		t.Fatalf("delete --backup %s: exit %d\n%s%s", damaged, code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "delete", "--retain", "REDUNDANCY 1", "--confirm")
	if code != exitOK {
		t.Fatalf("delete --retain REDUNDANCY 1 after: exit %d\n%s%s", code, stdout, stderr)
	}
	after := snapshot(t, dir)
	for i, id := range ids {
		if has := strings.Contains(after, repository.BackupManifestKey(id)); has != (i == 1) {
			t.Errorf("after both deletes, backup %s present: %v; want only %s left", id, has, ids[1])
		}
	}
}
