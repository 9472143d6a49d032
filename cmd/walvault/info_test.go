package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/info"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// infoFixture is a repository with two timelines and a gap, built without
// PostgreSQL:
//
//	timeline 1: segments 1-4, gap 5-6, segments 7-10 (0A)
//	timeline 2: branches from 1 at 0/A000100 (segment 0A), segments 0A-0C
//	backup A: timeline 1, WAL 2-3 (DONE, kept)
//	backup B: timeline 1, WAL 7-8 (DONE, LATEST, with a tablespace)
//	backup C: timeline 2, WAL 0C-0D (WAITING_FOR_WALS: 0D not archived)
//	one failed drill
func infoFixture(t *testing.T) (repo string, b storage.Backend) {
	t.Helper()
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 16 << 20
	created := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	repotest.Init(t, b, repository.NewIdentity(7712050215942653825, segSize, 15, repository.LZ4, "db-1", created))
	seg := func(tli wal.TimelineID, n uint32) wal.FileName {
		s := wal.Segment{Timeline: tli, Seg: n}
		return wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: s}
	}
	for _, n := range []uint32{1, 2, 3, 4, 7, 8, 9, 10} {
		repotest.PutWAL(t, b, repository.WALKey(seg(1, n), repository.LZ4), repository.LZ4, []byte("wal"), nil)
	}
	for _, n := range []uint32{10, 11, 12} {
		repotest.PutWAL(t, b, repository.WALKey(seg(2, n), repository.LZ4), repository.LZ4, []byte("wal"), nil)
	}
	repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None),
		waltest.History(t, wal.HistoryEntry{Timeline: 1, SwitchPoint: 0xA000100, Reason: "no recovery target specified"}))

	backup := func(id string, tli uint32, startSeg, stopSeg uint32, tablespace bool) {
		start, _ := time.Parse("20060102T150405Z", id)
		s, e := seg(wal.TimelineID(tli), startSeg).Segment, seg(wal.TimelineID(tli), stopSeg).Segment
		archives := []repotest.Archive{{Name: "base.tar", Data: []byte(strings.Repeat("base", 1000))}}
		if tablespace {
			archives = append(archives, repotest.Archive{Name: "16385.tar", TablespaceOID: 16385, TablespaceLocation: "/srv/ts", Data: []byte("tablespace")})
		}
		repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.FormatVersion, ID: id, Label: "walvault " + id, SystemID: "7712050215942653825", PGVersion: 150010, WALSegmentSize: segSize,
				StartTimeline: tli, StopTimeline: tli,
				StartLSN: wal.LSN(uint64(startSeg)*segSize + 0x28).String(), StopLSN: wal.LSN(uint64(stopSeg)*segSize + 0x100).String(),
				StartWAL: s.String(), StopWAL: e.String(), StartTime: start, StopTime: start.Add(90 * time.Second), Host: "db-1", Walvault: "test",
			},
			Archives: archives,
			PartSize: 1000,
		})
	}
	backup("20261121T020000Z", 1, 2, 3, false)
	backup("20261122T020000Z", 1, 7, 8, true)
	backup("20261123T020000Z", 2, 12, 13, false)
	if _, err := repository.WriteMark(context.Background(), b, "20261121T020000Z", true, created.Add(48*time.Hour), repository.MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := drill.Record{OK: false, Error: "the server did not start", StartedAt: created.Add(72 * time.Hour), FinishedAt: created.Add(72*time.Hour + time.Minute), BackupID: "20261122T020000Z", Target: "immediate"}
	if err := drill.WriteRecord(context.Background(), b, &rec, nil); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir, b
}

