package repository

import (
	"context"

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
