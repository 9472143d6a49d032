package retention

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// now is the time every plan test runs at.
var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// old is when the fixtures' WAL was archived, long before now.
var old = now.Add(-60 * 24 * time.Hour)

const segSize = 16 << 20

// id is the id of a backup started on day d of November 2026 at 00:00.
func id(d int) string { return fmt.Sprintf("202611%02dT000000Z", d) }

// bk is a backup started on day d, on timeline tli, whose start LSN lies
// 0x28 bytes into 16 MiB segment startSeg; it stops an hour later, two
// segments on. status INCOMPLETE gives no manifest.
func bk(status repository.BackupStatus, d int, tli uint32, startSeg uint32) repository.BackupInfo {
	bi := repository.BackupInfo{ID: id(d), Status: status}
	if status == repository.StatusIncomplete {
		return bi
	}
	start := time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC)
	bi.Manifest = &repository.BackupManifest{
		FormatVersion: 1, ID: bi.ID, WALSegmentSize: segSize,
		StartTimeline: tli, StopTimeline: tli,
		StartLSN:  wal.LSN(uint64(startSeg)*segSize + 0x28).String(),
		StopLSN:   wal.LSN(uint64(startSeg+2)*segSize + 0x100).String(),
		StartWAL:  wal.Segment{Timeline: wal.TimelineID(tli), Seg: startSeg}.String(),
		StopWAL:   wal.Segment{Timeline: wal.TimelineID(tli), Seg: startSeg + 2}.String(),
		StartTime: start, StopTime: start.Add(time.Hour),
	}
	if status == repository.StatusWaitingForWALs {
		bi.MissingWAL = bi.Manifest.StopWAL
	}
	return bi
}

func done(d int, tli, startSeg uint32) repository.BackupInfo {
	return bk(repository.StatusDone, d, tli, startSeg)
}
func waiting(d int, tli, startSeg uint32) repository.BackupInfo {
	return bk(repository.StatusWaitingForWALs, d, tli, startSeg)
}
func incomplete(d int) repository.BackupInfo { return bk(repository.StatusIncomplete, d, 0, 0) }

// segName and segObj: segment n (16 MiB) on timeline tli, archived at old.
func segName(tli, n uint32) string {
	return wal.Segment{Timeline: wal.TimelineID(tli), Seg: n}.String()
}
func segObj(tli, n uint32) storage.ObjectInfo {
	return walObj(tli, segName(tli, n)+".lz4")
}
func walObj(tli uint32, name string) storage.ObjectInfo {
	return storage.ObjectInfo{Key: fmt.Sprintf("wal/%08X/%s", tli, name), Size: 1000, ModTime: old}
}
func segRange(tli, from, to uint32) []storage.ObjectInfo {
	var out []storage.ObjectInfo
	for n := from; n <= to; n++ {
		out = append(out, segObj(tli, n))
	}
	return out
}
func names(tli, from, to uint32) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, segName(tli, n))
	}
	return out
}

func inventory(backups []repository.BackupInfo, marks map[string]bool, walObjs []storage.ObjectInfo) Inventory {
	inv := Inventory{Backups: backups, Objects: map[string][]storage.ObjectInfo{}, Marks: map[string][]repository.Mark{},
		WAL: walObjs, SegmentSize: segSize}
	for _, bi := range backups {
		prefix := repository.BackupPrefix(bi.ID)
		inv.Objects[bi.ID] = []storage.ObjectInfo{
			{Key: prefix + "backup_manifest", Size: 10, ModTime: old},
			{Key: prefix + "base.tar.00000.lz4", Size: 100, ModTime: old},
		}
		if bi.Manifest != nil {
			inv.Objects[bi.ID] = append(inv.Objects[bi.ID], storage.ObjectInfo{Key: repository.BackupManifestKey(bi.ID), Size: 5, ModTime: old})
		}
	}
	for bid, keep := range marks {
		m := repository.Mark{BackupID: bid, At: old, Keep: keep, Key: repository.MarkKey(bid, old, keep)}
		inv.Marks[bid] = []repository.Mark{m}
		inv.Objects[bid] = append(inv.Objects[bid], storage.ObjectInfo{Key: m.Key, Size: 1, ModTime: old})
	}
	return inv
}

