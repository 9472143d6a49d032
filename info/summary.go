package info

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Summary is `walvault info` without a backup id; the JSON field names are
// the documented, stable schema.
type Summary struct {
	Repository     string     `json:"repository"`
	SystemID       string     `json:"system_identifier"`
	WALSegmentSize uint32     `json:"wal_segment_size"`
	Compression    string     `json:"compression"`
	GeneratedAt    time.Time  `json:"generated_at"`
	Timelines      []Timeline `json:"timelines"`
	WAL            WALSummary `json:"wal"`
	Backups        Counts     `json:"backups"`
	// Damaged are the DAMAGED backups, with what is wrong with each
	// manifest; never null.
	Damaged []DamagedBackup `json:"damaged_backups"`
	// NewestBackup is the newest DONE backup (nil: none).
	NewestBackup *BackupBrief `json:"newest_backup"`
	// NewestDrill is the newest drill record, NewestOKDrill the newest
	// successful one (nil: none).
	NewestDrill   *DrillBrief `json:"newest_drill"`
	NewestOKDrill *DrillBrief `json:"newest_ok_drill"`
	// HiddenObjects counts walvault's objects hidden behind delete
	// markers, looked for only where the WAL shows a gap without them:
	// restore reads through them, and walvault repair makes them
	// visible again.
	HiddenObjects int `json:"hidden_objects,omitempty"`
}

// Timeline is one timeline's archived WAL and recovery window.
type Timeline struct {
	Timeline uint32 `json:"timeline"`
	// Parent and SwitchLSN come from the timeline's history file.
	Parent    uint32 `json:"parent,omitempty"`
	SwitchLSN string `json:"switch_lsn,omitempty"`
	Segments  uint64 `json:"segments"`
	OldestWAL string `json:"oldest_wal,omitempty"`
	NewestWAL string `json:"newest_wal,omitempty"`
	// HistoryUnreadable says why the history file could not be read (it
	// needs the identity): then Parent and SwitchLSN are unknown, not
	// absent.
	HistoryUnreadable string `json:"history_unreadable,omitempty"`
	// RecoveryWindow is nil when no DONE backup leads to this timeline.
	RecoveryWindow *Window `json:"recovery_window"`
}

// WALSummary is the WAL archived and its rate.
type WALSummary struct {
	Segments    int64 `json:"segments"`
	StoredBytes int64 `json:"stored_bytes"`
	// NewestWAL is the segment stored last, on whatever timeline (a
	// higher timeline that stopped, such as a restored copy's, does not
	// hide the one going on), and NewestArchivedAt when it was stored.
	NewestWAL        string     `json:"newest_wal,omitempty"`
	NewestArchivedAt *time.Time `json:"newest_archived_at,omitempty"`
	// Last24h counts the segments archived in the 24 hours before
	// GeneratedAt; SegmentsPerHour and BytesPerHour are its hourly rate.
	Last24h         Tally   `json:"last_24h"`
	SegmentsPerHour float64 `json:"segments_per_hour"`
	BytesPerHour    float64 `json:"stored_bytes_per_hour"`
}

// Tally counts segments and their stored bytes.
type Tally struct {
	Segments    int64 `json:"segments"`
	StoredBytes int64 `json:"stored_bytes"`
}

// Counts are the backups by status.
type Counts struct {
	Done           int `json:"done"`
	WaitingForWALs int `json:"waiting_for_wals"`
	Incomplete     int `json:"incomplete"`
	Damaged        int `json:"damaged"`
}

// DamagedBackup is a backup whose manifest's content is unusable.
type DamagedBackup struct {
	ID     string `json:"id"`
	Damage string `json:"damage"`
}

// BackupBrief names a backup.
type BackupBrief struct {
	ID       string    `json:"id"`
	Status   string    `json:"status"`
	StopTime time.Time `json:"stop_time"`
	StopLSN  string    `json:"stop_lsn"`
	Timeline uint32    `json:"timeline"`
	RawBytes int64     `json:"raw_bytes"`
	Kept     bool      `json:"kept"`
}