func runInfoJSON(t *testing.T, v any, args ...string) string {
	t.Helper()
	stdout, stderr, code := runVerifyOrCheck(t, append([]string{"info", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("info --json %v: exit %d\n%s%s", args, code, stdout, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("info --json %v is not JSON: %v\n%s", args, err, stdout)
	}
	return stdout
}

func TestInfoRecoveryWindow(t *testing.T) {
	repo, _ := infoFixture(t)
	var s info.Summary
	out := runInfoJSON(t, &s, "--repo", repo)
	// The schema's names, as the README documents them.
	for _, key := range []string{`"repository"`, `"system_identifier"`, `"timelines"`, `"recovery_window"`, `"continuous"`, `"ranges"`, `"gaps"`, `"wal"`, `"last_24h"`, `"segments_per_hour"`, `"backups"`, `"newest_backup"`, `"newest_drill"`, `"newest_ok_drill"`} {
		if !strings.Contains(out, key) {
			t.Errorf("info --json lacks %s:\n%s", key, out)
		}
	}
	if s.SystemID != "7712050215942653825" || s.WALSegmentSize != 16<<20 || s.Compression != "lz4" {
		t.Errorf("identity: %+v", s)
	}
	if s.Backups != (info.Counts{Done: 2, WaitingForWALs: 1}) {
		t.Errorf("backups: %+v, want 2 DONE and 1 waiting", s.Backups)
	}
	if s.NewestBackup == nil || s.NewestBackup.ID != "20261122T020000Z" {
		t.Errorf("newest backup: %+v, want 20261122T020000Z (the newest DONE)", s.NewestBackup)
	}
	if s.NewestDrill == nil || s.NewestDrill.OK || s.NewestDrill.Error == "" || s.NewestOKDrill != nil {
		t.Errorf("drills: %+v / %+v, want the failed one and no OK one", s.NewestDrill, s.NewestOKDrill)
	}
	if s.WAL.Segments != 11 || s.WAL.Last24h.Segments != 11 || s.WAL.NewestWAL != "00000002000000000000000C" || s.WAL.NewestArchivedAt == nil {
		t.Errorf("WAL: %+v, want 11 segments, all in the last 24h, newest 00000002000000000000000C", s.WAL)
	}
	if len(s.Timelines) != 2 {
		t.Fatalf("timelines: %+v, want 2", s.Timelines)
	}
	gap := info.Gap{Timeline: 1, First: "000000010000000000000005", Last: "000000010000000000000006", Count: 2}
	for _, tc := range []struct {
		tl        info.Timeline
		tli       uint32
		parent    uint32
		end, endL string
	}{
		{s.Timelines[0], 1, 0, "00000001000000000000000A", "0/B000000"},
		{s.Timelines[1], 2, 1, "00000002000000000000000C", "0/D000000"},
	} {
		tl, w := tc.tl, tc.tl.RecoveryWindow
		if tl.Timeline != tc.tli || tl.Parent != tc.parent || w == nil {
			t.Fatalf("timeline %d: %+v, want parent %d and a recovery window", tc.tli, tl, tc.parent)
		}
		if tc.parent != 0 && tl.SwitchLSN != "0/A000100" {
			t.Errorf("timeline %d: switch %s, want 0/A000100", tc.tli, tl.SwitchLSN)
		}
		// From the oldest DONE backup's end; to the newest WAL of the
		// timeline; broken by the gap on timeline 1 (timeline 2 reads it
		// before its branch point).
		if w.From.BackupID != "20261121T020000Z" || w.From.LSN != "0/3000100" || w.From.Time == nil {
			t.Errorf("timeline %d: window from %+v, want the end of backup 20261121T020000Z", tc.tli, w.From)
		}
		if w.To.WAL != tc.end || w.To.LSN != tc.endL || w.To.Time == nil || w.To.Timeline != tc.tli {
			t.Errorf("timeline %d: window to %+v, want the end of %s (%s)", tc.tli, w.To, tc.end, tc.endL)
		}
		if w.Continuous || len(w.Gaps) != 1 || w.Gaps[0] != gap {
			t.Errorf("timeline %d: continuous %v, gaps %+v; want broken by %+v", tc.tli, w.Continuous, w.Gaps, gap)
		}
		if len(w.Ranges) != 2 || w.Ranges[0].To.WAL != "000000010000000000000004" || w.Ranges[1].From.BackupID != "20261122T020000Z" {
			t.Errorf("timeline %d: ranges %+v, want backup A's end to segment 4, then backup B's end on", tc.tli, w.Ranges)
		}
	}

	// The text output names the gap and both ranges.
	stdout, stderr, code := runVerifyOrCheck(t, "info", "--repo", repo)
	for _, want := range []string{"BROKEN by 1 gap", "gap: 2 segment(s) missing on timeline 1, 000000010000000000000005 to 000000010000000000000006", "timeline 2 (from timeline 1 at 0/A000100)", "drill        newest", "FAILED"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("info: exit %d, output lacks %q:\n%s%s", code, want, stdout, stderr)
		}
	}
}

func TestInfoBackup(t *testing.T) {
	repo, _ := infoFixture(t)
	var bk info.Backup
	runInfoJSON(t, &bk, "--repo", repo, "LATEST")
	if bk.ID != "20261122T020000Z" || !bk.Latest || bk.Status != "DONE" || bk.Type != "full" {
		t.Fatalf("info LATEST: %+v, want backup 20261122T020000Z, DONE, latest, full", bk)
	}
	if bk.StartLSN != "0/7000028" || bk.StopLSN != "0/8000100" || bk.StartTimeline != 1 || bk.DurationSeconds != 90 {
		t.Errorf("LSNs and times: %+v", bk)
	}
	if bk.Parts != 5 || len(bk.Archives) != 2 || bk.Archives[0].Parts != 4 || bk.RawBytes != 4010 {
		t.Errorf("parts: %d in %+v, raw %d; want 4 parts of base.tar and 1 of the tablespace, 4010 bytes", bk.Parts, bk.Archives, bk.RawBytes)
	}
	if len(bk.Tablespaces) != 1 || bk.Tablespaces[0] != (info.Tablespace{OID: 16385, Location: "/srv/ts", Archive: "16385.tar"}) {
		t.Errorf("tablespaces: %+v", bk.Tablespaces)
	}
	if bk.Kept || len(bk.Marks) != 0 || bk.LockedUntil != nil {
		t.Errorf("keep and lock: %+v, want neither", bk)
	}
	if bk.WAL != (info.NeededWAL{From: "000000010000000000000007", To: "000000010000000000000008", Segments: 2, Complete: true}) {
		t.Errorf("WAL needed: %+v", bk.WAL)
	}

	runInfoJSON(t, &bk, "--repo", repo, "20261121T020000Z")
	if bk.Latest || !bk.Kept || len(bk.Marks) != 1 || !bk.Marks[0].Keep {
		t.Errorf("the kept backup: latest %v, kept %v, marks %+v", bk.Latest, bk.Kept, bk.Marks)
	}
	runInfoJSON(t, &bk, "--repo", repo, "20261123T020000Z")
	if bk.Status != "WAITING_FOR_WALS" || bk.WAL.Complete || bk.WAL.Missing != "00000002000000000000000D" || bk.StartTimeline != 2 {
		t.Errorf("the waiting backup: %+v, want WAL incomplete from 00000002000000000000000D", bk)
	}

	stdout, _, code := runVerifyOrCheck(t, "info", "--repo", repo, "LATEST")
	for _, want := range []string{"20261122T020000Z (full, DONE, LATEST)", "tablespace   16385 at /srv/ts", "WAL needed   000000010000000000000007 to 000000010000000000000008 (2 segments): all in the repository"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("info LATEST: exit %d, output lacks %q:\n%s", code, want, stdout)
		}
	}
	if _, stderr, code := runVerifyOrCheck(t, "info", "--repo", repo, "20991231T000000Z"); code != exitFailed || !strings.Contains(stderr, "does not exist") {
		t.Errorf("info of a missing backup: exit %d\n%s", code, stderr)
	}
}

// TestBackupListMarks: backup-list shows the stop time, LATEST and keep
// marks, in the table and in JSON.
func TestBackupListMarks(t *testing.T) {
	repo, _ := infoFixture(t)
	stdout, stderr, code := runVerifyOrCheck(t, "backup-list", "--repo", repo)
	if code != exitOK {
		t.Fatalf("backup-list: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "STOP (UTC)") || !strings.HasSuffix(lines[0], "MARKS") {
		t.Fatalf("backup-list:\n%s", stdout)
	}
	for i, want := range []string{"2026-11-21 02:01:30", "2026-11-22 02:01:30", "2026-11-23 02:01:30"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %q lacks the stop time %s", lines[i+1], want)
		}
	}
	for i, want := range []string{"keep", "LATEST", "-"} {
		if f := strings.Fields(lines[i+1]); f[len(f)-1] != want {
			t.Errorf("line %q: marks %q, want %q", lines[i+1], f[len(f)-1], want)
		}
	}
	stdout, _, _ = runVerifyOrCheck(t, "backup-list", "--json", "--repo", repo)
	var list []backupJSON
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list) != 3 {
		t.Fatalf("backup-list --json: %v\n%s", err, stdout)
	}
	if !list[0].Kept || list[0].Latest || !list[1].Latest || list[1].Kept || list[2].Latest || list[2].StopTime == nil {
		t.Errorf("backup-list --json marks: %+v", list)
	}
}

