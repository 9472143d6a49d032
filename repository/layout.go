package repository

import (
	"crypto/sha256"
	"fmt"
	"strconv"

	"github.com/walvault/walvault/wal"
)

// WALPrefix is where every WAL object lives.
const WALPrefix = "wal/"

// DrillsPrefix holds the records of restore drills (package drill).
const DrillsPrefix = "drills/"

// TimelinePrefix is the folder of one timeline's segments.
func TimelinePrefix(tli wal.TimelineID) string {
	return fmt.Sprintf("%s%08X/", WALPrefix, uint32(tli))
}

// WALKey is the object key of a file PostgreSQL archives. Segments and
// partial segments are stored in compression c (its suffix is part of the
// key); history and backup history files are small text files and are
// stored as they are, so they can be read without walvault.
func WALKey(f wal.FileName, c Compression) string {
	switch f.Kind {
	case wal.KindTimelineHistory:
		return fmt.Sprintf("%s%08X.history", WALPrefix, uint32(f.Timeline))
	case wal.KindSegment, wal.KindPartial:
		return TimelinePrefix(f.Timeline) + f.String() + c.Ext()
	default:
		return TimelinePrefix(f.Timeline) + f.String()
	}
}

// Compressed reports whether files of this kind are stored compressed.
func Compressed(k wal.Kind) bool {
	return k == wal.KindSegment || k == wal.KindPartial
}

// Object metadata stored with every WAL object, so a conflict can say what
// differs and a fetch can verify what it wrote.
const (
	MetaSHA256      = "sha256"      // hex sha256 of the raw (uncompressed) file
	MetaRawSize     = "raw-size"    // bytes of the raw file
	MetaCompression = "compression" // Compression of the body
	MetaSystemID    = "system-id"   // cluster system identifier (segments)
	MetaTimeline    = "timeline"    // timeline, 8 hex digits
	MetaHost        = "host"        // host that pushed it
	MetaPushedAt    = "pushed-at"   // RFC 3339 time of the push
	MetaWalvault    = "walvault"    // walvault version that wrote it
)

// WALMetadata reads what wal-fetch checks a WAL object against from its
// metadata: its raw size, and its sha256 (an encrypted object's
// fingerprints stand in for it). ok is false when either is missing or
// malformed: the object cannot be verified.
func WALMetadata(meta map[string]string) (rawSize int64, ok bool) {
	raw, err := strconv.ParseInt(meta[MetaRawSize], 10, 64)
	if err != nil || raw < 0 {
		return 0, false
	}
	return raw, EncryptedObject(meta) || len(meta[MetaSHA256]) == sha256.Size*2
}
