package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/verify"
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
	missingSegments uint64 // in gaps a backup's recovery would cross

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
// manifests, timeline history files, drill records, the newest segment's
// push time. Entries whose keys a scan no longer sees are dropped.
type cache struct {
	manifests map[string]repository.BackupManifest
	histories map[string]history
	records   map[string]drill.Record
	pushedAt  map[string]time.Time
}

type history struct {
	entries []wal.HistoryEntry
	err     error
}

func newCache() *cache {
	return &cache{
		manifests: map[string]repository.BackupManifest{},
		histories: map[string]history{},
		records:   map[string]drill.Record{},
		pushedAt:  map[string]time.Time{},
	}
}

// maxHistorySize bounds a timeline history file read into memory.
const maxHistorySize = 1 << 20

// folder is one backup folder seen in the listing.
type folder struct {
	id       string
	complete bool
}

// scan lists the repository once and folds it into a snapshot. Backup
// statuses follow repository.ListBackups (DONE when every segment from the
// backup's start to its stop is archived), judged from the listing rather
// than with one request per segment.
func (e *Exporter) scan(ctx context.Context) (*snapshot, error) {
	b := e.b
	s := &snapshot{
		bytes:   map[string]int64{areaWAL: 0, areaBackups: 0, areaDrills: 0, areaOther: 0},
		objects: map[string]int64{areaWAL: 0, areaBackups: 0, areaDrills: 0, areaOther: 0},
		backups: map[repository.BackupStatus]int{repository.StatusDone: 0, repository.StatusWaitingForWALs: 0, repository.StatusIncomplete: 0},
	}
	var idx *verify.WALIndex
	id, err := repository.LoadIdentity(ctx, b)
	switch {
	case err == nil:
		s.identity = &id
		if idx, err = verify.NewWALIndex(id.WALSegmentSize); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", repository.IdentityKey, b.Location(), err)
		}
	case errors.Is(err, storage.ErrNotFound):
	default:
		return nil, fmt.Errorf("read %s from %s: %w", repository.IdentityKey, b.Location(), err)
	}

	var (
		folders    []folder
		histories  []string
		records    []string
		newestKey  string
		newestFile wal.FileName
	)
	err = b.List(ctx, "", func(oi storage.ObjectInfo) error {
		key := oi.Key
		area := areaOther
		switch {
		case strings.HasPrefix(key, repository.WALPrefix):
			area = areaWAL
			f, ok := parseWALKey(key)
			if !ok || idx == nil {
				break
			}
			switch f.Kind {
			case wal.KindSegment:
				if f.Segment.Validate(id.WALSegmentSize) != nil {
					break
				}
				idx.AddSegment(f.Segment)
				s.segments++
				if newestKey == "" || newer(f.Segment, newestFile.Segment) {
					newestKey, newestFile = key, f
				}
			case wal.KindPartial:
				idx.AddPartial(f.Segment)
			case wal.KindTimelineHistory:
				histories = append(histories, key)
			}
		case strings.HasPrefix(key, repository.BackupsPrefix):
			area = areaBackups
			fid, name, ok := strings.Cut(strings.TrimPrefix(key, repository.BackupsPrefix), "/")
			if !ok || repository.ValidateBackupID(fid) != nil {
				break
			}
			if n := len(folders); n == 0 || folders[n-1].id != fid {
				folders = append(folders, folder{id: fid})
			}
			if name == repository.BackupManifestName {
				folders[len(folders)-1].complete = true
			}
		case strings.HasPrefix(key, drill.RecordsPrefix):
			area = areaDrills
			if _, ok := repository.ParseDrillRecordKey(key); ok {
				records = append(records, key)
			}
		}
		s.bytes[area] += oi.Size
		s.objects[area]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b.Location(), err)
	}
	c := e.cache
	next := newCache()

	if idx != nil {
		for _, key := range histories {
			h, ok := c.histories[key]
			if !ok {
				h, err = readHistory(ctx, b, key)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
			}
			next.histories[key] = h
			f, _ := parseWALKey(key)
			idx.SetHistory(f.Timeline, h.entries, h.err)
		}
	}

	var starts []wal.Segment
	for _, f := range folders {
		if !f.complete {
			s.backups[repository.StatusIncomplete]++
			continue
		}
		m, ok := c.manifests[f.id]
		if !ok {
			m, err = repository.LoadBackupManifest(ctx, b, f.id)
			if errors.Is(err, storage.ErrNotFound) {
				continue // deleted since the listing
			}
			if err != nil {
				return nil, err
			}
		}
		next.manifests[f.id] = m
		status := repository.StatusWaitingForWALs
		start, err1 := wal.ParseSegmentName(m.StartWAL)
		stop, err2 := wal.ParseSegmentName(m.StopWAL)
		if err1 == nil && err2 == nil && idx != nil {
			starts = append(starts, start)
			if ok, _, _ := idx.Covered(start, stop); ok {
				status = repository.StatusDone
			}
		}
		s.backups[status]++
		if status == repository.StatusDone {
			mm := m
			s.lastDone = &mm // folders come in id (time) order
		}
	}

	if idx != nil {
		cont := idx.Continuity(starts)
		s.continuityKnown = true
		s.continuityOK = len(cont.MissingHistory) == 0 && len(cont.BadHistory) == 0
		for _, g := range cont.Gaps {
			if g.Needed {
				s.continuityOK = false
				s.missingSegments += g.Count
			}
		}
	}

	if newestKey != "" {
		s.newestSegment = newestFile.String()
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

	s.lastDrill, s.lastOKDrill, err = drill.LatestOf(ctx, records, func(key string) (drill.Record, error) {
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

// newer orders segments by timeline, then position.
func newer(a, b wal.Segment) bool {
	if a.Timeline != b.Timeline {
		return a.Timeline > b.Timeline
	}
	if a.Log != b.Log {
		return a.Log > b.Log
	}
	return a.Seg > b.Seg
}

// parseWALKey classifies a key under wal/ the way repository.WALKey makes
// them; ok is false for anything else.
func parseWALKey(key string) (wal.FileName, bool) {
	rest, ok := strings.CutPrefix(key, repository.WALPrefix)
	if !ok {
		return wal.FileName{}, false
	}
	name := rest
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		name = rest[i+1:]
	}
	for _, c := range repository.Compressions {
		base, ok := strings.CutSuffix(name, c.Ext())
		if !ok {
			continue
		}
		f, err := wal.Classify(base)
		if err == nil && repository.WALKey(f, c) == key {
			return f, true
		}
	}
	return wal.FileName{}, false
}

func readHistory(ctx context.Context, b storage.Backend, key string) (history, error) {
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return history{}, err
	}
	defer rc.Close()
	// Read first, parse second: a broken download is an error of this
	// scan, not a bad history file to remember.
	data, err := io.ReadAll(io.LimitReader(rc, maxHistorySize))
	if err != nil {
		return history{}, fmt.Errorf("read %s: %w", key, err)
	}
	entries, perr := wal.ParseHistory(bytes.NewReader(data))
	return history{entries: entries, err: perr}, nil
}