// TestInfoNewestIsStoredLast: info's newest WAL is the segment stored last,
// as the exporter's: timeline 1 going on after timeline 2 (a restored
// copy's, stopped) is not hidden behind timeline 2's last segment
// (explore22d F5).
func TestInfoNewestIsStoredLast(t *testing.T) {
	repo, b := infoFixture(t)
	time.Sleep(20 * time.Millisecond) // a later modification time than the fixture's
	s := wal.Segment{Timeline: 1, Seg: 11}
	repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.LZ4), repository.LZ4, []byte("wal"), nil)
	var got info.Summary
	runInfoJSON(t, &got, "--repo", repo)
	if got.WAL.NewestWAL != s.String() {
		t.Errorf("newest WAL %s, want %s, the segment stored last", got.WAL.NewestWAL, s)
	}
}

// TestBackupListHiddenManifest: a backup whose manifest a DELETE without a
// version id hid is listed as such, with repair, not as a plain
// INCOMPLETE one a DBA might delete by hand (explore25a F5).
func TestBackupListHiddenManifest(t *testing.T) {
	var out strings.Builder
	backups := []repository.BackupInfo{{ID: "20261208T010000Z", Status: repository.StatusIncomplete}}
	marks := backupMarks{kept: map[string]bool{}, chainErr: map[string]string{}, hidden: map[string]bool{"20261208T010000Z": true}}
	if err := printBackupTable(&out, backups, marks); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "INCOMPLETE (manifest hidden)") || !strings.Contains(out.String(), "walvault repair") {
		t.Errorf("backup-list of a backup with a hidden manifest:\n%s", out.String())
	}
}
