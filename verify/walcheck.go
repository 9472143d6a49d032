package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// WALContinuity lists wal/ once and checks continuity from starts (the
// start segments of the backups that matter; nil: from each timeline's
// oldest archived segment), following the timeline history files. It is
// the part of Run that `walvault check` reuses.
func WALContinuity(ctx context.Context, b storage.Backend, segSize uint32, starts []wal.Segment) (Continuity, error) {
	idx, err := NewWALIndex(segSize)
	if err != nil {
		return Continuity{}, err
	}
	var histories []string
	err = b.List(ctx, repository.WALPrefix, func(oi storage.ObjectInfo) error {
		o, ok := parseWALKey(oi.Key, segSize)
		if !ok {
			return nil
		}
		switch o.file.Kind {
		case wal.KindSegment:
			idx.AddSegment(o.file.Segment)
		case wal.KindPartial:
			idx.AddPartial(o.file.Segment)
		case wal.KindTimelineHistory:
			histories = append(histories, oi.Key)
		}
		return nil
	})
	if err != nil {
		return Continuity{}, fmt.Errorf("list %s in %s: %w", repository.WALPrefix, b.Location(), err)
	}
	for _, key := range histories {
		rc, _, err := b.Get(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return Continuity{}, fmt.Errorf("read %s from %s: %w", key, b.Location(), err)
		}
		entries, perr := wal.ParseHistory(io.LimitReader(rc, maxHistorySize))
		rc.Close()
		o, _ := parseWALKey(key, segSize)
		idx.SetHistory(o.file.Timeline, entries, perr)
	}
	return idx.Continuity(starts), nil
}

// Summary says in one line what is missing, for a check line: the needed
// gaps (with their names), missing and bad history files; "" when there is
// nothing to say.
func (c Continuity) Summary(segSize uint32) string {
	var parts []string
	for _, g := range c.Gaps {
		if g.Needed {
			parts = append(parts, fmt.Sprintf("timeline %d lacks %s", g.Timeline, g.Describe(segSize)))
		}
	}
	for _, tli := range c.MissingHistory {
		parts = append(parts, fmt.Sprintf("no history file %08X.history", uint32(tli)))
	}
	bad := make([]wal.TimelineID, 0, len(c.BadHistory))
	for tli := range c.BadHistory {
		bad = append(bad, tli)
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i] < bad[j] })
	for _, tli := range bad {
		parts = append(parts, fmt.Sprintf("%08X.history is invalid (%v)", uint32(tli), c.BadHistory[tli]))
	}
	return strings.Join(parts, "; ")
}