func TestPlanPolicy(t *testing.T) {
	four := []repository.BackupInfo{done(1, 1, 2), done(8, 1, 4), done(15, 1, 6), done(22, 1, 8)}
	tlWAL := append(append(segRange(1, 1, 8),
		walObj(1, segName(1, 5)+".partial.lz4"),
		walObj(1, segName(1, 4)+".00000028.backup"),
		walObj(2, segName(2, 7)+".00000028.backup"),
		storage.ObjectInfo{Key: "wal/00000002.history", Size: 40, ModTime: old},
		storage.ObjectInfo{Key: "wal/notes.txt", Size: 1, ModTime: old},
		storage.ObjectInfo{Key: "wal/00000001/junk", Size: 1, ModTime: old},
		storage.ObjectInfo{Key: "wal/00000002/" + segName(1, 1) + ".lz4", Size: 1, ModTime: old}, // wrong folder
	), segRange(2, 5, 10)...)
	// A timeline switch: backups A and B on timeline 1, then a
	// point-in-time restore branched timeline 2 in segment 5 (between B's
	// start and C's); C and D on timeline 2. The old primary went on
	// writing timeline 1 up to segment 8.
	branched := []repository.BackupInfo{done(1, 1, 2), done(8, 1, 4), done(15, 2, 7), done(22, 2, 9)}
	recentWAL := segRange(1, 1, 12)
	recentWAL[4].ModTime = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC) // segment 5: archived after Y began (minus the margin)

	tests := []struct {
		name       string
		backups    []repository.BackupInfo
		marks      map[string]bool
		wal        []storage.ObjectInfo
		objects    map[string][]storage.ObjectInfo // replaces a backup's objects
		policy     string
		wantDelete []string
		wantWAL    []string // deleted, in order
		wantReason map[string]string
		wantWALWhy string
	}{
		{
			name: "redundancy 2", backups: four, wal: segRange(1, 1, 12), policy: "REDUNDANCY 2",
			wantDelete: []string{id(1), id(8)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(1): "beyond REDUNDANCY 2", id(15): "2nd newest", id(22): "within REDUNDANCY 2"},
			wantWALWhy: "0/6000028, the start of backup " + id(15),
		},
		{
			name: "redundancy beyond the count keeps all, deletes WAL before the oldest", backups: four, wal: segRange(1, 1, 12), policy: "REDUNDANCY 9",
			wantWAL: names(1, 1, 1),
		},
		{
			name: "redundancy 1", backups: four, wal: segRange(1, 1, 12), policy: "REDUNDANCY 1",
			wantDelete: []string{id(1), id(8), id(15)}, wantWAL: names(1, 1, 7),
		},
		{
			name: "keep mark holds an old backup and its WAL", backups: four, marks: map[string]bool{id(1): true}, wal: segRange(1, 1, 12), policy: "REDUNDANCY 2",
			wantDelete: []string{id(8)}, wantWAL: names(1, 1, 1),
			wantReason: map[string]string{id(1): "marked keep"},
		},
		{
			name: "a marked backup does not count toward redundancy", backups: four, marks: map[string]bool{id(22): true}, wal: segRange(1, 1, 12), policy: "REDUNDANCY 1",
			wantDelete: []string{id(1), id(8)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(22): "marked keep", id(15): "within REDUNDANCY 1"},
		},
		{
			name: "newest mark says no-keep", backups: four, marks: map[string]bool{id(1): false}, wal: segRange(1, 1, 12), policy: "REDUNDANCY 2",
			wantDelete: []string{id(1), id(8)}, wantWAL: names(1, 1, 5),
		},
		{
			name: "window: inside plus the newest before", backups: four, wal: segRange(1, 1, 12), policy: "RECOVERY WINDOW OF 5 DAYS",
			wantDelete: []string{id(1), id(8)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(15): "newest backup that stopped before the window", id(22): "stopped 2026-11-22 01:00:00 UTC", id(8): "covers the window's start"},
		},
		{
			name: "window covering every backup", backups: four, wal: segRange(1, 1, 12), policy: "RECOVERY WINDOW OF 30 DAYS",
			wantWAL: names(1, 1, 1),
		},
		{
			name: "window with no backup inside keeps the newest", backups: four, wal: segRange(1, 1, 12), policy: "RECOVERY WINDOW OF 1 DAY",
			wantDelete: []string{id(1), id(8), id(15)}, wantWAL: names(1, 1, 7),
			wantReason: map[string]string{id(22): "newest backup that stopped before"},
		},
		{
			name:    "waiting for WALs newer than the oldest kept DONE stays",
			backups: []repository.BackupInfo{done(1, 1, 2), waiting(8, 1, 4), done(15, 1, 6), done(22, 1, 8), waiting(24, 1, 10)},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 2",
			wantDelete: []string{id(1), id(8)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(8): "older than every kept DONE backup", id(24): "may still become DONE"},
		},
		{
			name:    "waiting for WALs after a kept old backup stays, with its WAL",
			backups: []repository.BackupInfo{done(1, 1, 2), waiting(8, 1, 4), done(15, 1, 6), done(22, 1, 8)},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 3",
			wantWAL: names(1, 1, 1),
		},
		{
			name:    "waiting for WALs that starts before the oldest kept DONE holds its WAL",
			backups: []repository.BackupInfo{done(1, 1, 2), done(15, 1, 8), waiting(16, 1, 6), done(22, 1, 10)},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 2",
			wantDelete: []string{id(1)}, wantWAL: names(1, 1, 5),
		},
		{
			name:    "incomplete: older ones go, a newer one may be running and holds recent WAL",
			backups: []repository.BackupInfo{done(1, 1, 2), incomplete(5), done(15, 1, 6), {ID: "20261125T100000Z", Status: repository.StatusIncomplete}},
			wal:     recentWAL, policy: "REDUNDANCY 1",
			wantDelete: []string{id(1), id(5)}, wantWAL: names(1, 1, 4),
			wantReason: map[string]string{id(5): "interrupted backup-push", "20261125T100000Z": "may be running"},
			wantWALWhy: "archived since 2026-11-25 09:00:00 UTC is kept",
		},
		{
			name:    "incomplete written to recently stays",
			backups: []repository.BackupInfo{done(1, 1, 2), incomplete(5), done(15, 1, 6)},
			objects: map[string][]storage.ObjectInfo{id(5): {{Key: "backups/" + id(5) + "/base.tar.00000.lz4", ModTime: now.Add(-10 * time.Minute)}}},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 1",
			wantDelete: []string{id(1)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(5): "written to within the last 1h0m0s"},
			wantWALWhy: "archived since 2026-11-04 23:00:00 UTC is kept",
		},
		{
			// A backup-push before its first part is stored: only the
			// start record shows it (the overlapping nightly backups of
			// explore22b F1).
			name:    "incomplete holding only its start record stays, with the WAL since it began",
			backups: []repository.BackupInfo{done(1, 1, 2), incomplete(5), done(15, 1, 6)},
			objects: map[string][]storage.ObjectInfo{id(5): {{Key: repository.BackupStartedKey(id(5)), ModTime: now.Add(-2 * time.Minute)}}},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 1",
			wantDelete: []string{id(1)}, wantWAL: names(1, 1, 5),
			wantReason: map[string]string{id(5): "written to within the last 1h0m0s"},
			wantWALWhy: "archived since 2026-11-04 23:00:00 UTC is kept",
		},
		{
			name:    "no DONE backup: nothing at all",
			backups: []repository.BackupInfo{waiting(1, 1, 2), incomplete(5)},
			wal:     segRange(1, 1, 12), policy: "REDUNDANCY 1",
			wantReason: map[string]string{id(1): "no backup is DONE yet"},
			wantWALWhy: "no DONE backup is kept",
		},
		{
			name: "second timeline branching after the oldest kept backup's start", backups: branched, wal: tlWAL, policy: "REDUNDANCY 3",
			wantDelete: []string{id(1)}, wantWAL: names(1, 1, 3),
		},
		{
			name: "second timeline branching before the oldest kept backup's start", backups: branched, wal: tlWAL, policy: "REDUNDANCY 2",
			wantDelete: []string{id(1), id(8)},
			wantWAL: []string{
				segName(1, 1), segName(1, 2), segName(1, 3),
				segName(1, 4) + ".00000028.backup", segName(1, 4),
				segName(1, 5), segName(1, 5) + ".partial", segName(2, 5),
				segName(1, 6), segName(2, 6),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory(tc.backups, tc.marks, tc.wal)
			for k, v := range tc.objects {
				inv.Objects[k] = v
			}
			p, err := ParsePolicy(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := PlanPolicy(inv, p, now)
			if err != nil {
				t.Fatal(err)
			}
			var gotDelete []string
			for _, bp := range plan.Backups {
				if bp.Delete {
					gotDelete = append(gotDelete, bp.ID)
				}
				if bp.Reason == "" {
					t.Errorf("backup %s: no reason given", bp.ID)
				}
				if want, ok := tc.wantReason[bp.ID]; ok && !strings.Contains(bp.Reason, want) {
					t.Errorf("backup %s: reason %q, want it to contain %q", bp.ID, bp.Reason, want)
				}
			}
			if !reflect.DeepEqual(gotDelete, tc.wantDelete) {
				t.Errorf("deleted backups: got %v, want %v", gotDelete, tc.wantDelete)
			}
			var gotWAL []string
			for _, f := range plan.WAL.Delete {
				gotWAL = append(gotWAL, f.Name.String())
			}
			if !reflect.DeepEqual(gotWAL, tc.wantWAL) {
				t.Errorf("deleted WAL:\ngot  %v\nwant %v", gotWAL, tc.wantWAL)
			}
			if !strings.Contains(plan.WAL.Reason, tc.wantWALWhy) {
				t.Errorf("WAL reason %q, want it to contain %q", plan.WAL.Reason, tc.wantWALWhy)
			}
			if got, want := plan.WAL.Kept+len(plan.WAL.Delete)+len(plan.WAL.Other), len(tc.wal); got != want {
				t.Errorf("WAL accounted for: kept %d + deleted %d + other %d, want %d objects", plan.WAL.Kept, len(plan.WAL.Delete), len(plan.WAL.Other), want)
			}
		})
	}
}

