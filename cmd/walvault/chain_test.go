package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/info"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
)

// TestBackupListAndInfoChains: backup-list (table and JSON) and info show
// an incremental's type and parent, its chain, and a broken chain.
func TestBackupListAndInfoChains(t *testing.T) {
	repo, b := infoFixture(t)
	incremental := func(id, parent string) {
		start, _ := time.Parse("20060102T150405Z", id)
		repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.IncrementalFormatVersion, ID: id, SystemID: "7712050215942653825", PGVersion: 170002, WALSegmentSize: 16 << 20,
				StartTimeline: 1, StopTimeline: 1, StartLSN: "0/9000028", StopLSN: "0/A000100",
				StartWAL: "000000010000000000000009", StopWAL: "00000001000000000000000A", StartTime: start, StopTime: start.Add(time.Minute),
				Type: repository.BackupIncremental, Parent: parent,
			},
			Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("incremental")}},
		})
	}
	incremental("20261122T030000Z", "20261122T020000Z")
	incremental("20261122T040000Z", "20261120T000000Z") // its parent is gone

	stdout, _, code := runVerifyOrCheck(t, "backup-list", "--json", "--repo", repo)
	var list []backupJSON
	if err := json.Unmarshal([]byte(stdout), &list); code != exitOK || err != nil || len(list) != 5 {
		t.Fatalf("backup-list --json: exit %d, %v\n%s", code, err, stdout)
	}
	byID := map[string]backupJSON{}
	for _, l := range list {
		byID[l.ID] = l
	}
	if l := byID["20261122T020000Z"]; l.Type != "full" || l.Parent != "" || l.ChainError != "" {
		t.Errorf("full backup: %+v", l)
	}
	if l := byID["20261122T030000Z"]; l.Type != "incremental" || l.Parent != "20261122T020000Z" || l.ChainError != "" {
		t.Errorf("incremental backup: %+v", l)
	}
	if l := byID["20261122T040000Z"]; l.Type != "incremental" || !strings.Contains(l.ChainError, "20261120T000000Z") {
		t.Errorf("incremental on a deleted parent: %+v, want its chain error naming the parent", l)
	}
	stdout, _, _ = runVerifyOrCheck(t, "backup-list", "--repo", repo)
	if !strings.Contains(stdout, "incremental  20261122T020000Z") || !strings.Contains(stdout, "(chain incomplete)") {
		t.Errorf("backup-list table lacks the type, the parent or the broken chain:\n%s", stdout)
	}

	var bk info.Backup
	runInfoJSON(t, &bk, "--repo", repo, "20261122T030000Z")
	if bk.Type != "incremental" || bk.Parent != "20261122T020000Z" || strings.Join(bk.Chain, " ") != "20261122T020000Z 20261122T030000Z" || bk.ChainError != "" {
		t.Errorf("info of the incremental: type %q parent %q chain %v error %q", bk.Type, bk.Parent, bk.Chain, bk.ChainError)
	}
	stdout, _, _ = runVerifyOrCheck(t, "info", "--repo", repo, "20261122T040000Z")
	if !strings.Contains(stdout, "parent       20261120T000000Z (chain: NOT RESTORABLE") {
		t.Errorf("info of the orphan does not say its chain is broken:\n%s", stdout)
	}
}