// DrillBrief names a drill.
type DrillBrief struct {
	ID         string    `json:"id"`
	OK         bool      `json:"ok"`
	FinishedAt time.Time `json:"finished_at"`
	BackupID   string    `json:"backup_id,omitempty"`
	RTOSeconds float64   `json:"rto_seconds"`
	Error      string    `json:"error,omitempty"`
}

// Options tune Summarize and Describe.
type Options struct {
	// Now is the clock for GeneratedAt and the 24-hour rate; nil means
	// time.Now.
	Now func() time.Time
	// Identities decrypt timeline history files archived encrypted
	// without their branch point in metadata (decrypt-with).
	Identities *crypt.Identities
}

// rateWindow is what the WAL rate is measured over.
const rateWindow = 24 * time.Hour

// Summarize lists the repository once and says what a restore can reach.
func Summarize(ctx context.Context, b storage.Backend, opts Options) (Summary, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	load := repository.LoadOptions{Histories: true, WALObjects: true, Identities: opts.Identities}
	inv, err := repository.LoadInventory(ctx, b, load)
	if err != nil {
		return Summary{}, err
	}
	// A segment hidden behind a delete marker is no gap: restore reads
	// through it (explore25a F5). Its versions are listed only when the
	// listing shows a gap, to keep the common case one listing.
	if _, versioned := storage.AsVersioned(b); versioned && inv.WAL != nil && len(inv.WAL.Continuity(nil).Gaps) > 0 {
		load.Hidden = true
		if inv, err = repository.LoadInventory(ctx, b, load); err != nil {
			return Summary{}, err
		}
	}
	return summarize(ctx, b, inv, opts.Now().UTC())
}

