package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/retention"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// retentionRepo makes a file repository with three DONE backups (starting
// in segments 2, 4 and 6) and segments 1 to 8, and points WALVAULT_REPO at
// it.
func retentionRepo(t *testing.T) (string, []string) {
	t.Helper()
	b, dir := filetest.New(t)
	const segSize = 16 << 20
	repotest.Init(t, b, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", time.Now()))
	for n := uint32(1); n <= 8; n++ {
		repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: n}}, repository.LZ4), []byte("x"))
	}
	var ids []string
	for i, start := range []uint32{2, 4, 6} {
		t0 := time.Date(2026, 11, 1+i, 2, 0, 0, 0, time.UTC)
		id := repository.NewBackupID(t0)
		seg := wal.Segment{Timeline: 1, Seg: start}
		m := repository.BackupManifest{
			FormatVersion: 1, ID: id, SystemID: "7", WALSegmentSize: segSize,
			StartTimeline: 1, StopTimeline: 1,
			StartLSN: wal.LSN(uint64(start)*segSize + 0x28).String(), StopLSN: wal.LSN(uint64(start)*segSize + 0x100).String(),
			StartWAL: seg.String(), StopWAL: seg.String(), StartTime: t0, StopTime: t0.Add(time.Minute),
		}
		repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("x")}}})
		ids = append(ids, id)
	}
	t.Setenv("WALVAULT_REPO", "file://"+dir)
	t.Setenv("WALVAULT_RETAIN", "") // restored after the test
	os.Unsetenv("WALVAULT_RETAIN")
	return dir, ids
}

