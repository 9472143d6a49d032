package repository

import (
	"context"
	"errors"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// LaterSegment is the key of a segment, or partial segment, archived
// after seg on seg's timeline ("" when there is none): a segment missing
// while the timeline went on is a gap, or a storage that did not show an
// object it holds, and must not end a recovery (a timeline's last segment
// before a switch is archived as a partial). One listing, from just past
// seg's own keys (its compressions, its partial, its backup history
// files, all "<seg>." and so before "<seg>/").
func LaterSegment(ctx context.Context, b storage.Backend, seg wal.FileName) (string, error) {
	prefix := TimelinePrefix(seg.Timeline)
	key, _, err := firstKey(ctx, b, prefix, prefix+seg.String()+"/", claimScan, func(key string) bool {
		f, _, ok := ParseWALKey(key)
		later := f.Segment.Log > seg.Segment.Log || f.Segment.Log == seg.Segment.Log && f.Segment.Seg > seg.Segment.Seg
		return ok && (f.Kind == wal.KindSegment || f.Kind == wal.KindPartial) && f.Timeline == seg.Timeline && later
	})
	return key, err
}

// TimelineHasWAL is the key of a segment or partial segment archived on
// timeline tli ("" when there is none): PostgreSQL archives a timeline's
// history file before its WAL, so a history file missing beside it is
// not absent.
func TimelineHasWAL(ctx context.Context, b storage.Backend, tli wal.TimelineID) (string, error) {
	key, _, err := firstKey(ctx, b, TimelinePrefix(tli), "", claimScan, func(key string) bool {
		f, _, ok := ParseWALKey(key)
		return ok && (f.Kind == wal.KindSegment || f.Kind == wal.KindPartial) && f.Timeline == tli
	})
	return key, err
}

// FirstMissingWAL lists the WAL stored between start and stop on the
// timelines from start's to stop's and returns the first segment of the
// range stored on none of them, as backup-list's DONE wants
// (WALIndex.CoveredAcross); ok is true when every one is stored. One
// listing per timeline, from just before start's keys to just past
// stop's.
func FirstMissingWAL(ctx context.Context, b storage.Backend, segSize uint32, start, stop wal.Segment) (missing wal.Segment, ok bool, err error) {
	x, err := NewWALIndex(segSize)
	if err != nil {
		return wal.Segment{}, false, err
	}
	errPast := errors.New("past the range")
	for tli := start.Timeline; tli <= stop.Timeline; tli++ {
		prefix, after := keysFrom(tli, start)
		last := prefix + wal.Segment{Timeline: tli, Log: stop.Log, Seg: stop.Seg}.String() + "/"
		err := storage.ListAfter(ctx, b, prefix, after, func(oi storage.ObjectInfo) error {
			if oi.Key > last {
				return errPast
			}
			f, _, ok := parseWALObject(oi.Key, segSize)
			switch {
			case !ok:
			case f.Kind == wal.KindSegment:
				x.AddSegment(f.Segment)
			case f.Kind == wal.KindPartial:
				x.AddPartial(f.Segment)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPast) {
			return wal.Segment{}, false, err
		}
	}
	covered, first, _ := x.CoveredAcross(start, stop)
	return first, covered, nil
}

// LastWritten is when the repository last received WAL of timeline tli
// from segment from on (a segment or backup history file under its
// folder), or its history file: zero when there is none. One listing
// of the timeline's folder from from to its end: as long as the WAL since
// from.
func LastWritten(ctx context.Context, b storage.Backend, tli wal.TimelineID, from wal.Segment) (time.Time, error) {
	var last time.Time
	if tli > 1 {
		info, err := b.Stat(ctx, historyKey(tli))
		switch {
		case err == nil:
			last = info.ModTime
		case !errors.Is(err, storage.ErrNotFound):
			return time.Time{}, err
		}
	}
	prefix, after := keysFrom(tli, from)
	err := storage.ListAfter(ctx, b, prefix, after, func(oi storage.ObjectInfo) error {
		// A .partial on a timeline is written by the server promoted
		// from it (its copy of the segment it left), not by one going
		// on with it.
		if f, _, ok := ParseWALKey(oi.Key); ok && f.Kind != wal.KindPartial && oi.ModTime.After(last) {
			last = oi.ModTime
		}
		return nil
	})
	return last, err
}

// keysFrom is the folder of timeline tli and the key to list after to
// start at the keys of its segment numbered as from: from's name with its
// last digit one lower.
func keysFrom(tli wal.TimelineID, from wal.Segment) (prefix, after string) {
	prefix = TimelinePrefix(tli)
	first := wal.Segment{Timeline: tli, Log: from.Log, Seg: from.Seg}.String()
	return prefix, prefix + first[:len(first)-1] + string(first[len(first)-1]-1)
}
