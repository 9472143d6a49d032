package restore

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
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
	got, _, err := ChooseBackupFollowing(t.Context(), b, &repository.Inventory{}, []repository.BackupInfo{early, late}, "", Target{Time: &target}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != early.ID {
		t.Errorf("chose %s, want %s (the one that really ends before the target)", got.ID, early.ID)
	}
	wantLog(t, logs.String(), "level=WARN", "backup manifest overwritten", "key="+repository.BackupManifestKey(late.ID), "differs=true")
}

// TestChooseFollowingLiveTimeline: a backup that cannot reach timeline 2,
// which recovery to latest follows, is passed over when it was taken
// before timeline 2 began (the old timeline's backups after a mistake a
// point-in-time restore undid: explore22b F3), and refused, naming
// --target-timeline, when taken after (the old timeline went on and
// timeline 2 is a restored copy's: explore22d F1).
func TestChooseFollowingLiveTimeline(t *testing.T) {
	b := branchedRepo(t)
	born := time.Now()
	backup := func(start time.Time, startSeg uint32) repository.BackupInfo {
		return oneSegmentBackup(1, start, startSeg)
	}
	beforeBranch := backup(born.Add(-3*time.Hour), 2)
	for _, tc := range []struct {
		name     string
		taken    time.Time
		wantErr  string
		wantPick string
	}{
		{"taken before timeline 2 began", born.Add(-time.Hour), "", beforeBranch.ID},
		{"taken after timeline 2 began", born.Add(time.Hour), "--target-timeline 1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := repository.LoadInventory(t.Context(), b, repository.LoadOptions{BackupsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			after := backup(tc.taken, 0x0D)
			log, _ := testLogger()
			got, passed, err := ChooseBackupFollowing(t.Context(), b, inv, []repository.BackupInfo{beforeBranch, after}, "", Target{}, log)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %s, %v; want an error naming %q", got.ID, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got.ID != tc.wantPick || len(passed) != 1 || !strings.Contains(passed[0], after.ID)):
				t.Errorf("got %s, %v, passed over %q; want %s, %s passed over", got.ID, err, passed, tc.wantPick, after.ID)
			}
		})
	}
}

// TestChooseFollowingTimelineOne: --target-timeline 1 without --backup
// passes over a newer backup of timeline 2 (no backup of a later timeline
// can recover along an earlier one) and picks timeline 1's newest
// (explore22e F4).
func TestChooseFollowingTimelineOne(t *testing.T) {
	b := branchedRepo(t)
	primary, copyBackup := oneSegmentBackup(1, time.Now().Add(-2*time.Hour), 9), oneSegmentBackup(2, time.Now().Add(-time.Hour), 6)
	inv, err := repository.LoadInventory(t.Context(), b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger()
	got, passed, err := ChooseBackupFollowing(t.Context(), b, inv, []repository.BackupInfo{primary, copyBackup}, "", Target{Timeline: "1"}, log)
	if err != nil || got.ID != primary.ID {
		t.Errorf("--target-timeline 1: chose %s, %v; want %s, timeline 1's", got.ID, err, primary.ID)
	}
	if len(passed) != 1 || !strings.Contains(passed[0], "later than timeline 1, which recovery follows") {
		t.Errorf("passed over %q; want %s named as of a later timeline", passed, copyBackup.ID)
	}
}

// TestChooseFollowingImmediate: --target-immediate without
// --target-timeline recovers along the backup's own timeline ("current",
// as the recovery settings say), so a later timeline that branched before
// the backup ended is no objection, and its history file is not read.
func TestChooseFollowingImmediate(t *testing.T) {
	b := branchedRepo(t)
	newest := oneSegmentBackup(1, time.Now().Add(time.Hour), 0x0D)
	inv, err := repository.LoadInventory(t.Context(), b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var calls storage.Counter
	counted := storage.Count(b, &calls)
	log, _ := testLogger()
	got, passed, err := ChooseBackupFollowing(t.Context(), counted, inv, []repository.BackupInfo{oneSegmentBackup(1, time.Now().Add(-3*time.Hour), 2), newest}, "", Target{Immediate: true}, log)
	if err != nil || got.ID != newest.ID || len(passed) != 0 {
		t.Errorf("--target-immediate: chose %s, %v, passed over %q; want %s, the newest, nothing passed over", got.ID, err, passed, newest.ID)
	}
	if c := calls.Counts(); c.Get+c.Stat+c.List+c.GetHidden != 0 {
		t.Errorf("--target-immediate: %+v to choose among listed backups, want no history file read", c)
	}
}

// branchedRepo is a repository of 16 MiB segments whose timeline 2
// branched from timeline 1 at 0/4000080 (its history file alone).
func branchedRepo(t *testing.T) *mem.Backend {
	t.Helper()
	b := mem.New()
	repotest.Init(t, b, repository.NewIdentity(7312345678901234567, 16<<20, 15, repository.LZ4, "test", time.Now()))
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t0/4000080\tno recovery target specified\n"))
	return b
}

// oneSegmentBackup is a DONE backup on timeline tli, started at start,
// within 16 MiB segment startSeg.
func oneSegmentBackup(tli uint32, start time.Time, startSeg uint32) repository.BackupInfo {
	const segSize = 16 << 20
	s := wal.Segment{Timeline: wal.TimelineID(tli), Seg: startSeg}
	m := repository.BackupManifest{FormatVersion: 1, ID: repository.NewBackupID(start), WALSegmentSize: segSize,
		StartTimeline: tli, StopTimeline: tli, StartTime: start, StopTime: start.Add(time.Minute),
		StartLSN: wal.LSN(uint64(startSeg)*segSize + 0x28).String(), StopLSN: wal.LSN(uint64(startSeg)*segSize + 0x100).String(),
		StartWAL: s.String(), StopWAL: s.String()}
	return repository.BackupInfo{ID: m.ID, Status: repository.StatusDone, Manifest: &m}
}
