package repository

import (
	"context"
	"errors"

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
		prefix := TimelinePrefix(tli)
		first := wal.Segment{Timeline: tli, Log: start.Log, Seg: start.Seg}.String()
		last := prefix + wal.Segment{Timeline: tli, Log: stop.Log, Seg: stop.Seg}.String() + "/"
		// Just before first's keys: its last digit one lower.
		after := prefix + first[:len(first)-1] + string(first[len(first)-1]-1)
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
