package wal

import (
	"fmt"
	"strings"
)

// Kind is the kind of file behind a name PostgreSQL passes to
// archive_command (%f) or restore_command (%f).
type Kind int

const (
	// KindSegment: a WAL segment, "000000010000000000000001".
	KindSegment Kind = iota + 1
	// KindPartial: a segment PostgreSQL did not fill, archived at the end
	// of archive recovery or written by pg_receivewal,
	// "000000010000000000000001.partial". Its header follows the same rules
	// as a full segment's.
	KindPartial
	// KindBackupHistory: the backup history file a base backup leaves,
	// "000000010000000000000001.00000028.backup" (segment, then the backup's
	// start offset within it).
	KindBackupHistory
	// KindTimelineHistory: a timeline history file, "00000002.history".
	KindTimelineHistory
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "WAL segment"
	case KindPartial:
		return "partial WAL segment"
	case KindBackupHistory:
		return "backup history file"
	case KindTimelineHistory:
		return "timeline history file"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// FileName is a classified WAL file name.
type FileName struct {
	Kind Kind
	// Timeline is the file's timeline: the segment's for the segment kinds,
	// the history file's own for KindTimelineHistory.
	Timeline TimelineID
	// Segment is the segment the name is built on (KindSegment, KindPartial,
	// KindBackupHistory); zero for KindTimelineHistory.
	Segment Segment
	// Offset is, for KindBackupHistory, where in Segment the backup
	// started; the LSN is Segment.StartLSN(size) + Offset.
	Offset uint32
}

// String returns the file name, so that Classify(f.String()) == f.
func (f FileName) String() string {
	switch f.Kind {
	case KindSegment:
		return f.Segment.String()
	case KindPartial:
		return f.Segment.String() + ".partial"
	case KindBackupHistory:
		return fmt.Sprintf("%s.%08X.backup", f.Segment, f.Offset)
	case KindTimelineHistory:
		return fmt.Sprintf("%08X.history", uint32(f.Timeline))
	}
	return ""
}

const (
	partialSuffix = ".partial"
	backupSuffix  = ".backup"
	historySuffix = ".history"
)

// Classify tells which kind of WAL file name is: a segment, a partial
// segment, a backup history file or a timeline history file, exactly as
// PostgreSQL writes them (upper-case hex, timeline not 0). Anything else,
// including a path, is an error that wraps ErrNotWALName and says what is
// wrong.
func Classify(name string) (FileName, error) {
	f, reason := classify(name)
	if reason != "" {
		return FileName{}, &nameError{what: "WAL file name", name: name, reason: reason}
	}
	return f, nil
}

func classify(name string) (FileName, string) {
	switch {
	case name == "":
		return FileName{}, "empty"
	case strings.ContainsAny(name, `/\`):
		return FileName{}, "contains a path separator; pass the file's base name (%f), not its path"
	}
	switch n := len(name); {
	case n == 24:
		seg, reason := parseSegment(name)
		return FileName{Kind: KindSegment, Timeline: seg.Timeline, Segment: seg}, reason
	case n == 24+len(partialSuffix) && strings.HasSuffix(name, partialSuffix):
		seg, reason := parseSegment(name[:24])
		return FileName{Kind: KindPartial, Timeline: seg.Timeline, Segment: seg}, reason
	case n == 24+1+8+len(backupSuffix) && name[24] == '.' && strings.HasSuffix(name, backupSuffix):
		seg, reason := parseSegment(name[:24])
		if reason != "" {
			return FileName{}, reason
		}
		off, reason := parseHex8(name, 25)
		if reason != "" {
			return FileName{}, reason
		}
		return FileName{Kind: KindBackupHistory, Timeline: seg.Timeline, Segment: seg, Offset: off}, ""
	case n == 8+len(historySuffix) && strings.HasSuffix(name, historySuffix):
		tli, reason := parseHex8(name, 0)
		if reason != "" {
			return FileName{}, reason
		}
		if tli == 0 {
			return FileName{}, "timeline 0 is not valid (timelines start at 1)"
		}
		return FileName{Kind: KindTimelineHistory, Timeline: TimelineID(tli)}, ""
	}
	return FileName{}, "want a segment (24 hex digits), a partial segment (segment + \".partial\"), " +
		"a backup history file (segment + \".\" + 8 hex digits + \".backup\") or a timeline history file (8 hex digits + \".history\")"
}