func TestPlanNeverDeletesHistoryOrOthers(t *testing.T) {
	backups := []repository.BackupInfo{done(1, 1, 2), done(8, 3, 200)}
	walObjs := []storage.ObjectInfo{
		{Key: "wal/00000002.history"}, {Key: "wal/00000003.history"},
		{Key: "wal/README"}, {Key: "wal/00000001/" + segName(1, 1)}, // uncompressed segment: walvault's (compression none)
		{Key: "wal/00000001/" + segName(1, 1) + ".00000028.backup.lz4"}, // backup history files are never compressed
	}
	plan, err := PlanPolicy(inventory(backups, nil, walObjs), Policy{Redundancy, 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.WAL.Delete) != 1 || plan.WAL.Delete[0].Key != "wal/00000001/"+segName(1, 1) {
		t.Fatalf("WAL deleted: %+v; want only the uncompressed segment", plan.WAL.Delete)
	}
	if plan.WAL.History != 2 || len(plan.WAL.Other) != 2 {
		t.Fatalf("history %d, other %v; want 2 history files kept and 2 foreign keys left alone", plan.WAL.History, plan.WAL.Other)
	}
}

func TestPlanBackupObjectOrder(t *testing.T) {
	inv := inventory([]repository.BackupInfo{done(1, 1, 2), done(8, 1, 4)}, map[string]bool{id(1): false}, nil)
	plan, err := PlanPolicy(inv, Policy{Redundancy, 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, oi := range plan.Backups[0].Objects {
		keys = append(keys, strings.TrimPrefix(oi.Key, repository.BackupPrefix(id(1))))
	}
	want := []string{"walvault-backup.json", "backup_manifest", "base.tar.00000.lz4", "marks/" + strings.TrimPrefix(repository.MarkKey(id(1), old, false), repository.MarksPrefix(id(1)))}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("deletion order %v, want %v", keys, want)
	}
	if plan.Backups[0].Bytes != 116 {
		t.Fatalf("bytes %d, want 116", plan.Backups[0].Bytes)
	}
}

func TestPlanBackup(t *testing.T) {
	backups := []repository.BackupInfo{done(1, 1, 2), waiting(5, 1, 3), done(8, 1, 4), incomplete(10), done(15, 1, 6), done(22, 1, 8)}
	inv := inventory(backups, map[string]bool{id(15): true}, segRange(1, 1, 12))
	inv.Objects[id(10)] = []storage.ObjectInfo{{Key: "backups/" + id(10) + "/base.tar.00000.lz4", ModTime: now.Add(-time.Minute)}}
	tests := []struct {
		name    string
		id      string
		wantErr error
		errText string
		wantWAL []string
	}{
		{"the oldest: WAL up to the next backup's start goes", id(1), nil, "", names(1, 1, 2)},
		{"a middle one: no WAL", id(8), nil, "", names(1, 1, 1)},
		{"a WAITING_FOR_WALS one", id(5), nil, "", names(1, 1, 1)},
		{"the newest DONE", id(22), ErrRefused, "newest DONE", nil},
		{"marked keep", id(15), ErrRefused, "backup-mark " + id(15) + " --no-keep", nil},
		{"incomplete, being written", id(10), ErrRefused, "may be running", nil},
		{"unknown", id(3), repository.ErrNoBackup, "does not exist", nil},
		{"malformed", "../../x", nil, "invalid backup id", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanBackup(inv, tc.id, now)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("PlanBackup(%s): err %v, want %v containing %q", tc.id, err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			del := plan.DeletedBackups()
			if len(del) != 1 || del[0].ID != tc.id {
				t.Fatalf("deleted %+v, want only %s", del, tc.id)
			}
			var gotWAL []string
			for _, f := range plan.WAL.Delete {
				gotWAL = append(gotWAL, f.Name.String())
			}
			if !reflect.DeepEqual(gotWAL, tc.wantWAL) {
				t.Fatalf("WAL: got %v, want %v", gotWAL, tc.wantWAL)
			}
		})
	}
}

func TestPlanBadManifestLSN(t *testing.T) {
	b := done(1, 1, 2)
	b.Manifest.StartLSN = "garbage"
	_, err := PlanPolicy(inventory([]repository.BackupInfo{b}, nil, segRange(1, 1, 3)), Policy{Redundancy, 1}, now)
	if err == nil || !strings.Contains(err.Error(), "start_lsn") {
		t.Fatalf("a kept backup with an unreadable start LSN: err %v, want one naming start_lsn", err)
	}
}

// TestPlanPolicyRefusesBackupsFromTheFuture: a backup stopped more than a
// few minutes after now (a clock that was ahead) would be kept as the
// newest, the newer ones deleted: a policy delete refuses, naming it.
func TestPlanPolicyRefusesBackupsFromTheFuture(t *testing.T) {
	ahead := done(30, 1, 2) // 30 November: five days after now
	backups := []repository.BackupInfo{done(8, 1, 4), done(15, 1, 6), ahead}
	_, err := PlanPolicy(inventory(backups, nil, segRange(1, 1, 8)), Policy{Redundancy, 1}, now)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), ahead.ID) || !strings.Contains(err.Error(), "NTP") {
		t.Fatalf("a policy delete with a backup from the future: %v; want a refusal naming it and the clocks", err)
	}
	// It may be deleted by id, while another DONE backup stays.
	if plan, err := PlanBackup(inventory(backups, nil, segRange(1, 1, 8)), ahead.ID, now); err != nil || !plan.Backups[2].Delete {
		t.Fatalf("delete --backup of the backup from the future: %v", err)
	}
	// A clock that was behind: newer by time, older by WAL position.
	behind := done(22, 1, 4)
	_, err = PlanPolicy(inventory([]repository.BackupInfo{done(15, 1, 6), behind}, nil, segRange(1, 1, 8)), Policy{Redundancy, 1}, now)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "older by its WAL position") {
		t.Fatalf("a policy delete with backups out of WAL order: %v; want a refusal", err)
	}
	// A few minutes ahead is two hosts' clocks: no refusal.
	near := done(25, 1, 8)
	near.Manifest.StopTime = now.Add(2 * time.Minute)
	if _, err := PlanPolicy(inventory([]repository.BackupInfo{done(8, 1, 4), near}, nil, segRange(1, 1, 12)), Policy{Redundancy, 1}, now); err != nil {
		t.Fatalf("a backup two minutes ahead: %v", err)
	}
}
