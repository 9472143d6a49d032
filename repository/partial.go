package repository

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// PartialPrefix holds the partial segments wal-receive uploads for the
// segment it is still receiving. Each upload is a new, write-once object:
//
//	partial/TTTTTTTT/<segment>/<end LSN as 16 hex digits><compression ext>
//
// holding the segment's first (end - segment start) bytes. The newest
// partial of a segment is the one with the highest end LSN (the
// lexically last key). They are kept apart from wal/ so that nothing that
// reads the WAL archive (verify, retention, backup-list) takes them for
// archived segments.
const PartialPrefix = "partial/"

// MetaEndLSN is a partial's end LSN, as PostgreSQL prints it.
const MetaEndLSN = "end-lsn"

// PartialSegmentPrefix is the folder of one segment's partials.
func PartialSegmentPrefix(s wal.Segment) string {
	return fmt.Sprintf("%s%08X/%s/", PartialPrefix, uint32(s.Timeline), s)
}

// PartialKey is the key of the partial of segment s that ends at end.
func PartialKey(s wal.Segment, end wal.LSN, c Compression) string {
	return fmt.Sprintf("%s%016X%s", PartialSegmentPrefix(s), uint64(end), c.Ext())
}

// Partial is one stored partial segment.
type Partial struct {
	Key         string
	Segment     wal.Segment
	End         wal.LSN
	Compression Compression
}

// ParsePartialKey parses a key made by PartialKey.
func ParsePartialKey(key string) (Partial, bool) {
	rest, ok := strings.CutPrefix(key, PartialPrefix)
	if !ok {
		return Partial{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Partial{}, false
	}
	seg, err := wal.ParseSegmentName(parts[1])
	if err != nil || fmt.Sprintf("%08X", uint32(seg.Timeline)) != parts[0] {
		return Partial{}, false
	}
	name := parts[2]
	c := None
	for _, cand := range Compressions {
		if ext := cand.Ext(); ext != "" && strings.HasSuffix(name, ext) {
			c, name = cand, strings.TrimSuffix(name, ext)
			break
		}
	}
	if len(name) != 16 {
		return Partial{}, false
	}
	end, err := strconv.ParseUint(name, 16, 64)
	if err != nil || strings.ToUpper(name) != name {
		return Partial{}, false
	}
	return Partial{Key: key, Segment: seg, End: wal.LSN(end), Compression: c}, true
}

// ListPartials returns segment s's partials, oldest (lowest end) first.
func ListPartials(ctx context.Context, b storage.Backend, s wal.Segment) ([]Partial, error) {
	var out []Partial
	err := b.List(ctx, PartialSegmentPrefix(s), func(oi storage.ObjectInfo) error {
		if p, ok := ParsePartialKey(oi.Key); ok && p.Segment == s {
			out = append(out, p)
		}
		return nil
	})
	// Keys of one segment sort by end LSN (fixed-width hex), whatever
	// their compression suffix, except for equal ends: keep List's order.
	return out, err
}
