package repository

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// MetaHistory is a timeline history file's entries in its object's
// metadata: each ancestor timeline (decimal) and the LSN it ended at,
// oldest first, "1:0/3010710,2:0/5000000" (the reasons are left out).
// An encrypted history file's content needs the identity, but verify,
// check, info, the exporter and retention follow timelines without it;
// the ids and switch points reveal nothing of the data.
//
// When the whole list does not fit (S3 limits an object's user metadata
// to 2 KB), only the last entry is kept, after "...,": the parent and the
// switch point are all continuity needs (WALIndex.Continuity), and the
// rest is the parent's own history file, archived with the same metadata.
const MetaHistory = "timeline-history"

// historyMetaElided stands for the entries left out of MetaHistory.
const historyMetaElided = "..."

// maxUserMetadata is S3's limit on an object's user metadata: the bytes
// of every key and value. Keys are counted with their "x-amz-meta-"
// prefix, more than AWS counts, so no server refuses the object.
const maxUserMetadata = 2048

// metaKeyOverhead is the "x-amz-meta-" prefix of each key on the wire.
const metaKeyOverhead = len("x-amz-meta-")

// DescribeHistory records entries, the parsed content of a timeline
// history file, in meta (MetaHistory), in what room the rest of meta
// leaves. Call it once meta holds everything else. With no room even for
// the last entry it records nothing, and readers treat the object as one
// written before MetaHistory existed.
func DescribeHistory(meta map[string]string, entries []wal.HistoryEntry) {
	delete(meta, MetaHistory)
	if len(entries) == 0 {
		return
	}
	room := maxUserMetadata - storage.ReservedMetadataBytes - metaKeyOverhead - len(MetaHistory)
	for k, v := range meta {
		room -= metaKeyOverhead + len(k) + len(v)
	}
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = historyMetaEntry(e)
	}
	full := strings.Join(parts, ",")
	last := historyMetaElided + "," + parts[len(parts)-1]
	switch {
	case len(full) <= room:
		meta[MetaHistory] = full
	case len(last) <= room:
		meta[MetaHistory] = last
	}
}

func historyMetaEntry(e wal.HistoryEntry) string {
	return strconv.FormatUint(uint64(e.Timeline), 10) + ":" + e.SwitchPoint.String()
}

// errNoHistoryMeta: the object has no MetaHistory (written before it
// existed, or without room for it).
var errNoHistoryMeta = errors.New("no timeline history in the metadata")

// ParseHistoryMeta reads MetaHistory from an object's metadata. complete
// is false when only the last entry was kept; the entries carry no reason.
// An object without it gives errNoHistoryMeta.
func ParseHistoryMeta(meta map[string]string) (entries []wal.HistoryEntry, complete bool, err error) {
	v, ok := meta[MetaHistory]
	if !ok {
		return nil, false, errNoHistoryMeta
	}
	parts := strings.Split(v, ",")
	complete = true
	if parts[0] == historyMetaElided {
		if len(parts) != 2 {
			return nil, false, fmt.Errorf("%s metadata %q: want one entry after %q", MetaHistory, v, historyMetaElided)
		}
		parts, complete = parts[1:], false
	}
	for _, p := range parts {
		tli, lsn, found := strings.Cut(p, ":")
		n, err := strconv.ParseUint(tli, 10, 32)
		if !found || err != nil || n == 0 {
			return nil, false, fmt.Errorf("%s metadata %q: %q is not a timeline and a switch point", MetaHistory, v, p)
		}
		sw, err := wal.ParseLSN(lsn)
		if err != nil {
			return nil, false, fmt.Errorf("%s metadata %q: %q: %w", MetaHistory, v, p, err)
		}
		if k := len(entries); k > 0 && wal.TimelineID(n) <= entries[k-1].Timeline {
			return nil, false, fmt.Errorf("%s metadata %q: timelines must be increasing", MetaHistory, v)
		}
		entries = append(entries, wal.HistoryEntry{Timeline: wal.TimelineID(n), SwitchPoint: sw})
	}
	return entries, complete, nil
}