func summarize(ctx context.Context, b storage.Backend, inv *repository.Inventory, now time.Time) (Summary, error) {
	s := Summary{Repository: inv.Location, GeneratedAt: now, Timelines: []Timeline{}, Damaged: []DamagedBackup{}, HiddenObjects: len(inv.Hidden)}
	if inv.Identity == nil || inv.WAL == nil {
		if inv.IdentityErr != nil {
			return Summary{}, fmt.Errorf("read %s of %s: %w", repository.IdentityKey, inv.Location, inv.IdentityErr)
		}
		if lost := inv.LostIdentity(); lost != "" {
			return Summary{}, errors.New(lost)
		}
		return Summary{}, fmt.Errorf("%s has no %s: no WAL has reached it yet (check archive_command, or run walvault backup-push, which waits for the first segment)", inv.Location, repository.IdentityKey)
	}
	id := inv.Identity
	s.SystemID, s.WALSegmentSize, s.Compression = id.SystemID, id.WALSegmentSize, string(id.Compression)
	sm := newSegmentMath(id.WALSegmentSize)

	catalog, err := inv.Catalog()
	if err != nil {
		return Summary{}, err
	}
	var done []*repository.BackupManifest
	var starts []wal.Segment
	for _, bi := range catalog {
		switch bi.Status {
		case repository.StatusDone:
			s.Backups.Done++
			done = append(done, bi.Manifest)
			if seg, err := wal.ParseSegmentName(bi.Manifest.StartWAL); err == nil {
				starts = append(starts, seg)
			}
		case repository.StatusWaitingForWALs:
			s.Backups.WaitingForWALs++
		case repository.StatusDamaged:
			s.Backups.Damaged++
			s.Damaged = append(s.Damaged, DamagedBackup{ID: bi.ID, Damage: bi.Damage.Error()})
		default:
			s.Backups.Incomplete++
		}
	}
	if n := len(done); n > 0 {
		s.NewestBackup = brief(inv, done[n-1], repository.StatusDone)
	}

	// The WAL objects: when each segment was archived, and the rate.
	archivedAt := map[wal.Segment]time.Time{}
	wanted := map[wal.Segment]bool{}
	since := now.Add(-rateWindow)
	for _, o := range inv.WALObjects {
		if o.File.Kind != wal.KindSegment || o.Hidden {
			continue
		}
		s.WAL.StoredBytes += o.Size
		if !o.ModTime.Before(since) {
			s.WAL.Last24h.Segments++
			s.WAL.Last24h.StoredBytes += o.Size
		}
	}
	s.WAL.Segments = inv.Segments
	s.WAL.SegmentsPerHour = float64(s.WAL.Last24h.Segments) / rateWindow.Hours()
	s.WAL.BytesPerHour = float64(s.WAL.Last24h.StoredBytes) / rateWindow.Hours()

	cont := inv.WAL.Continuity(starts)
	spans := map[wal.TimelineID]repository.TimelineSpan{}
	for _, t := range cont.Timelines {
		spans[t.Timeline] = t
	}
	// Windows first, noting which segments' archive times they need.
	windows := map[wal.TimelineID]*Window{}
	pending := func(seg wal.Segment) *time.Time {
		wanted[seg] = true
		return nil
	}
	for _, t := range cont.Timelines {
		if t.HasSegments {
			windows[t.Timeline] = walkWindow(t.Timeline, t.Newest, spans, inv.WAL, sm, done, pending)
		}
	}
	for _, o := range inv.WALObjects {
		if o.File.Kind == wal.KindSegment && wanted[o.File.Segment] {
			archivedAt[o.File.Segment] = o.ModTime.UTC()
		}
	}
	at := func(walName string) *time.Time {
		seg, err := wal.ParseSegmentName(walName)
		if err != nil {
			return nil
		}
		if t, ok := archivedAt[seg]; ok && !t.IsZero() {
			return &t
		}
		return nil
	}
	if n := inv.LastStoredSegment; n != nil {
		stored := n.ModTime.UTC()
		s.WAL.NewestWAL = n.File.Segment.String()
		if !stored.IsZero() {
			s.WAL.NewestArchivedAt = &stored
		}
	}
	for _, t := range cont.Timelines {
		tl := Timeline{Timeline: uint32(t.Timeline), Parent: uint32(t.Parent), Segments: t.Segments}
		if t.Parent != 0 {
			tl.SwitchLSN = t.SwitchPoint.String()
		}
		if why, ok := cont.UnreadableHistory[t.Timeline]; ok {
			tl.HistoryUnreadable = repository.UnreadableHistoryWhy(t.Timeline, why)
		}
		if t.HasSegments {
			tl.OldestWAL, tl.NewestWAL = t.Oldest.String(), t.Newest.String()
		}
		if w := windows[t.Timeline]; w != nil {
			for i := range w.Ranges {
				w.Ranges[i].To.Time = at(w.Ranges[i].To.WAL)
			}
			w.From, w.To = w.Ranges[0].From, w.Ranges[len(w.Ranges)-1].To
			tl.RecoveryWindow = w
		}
		s.Timelines = append(s.Timelines, tl)
	}

	last, lastOK, err := drill.LatestOf(ctx, inv.DrillRecords, func(key string) (drill.Record, error) { return drill.ReadRecord(ctx, b, key) })
	if err != nil {
		return Summary{}, fmt.Errorf("read the drill records: %w", err)
	}
	s.NewestDrill, s.NewestOKDrill = drillBrief(last), drillBrief(lastOK)
	return s, nil
}

func brief(inv *repository.Inventory, m *repository.BackupManifest, status repository.BackupStatus) *BackupBrief {
	kept := false
	if bk := inv.Backup(m.ID); bk != nil {
		kept = repository.Kept(bk.Marks)
	}
	return &BackupBrief{ID: m.ID, Status: string(status), StopTime: m.StopTime.UTC(), StopLSN: m.StopLSN, Timeline: m.StopTimeline, RawBytes: m.RawBytes, Kept: kept}
}

func drillBrief(r *drill.Record) *DrillBrief {
	if r == nil {
		return nil
	}
	return &DrillBrief{ID: r.ID, OK: r.OK, FinishedAt: r.FinishedAt.UTC(), BackupID: r.BackupID, RTOSeconds: r.RTOSeconds, Error: r.Error}
}
