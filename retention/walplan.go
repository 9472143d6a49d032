package retention

import (
	"fmt"
	"sort"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// planWAL decides which WAL objects go once the plan's backups are gone.
//
// Every kept backup needs WAL only from its own start LSN onward: on its
// own timeline, and on the timelines that branch from it, all of which
// start at higher positions. So a segment (or .partial, or .backup file)
// may go only if it lies wholly before the start of the oldest kept
// backup: segment start + segment size <= that start LSN, whatever its
// timeline. Timeline history files are never deleted (tiny, and needed to
// follow any branch). Nothing is deleted when no DONE backup is kept, and
// WAL archived since a possibly running backup-push started is kept too.
func planWAL(inv Inventory, plan Plan) (WALPlan, error) {
	w := WALPlan{SegmentSize: inv.SegmentSize, Lock: inv.Lock}
	var candidates []WALFile
	for _, oi := range inv.WAL {
		name, _, ok := repository.ParseWALKey(oi.Key)
		switch {
		case !ok:
			w.Other = append(w.Other, oi.Key)
			continue
		case name.Kind == wal.KindTimelineHistory:
			w.History++
			w.Kept++
			w.KeptBytes += oi.Size
			continue
		}
		start, ok := segmentStart(name.Segment, inv.SegmentSize)
		if !ok {
			w.Other = append(w.Other, oi.Key)
			continue
		}
		candidates = append(candidates, WALFile{Key: oi.Key, Name: name, Start: start, Size: oi.Size, ModTime: oi.ModTime})
	}
	keepAll := func(reason string) (WALPlan, error) {
		for _, f := range candidates {
			w.Kept++
			w.KeptBytes += f.Size
		}
		w.Reason = reason
		return w, nil
	}

	keptDone := false
	oldest := -1
	var cutoff wal.LSN
	newest := newestDone(plan.Backups)
	for i, bp := range plan.Backups {
		if bp.Delete {
			continue
		}
		if bp.Status == repository.StatusDone {
			keptDone = true
		}
		if bp.Manifest != nil {
			start, err := wal.ParseLSN(bp.Manifest.StartLSN)
			if err != nil {
				return WALPlan{}, fmt.Errorf("backup %s: start_lsn: %w (no WAL is deleted while a kept backup's start is unknown)", bp.ID, err)
			}
			if oldest < 0 || start < cutoff {
				oldest, cutoff = i, start
			}
			continue
		}
		if bp.Status == repository.StatusIncomplete && !bp.Marked && newest >= 0 &&
			mayBeRunning(inv, bp, plan.Backups[newest].ID, plan.Now) != "" {
			started, err := time.Parse(repository.BackupIDLayout, bp.ID)
			if err != nil {
				return WALPlan{}, fmt.Errorf("backup %s: %w", bp.ID, err)
			}
			if held := started.Add(-RunningPushMargin); w.HeldSince.IsZero() || held.Before(w.HeldSince) {
				w.HeldSince = held
			}
		}
	}
	switch {
	case !keptDone:
		w.HeldSince = time.Time{}
		return keepAll("no DONE backup is kept, so no WAL is deleted")
	case inv.SegmentSize == 0:
		w.HeldSince = time.Time{}
		return keepAll("the repository has no walvault.json, so its segment size is unknown and no WAL is deleted")
	}
	w.Cutoff, w.CutoffBackup = cutoff, plan.Backups[oldest].ID
	w.Reason = fmt.Sprintf("no kept backup needs WAL wholly before %s, the start of backup %s (the oldest kept backup)", cutoff, w.CutoffBackup)
	if !w.HeldSince.IsZero() {
		w.Reason += fmt.Sprintf("; WAL archived since %s is kept for a backup-push that may be running", stamp(w.HeldSince))
	}
	for _, f := range candidates {
		if deletable(f, cutoff, inv.SegmentSize, w.HeldSince) {
			w.Delete = append(w.Delete, f)
			w.Bytes += f.Size
			continue
		}
		w.Kept++
		w.KeptBytes += f.Size
	}
	sortOldestFirst(w.Delete)
	return w, nil
}

// deletable: f lies wholly before cutoff and was not archived while a
// backup-push that may still be running was under way.
func deletable(f WALFile, cutoff wal.LSN, segSize uint32, heldSince time.Time) bool {
	if uint64(f.Start)+uint64(segSize) > uint64(cutoff) {
		return false
	}
	if !heldSince.IsZero() && (f.ModTime.IsZero() || !f.ModTime.Before(heldSince)) {
		return false
	}
	return true
}

// sortOldestFirst orders WAL by position, then timeline, then key.
func sortOldestFirst(fs []WALFile) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.Name.Timeline != b.Name.Timeline {
			return a.Name.Timeline < b.Name.Timeline
		}
		return a.Key < b.Key
	})
}

// segmentStart is where seg starts, 0 when the segment size is unknown;
// false for a segment number the segment size cannot have.
func segmentStart(seg wal.Segment, segmentSize uint32) (wal.LSN, bool) {
	if segmentSize == 0 {
		return 0, true
	}
	start, err := seg.StartLSN(segmentSize)
	return start, err == nil
}
