package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Repository areas, the values of the area label.
const (
	areaWAL     = "wal"
	areaBackups = "backups"
	areaDrills  = "drills"
	areaOther   = "other"
)

// snapshot is what one scan learnt.
type snapshot struct {
	at       time.Time
	identity *repository.Identity // nil: nothing was ever archived

	bytes, objects map[string]int64 // by area

	segments       int64 // archived full segments
	newestSegment  string
	newestPushedAt time.Time // zero when unknown
	// continuity: known when the identity was readable.
	continuityKnown bool
	continuityOK    bool
	// latestOK: no gap from the newest DONE backup's start on (check's
	// WAL continuity): that backup restores to the latest archived WAL.
	latestOK        bool
	latestKnown     bool
	missingSegments uint64 // in gaps a backup's recovery would cross
	overrunSegments uint64 // archived on a timeline past a child's branch point

	backups  map[repository.BackupStatus]int
	lastDone *repository.BackupManifest

	lastDrill, lastOKDrill *drill.Record
}

func (s *snapshot) totalObjects() int64 {
	var n int64
	for _, v := range s.objects {
		n += v
	}
	return n
}

// cache keeps what is immutable in a repository between scans: backup
// manifests and timeline history files (repository.Cache), drill records,
// the newest segment's push time. Entries whose keys a scan no longer sees
// are dropped.
type cache struct {
	repo     *repository.Cache
	records  map[string]drill.Record
	pushedAt map[string]time.Time
}

func newCache() *cache {
	return &cache{
		repo:     repository.NewCache(),
		records:  map[string]drill.Record{},
		pushedAt: map[string]time.Time{},
	}
}

// scan reads the repository through one repository.Inventory (one listing)
// and folds it into a snapshot. Backup statuses are the inventory's, judged
// from the listing rather than with one request per segment.
func (e *Exporter) scan(ctx context.Context) (*snapshot, error) {
	b := e.b
	s := &snapshot{
		bytes:   map[string]int64{areaWAL: 0, areaBackups: 0, areaDrills: 0, areaOther: 0},
		objects: map[string]int64{areaWAL: 0, areaBackups: 0, areaDrills: 0, areaOther: 0},
		backups: map[repository.BackupStatus]int{repository.StatusDone: 0, repository.StatusWaitingForWALs: 0, repository.StatusIncomplete: 0, repository.StatusDamaged: 0},
	}
	c := e.cache
	next := newCache()
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Histories: true, Cache: c.repo})
	if err != nil {
		return nil, err
	}
	next.repo = c.repo
	switch {
	case inv.Identity != nil && inv.IdentityErr != nil:
		return nil, fmt.Errorf("%s in %s: %w", repository.IdentityKey, b.Location(), inv.IdentityErr)
	case inv.IdentityErr != nil:
		return nil, fmt.Errorf("read %s from %s: %w", repository.IdentityKey, b.Location(), inv.IdentityErr)
	case inv.Identity == nil && inv.LostIdentity() != "":
		// Not an empty repository: the scan would show no WAL and every
		// backup waiting for it.
		return nil, errors.New(inv.LostIdentity())
	}
	s.identity = inv.Identity

	for top, u := range inv.Usage {
		area := areaOther
		switch top {
		case repository.WALPrefix:
			area = areaWAL
		case repository.BackupsPrefix:
			area = areaBackups
		case repository.DrillsPrefix:
			area = areaDrills
		}
		s.bytes[area] += u.Bytes
		s.objects[area] += u.Objects
	}
	s.segments = inv.Segments

	var starts []wal.Segment
	chainInfo := inv.ChainInfo()
	for _, bk := range inv.Backups {
		switch {
		case !bk.HasManifest:
			s.backups[repository.StatusIncomplete]++
			continue
		case errors.Is(bk.ManifestErr, storage.ErrNotFound):
			continue // deleted since the listing
		case repository.IsManifestDamaged(bk.ManifestErr):
			// Counted, so an alert can say so; the others still count.
			s.backups[repository.StatusDamaged]++
			continue
		case bk.ManifestErr != nil:
			return nil, bk.ManifestErr
		}
		if bk.WALErr == nil {
			start, _ := wal.ParseSegmentName(bk.Manifest.StartWAL) // parsed by BackupStatusOf
			starts = append(starts, start)
		}
		status := bk.Status()
		s.backups[status]++
		if _, err := repository.Chain(chainInfo, bk.ID); status == repository.StatusDone && err == nil {
			// Backups come in id (time) order; an incremental whose
			// chain is broken cannot be restored, so it is no newest
			// backup for the age alert (explore25d F2).
			s.lastDone = bk.Manifest
		}
	}

	if inv.WAL != nil {
		cont := inv.WAL.Continuity(starts)
		s.continuityKnown = true
		// An encrypted history file the exporter cannot read without the
		// identity (cont.UnreadableHistory) is no fault: its timeline's
		// gaps still count (Continuity takes them as needed).
		s.continuityOK = len(cont.MissingHistory) == 0 && len(cont.BadHistory) == 0
		for _, g := range cont.Gaps {
			if g.Needed {
				s.continuityOK = false
				s.missingSegments += g.Count
			}
		}
		for _, o := range inv.WAL.Overruns() {
			s.overrunSegments += o.Beyond
		}
		if s.lastDone != nil {
			if start, err := wal.ParseSegmentName(s.lastDone.StartWAL); err == nil {
				latest := inv.WAL.Continuity([]wal.Segment{start})
				s.latestKnown = true
				s.latestOK = len(latest.MissingHistory) == 0 && len(latest.BadHistory) == 0
				for _, g := range latest.Gaps {
					s.latestOK = s.latestOK && !g.Needed
				}
			}
		}
	}

	// The segment stored last, on whatever timeline: a higher timeline's
	// newest segment may be one that stopped (a restored copy's).
	if n := inv.LastStoredSegment; n != nil {
		newestKey := n.Key
		s.newestSegment = n.File.String()
		at, ok := c.pushedAt[newestKey]
		if !ok {
			info, err := b.Stat(ctx, newestKey)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("stat %s: %w", newestKey, err)
			}
			if err == nil {
				at = info.ModTime
				if t, perr := time.Parse(time.RFC3339Nano, info.Metadata[repository.MetaPushedAt]); perr == nil {
					at = t
				}
			}
		}
		if !at.IsZero() {
			next.pushedAt[newestKey] = at
		}
		s.newestPushedAt = at
	}

	s.lastDrill, s.lastOKDrill, err = drill.LatestOf(ctx, inv.DrillRecords, func(key string) (drill.Record, error) {
		if r, ok := c.records[key]; ok {
			next.records[key] = r
			return r, nil
		}
		r, err := drill.ReadRecord(ctx, b, key)
		if err == nil {
			next.records[key] = r
		}
		return r, err
	})
	if err != nil {
		return nil, err
	}
	e.cache = next
	s.at = e.now()
	return s, nil
}