// snapshot lists every file under dir.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var files []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return strings.Join(files, "\n")
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"walvault"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDeleteBadInput(t *testing.T) {
	dir, ids := retentionRepo(t)
	before := snapshot(t, dir)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no policy", []string{"delete", "--confirm"}, exitUsage, "needs a retention policy"},
		{"malformed", []string{"delete", "--retain", "KEEP 2", "--confirm"}, exitUsage, `"RECOVERY WINDOW OF n DAYS"`},
		{"redundancy 0", []string{"delete", "--retain", "REDUNDANCY 0", "--confirm"}, exitUsage, "at least 1"},
		{"negative window", []string{"delete", "--retain", "RECOVERY WINDOW OF -2 DAYS", "--confirm"}, exitUsage, "at least 1"},
		{"unknown backup", []string{"delete", "--backup", "20200101T000000Z", "--confirm"}, exitFailed, "does not exist"},
		{"malformed backup id", []string{"delete", "--backup", "../wal", "--confirm"}, exitUsage, "invalid backup id"},
		{"newest backup", []string{"delete", "--backup", ids[2], "--confirm"}, exitFailed, "newest DONE"},
		{"argument", []string{"delete", "REDUNDANCY 2"}, exitUsage, "no arguments"},
		{"mark without flag", []string{"backup-mark", ids[0]}, exitUsage, "--keep"},
		{"mark both", []string{"backup-mark", ids[0], "--keep", "--no-keep"}, exitUsage, "exactly one"},
		{"mark unknown", []string{"backup-mark", "20200101T000000Z", "--keep"}, exitFailed, "does not exist"},
		{"mark no id", []string{"backup-mark", "--keep"}, exitUsage, "one backup id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("%v: exit %d, stderr %q; want exit %d and a message containing %q\nstdout: %s", tc.args, code, errOut, tc.code, tc.want, out)
			}
		})
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("bad input changed the repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestDeleteDryRunThenConfirm(t *testing.T) {
	dir, ids := retentionRepo(t)
	before := snapshot(t, dir)
	code, out, errOut := runCmd(t, "delete", "--retain", "redundancy 1")
	out = squeeze(out)
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"delete " + ids[0], "delete " + ids[1], "keep " + ids[2], "dry run",
		"WAL: delete 5 files, 000000010000000000000001 .. 000000010000000000000005", "--confirm"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if snapshot(t, dir) != before {
		t.Fatal("a dry run changed the repository")
	}
	code, out, _ = runCmd(t, "delete", "--retain", "REDUNDANCY 1", "--json")
	var plan deleteJSON
	if code != exitOK || json.Unmarshal([]byte(out), &plan) != nil || !plan.DryRun || len(plan.Backups) != 3 ||
		plan.Backups[0].Action != "delete" || plan.Backups[2].Action != "keep" || plan.WAL.Delete != 5 || plan.WAL.CutoffBackup != ids[2] {
		t.Fatalf("--json dry run: exit %d\n%s", code, out)
	}

	// Keep the oldest; the retention from the config file deletes only the
	// middle one, and the WAL before the oldest.
	if code, out, errOut := runCmd(t, "backup-mark", ids[0], "--keep"); code != exitOK || !strings.Contains(out, "marked keep") {
		t.Fatalf("backup-mark: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, "backup-mark", ids[0], "--keep"); code != exitOK || !strings.Contains(out, "already marked keep") {
		t.Fatalf("backup-mark again: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCmd(t, "delete", "--backup", ids[0]); code != exitFailed || !strings.Contains(errOut, "--no-keep") {
		t.Fatalf("delete --backup of a kept backup: exit %d\n%s", code, errOut)
	}
	cfgFile := filepath.Join(t.TempDir(), "walvault.yaml")
	if err := os.WriteFile(cfgFile, []byte("retain: REDUNDANCY 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, "delete", "--config", cfgFile, "--confirm")
	out = squeeze(out)
	if code != exitOK {
		t.Fatalf("delete --confirm: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"keep " + ids[0], "marked keep", "deleted backup " + ids[1] + ": 3 objects", "deleted WAL: 1 file, 000000010000000000000001 .. 000000010000000000000001"} {
		if !strings.Contains(out, want) {
			t.Errorf("delete output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "backups", ids[1], repository.BackupManifestName)); !os.IsNotExist(err) {
		t.Fatalf("manifest of the deleted backup: %v", err)
	}

	// Withdraw the mark: the oldest goes, with the WAL up to the newest.
	if code, out, _ := runCmd(t, "backup-mark", ids[0], "--no-keep"); code != exitOK || !strings.Contains(out, "no longer marked keep") {
		t.Fatalf("backup-mark --no-keep: exit %d\n%s", code, out)
	}
	code, out, errOut = runCmd(t, "delete", "--backup", ids[0], "--confirm", "--json")
	var done deleteJSON
	if code != exitOK || json.Unmarshal([]byte(out), &done) != nil || done.DryRun || done.Backups[0].Outcome != "deleted" || done.WAL.Deleted == nil || *done.WAL.Deleted != 4 {
		t.Fatalf("delete --backup --confirm --json: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCmd(t, "delete", "--retain", "RECOVERY WINDOW OF 1 DAY")
	if code != exitOK || !strings.Contains(out, "nothing to delete") {
		t.Fatalf("nothing left to delete: exit %d\n%s", code, out)
	}
}

// squeeze collapses runs of spaces, so checks do not depend on column widths.
func squeeze(s string) string {
	for strings.Contains(s, "  ") {
		s = strings.ReplaceAll(s, "  ", " ")
	}
	return s
}

// TestDeletePartials: the dry run lists wal-receive's partials that go
// (superseded, or before the oldest kept backup) and those that stay, in
// text and JSON; --confirm deletes exactly those.
func TestDeletePartials(t *testing.T) {
	dir, _ := retentionRepo(t) // segments 1-8; REDUNDANCY 1 keeps from segment 6
	b := filetest.At(t, dir)
	const segSize = 16 << 20
	key := func(tli wal.TimelineID, n uint32, off uint64) string {
		return repository.PartialKey(wal.Segment{Timeline: tli, Seg: n}, wal.LSN(uint64(n)*segSize+off), repository.LZ4)
	}
	superseded, old, open1, open2 := key(1, 7, 0x100), key(2, 3, 0x100), key(1, 9, 0x100), key(1, 9, 0x200)
	for _, k := range []string{superseded, old, open1, open2} {
		repotest.Put(t, b, k, []byte("p"))
	}
	before := snapshot(t, dir)
	code, out, errOut := runCmd(t, "delete", "--retain", "REDUNDANCY 1")
	out = squeeze(out)
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"partials: delete 2 files, 000000020000000000000003 .. 000000010000000000000007, 2 B: 1 superseded (segment archived complete), 1 wholly before 0/6000028 (the WAL cutoff)",
		"partials: keep 2 files of 1 segment not archived complete",
		"--confirm to delete 2 backups, 5 WAL files and 2 partials",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if snapshot(t, dir) != before {
		t.Fatal("a dry run changed the repository")
	}
	code, out, _ = runCmd(t, "delete", "--retain", "REDUNDANCY 1", "--json")
	var plan deleteJSON
	if code != exitOK || json.Unmarshal([]byte(out), &plan) != nil || plan.Partials.Delete != 2 || plan.Partials.Superseded != 1 ||
		plan.Partials.Kept != 2 || strings.Join(plan.Partials.Keys, ",") != old+","+superseded || plan.Partials.Deleted != nil {
		t.Fatalf("--json dry run: exit %d\n%s", code, out)
	}

	code, out, errOut = runCmd(t, "delete", "--retain", "REDUNDANCY 1", "--confirm")
	if code != exitOK || !strings.Contains(out, "deleted partials: 2 files (1 superseded), 000000020000000000000003 .. 000000010000000000000007") {
		t.Fatalf("delete --confirm: exit %d\n%s%s", code, out, errOut)
	}
	var left []string
	if err := b.List(context.Background(), repository.PartialPrefix, func(oi storage.ObjectInfo) error {
		left = append(left, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != open1+","+open2 {
		t.Fatalf("partials left %v, want the open segment's two", left)
	}
	code, out, _ = runCmd(t, "delete", "--retain", "REDUNDANCY 1")
	if code != exitOK || !strings.Contains(out, "nothing to delete") || !strings.Contains(out, "partials: keep 2 files") {
		t.Fatalf("nothing left to delete: exit %d\n%s", code, out)
	}
}

// TestDeleteAbortsStaleUploads: a temp file a crash left, older than an
// hour, is named by the dry run and removed by --confirm; a younger one (a
// write that may be in progress) stays.
func TestDeleteAbortsStaleUploads(t *testing.T) {
	dir, ids := retentionRepo(t)
	old := filepath.Join(dir, "backups", ids[2], ".tmp-old")
	young := filepath.Join(dir, "backups", ids[2], ".tmp-young")
	for p, age := range map[string]time.Duration{old: 2 * time.Hour, young: time.Minute} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, time.Now().Add(-age), time.Now().Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCmd(t, "delete", "--retain", "REDUNDANCY 3")
	if code != 0 || !strings.Contains(out, "incomplete uploads: would abort 1 upload older than 1h0m0s") || !strings.Contains(out, "backups/"+ids[2]+"/.tmp-old") {
		t.Fatalf("dry run: exit %d\n%s%s\nwant the old temp file named as one to abort", code, out, errOut)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the dry run removed %s: %v", old, err)
	}
	code, out, errOut = runCmd(t, "delete", "--retain", "REDUNDANCY 3", "--confirm")
	if code != 0 || !strings.Contains(out, "aborted 1 incomplete upload") {
		t.Fatalf("--confirm: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("%s after delete --confirm: %v, want it removed", old, err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("%s (younger than an hour) after delete --confirm: %v, want it kept", young, err)
	}
}

// TestPrintPlanLockedBackup: a backup beyond the policy whose manifest is
// still locked is shown kept, not deleted, and the dry run's summary does
// not count it; the WAL it needs is said to stay.
func TestPrintPlanLockedBackup(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	plan := retention.Plan{
		Policy: "REDUNDANCY 1", Now: now,
		Backups: []retention.BackupPlan{
			{ID: "20261206T020000Z", Status: repository.StatusDone, Delete: true, Reason: "beyond REDUNDANCY 1", LockedUntil: now.Add(24 * time.Hour)},
			{ID: "20261207T020000Z", Status: repository.StatusDone, Reason: "within REDUNDANCY 1"},
		},
		WAL: retention.WALPlan{Delete: []retention.WALFile{{Name: waltest.FileName(t, "000000010000000000000001")}, {Name: waltest.FileName(t, "000000010000000000000002")}}, Reason: "before the oldest kept backup"},
	}
	var out bytes.Buffer
	printPlan(&out, plan, "s3://bucket/db1", true)
	got := out.String()
	for _, want := range []string{
		"keep  20261206T020000Z  DONE  beyond REDUNDANCY 1, but its manifest is locked until 2026-12-08 08:00:00 UTC, so it is kept",
		"the WAL the 1 locked backup kept above still needs is kept too",
		"to delete 0 backups and 2 WAL files",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "delete  20261206T020000Z") {
		t.Errorf("plan says it deletes the locked backup:\n%s", got)
	}
}

// TestBackupMarkLatest: LATEST names the newest DONE backup, as for
// restore: the one to keep before a risky change.
func TestBackupMarkLatest(t *testing.T) {
	_, ids := retentionRepo(t)
	code, out, errOut := runCmd(t, "backup-mark", "LATEST", "--keep")
	if code != exitOK || !strings.Contains(out, "backup "+ids[2]+" marked keep") {
		t.Fatalf("backup-mark LATEST --keep: exit %d, stdout %q, stderr %q; want %s marked", code, out, errOut, ids[2])
	}
	if code, out, _ = runCmd(t, "backup-mark", ids[2], "--keep"); code != exitOK || !strings.Contains(out, "already marked keep") {
		t.Fatalf("the same backup by id afterwards: exit %d, stdout %q; want it already marked", code, out)
	}
}

// TestDeleteEmptyLocation: a policy delete pointed at a location that
// holds no repository (a mistyped prefix) fails, so a retention job from
// cron does not stay green for ever (explore23d N1).
func TestDeleteEmptyLocation(t *testing.T) {
	_, dir := filetest.New(t)
	t.Setenv("WALVAULT_REPO", "file://"+dir)
	code, out, errOut := runCmd(t, "delete", "--retain", "REDUNDANCY 1", "--confirm")
	if code != exitFailed || !strings.Contains(errOut, "nothing was ever archived there; check the repository URL") {
		t.Fatalf("delete on an empty location: exit %d, stderr %q, stdout %q; want exit %d naming the URL", code, errOut, out, exitFailed)
	}
}
