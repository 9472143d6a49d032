package wal

import (
	"fmt"
	"math"
)

// TimelineID identifies a timeline: a WAL history that began at initdb
// (timeline 1) or when a server was promoted or finished a point-in-time
// recovery. Timeline 0 is never valid.
type TimelineID uint32

// Segment sizes PostgreSQL accepts (initdb --wal-segsize): a power of two
// from 1 MiB to 1 GiB. 16 MiB is the default.
const (
	MinSegmentSize     = 1 << 20
	MaxSegmentSize     = 1 << 30
	DefaultSegmentSize = 16 << 20
)

// logSize is the span of one "log" (the XXXXXXXX part of a segment name):
// 4 GiB of WAL, the high 32 bits of an LSN.
const logSize = 1 << 32

// ValidateSegmentSize reports whether size is a WAL segment size
// PostgreSQL accepts: a power of two between 1 MiB and 1 GiB.
func ValidateSegmentSize(size uint32) error {
	if size < MinSegmentSize || size > MaxSegmentSize || size&(size-1) != 0 {
		return fmt.Errorf("invalid WAL segment size %d: must be a power of two between 1 MiB and 1 GiB", size)
	}
	return nil
}

// segmentsPerLog is PostgreSQL's XLogSegmentsPerXLogId: how many segments
// of the given (valid) size make up one 4 GiB log.
func segmentsPerLog(size uint32) uint32 {
	return uint32(logSize / uint64(size))
}

// Segment is a WAL segment as PostgreSQL names it: timeline, log and
// segment number within the log, written as TTTTTTTTXXXXXXXXYYYYYYYY in
// upper-case hex (PostgreSQL's XLogFileNameById). The name alone does not
// say how large the segment is: everything that turns a Segment into WAL
// positions takes the segment size, and checks that Seg fits that size
// (Seg < 4 GiB / segment size).
type Segment struct {
	Timeline TimelineID
	Log      uint32 // XXXXXXXX: the high 32 bits of the segment's LSNs
	Seg      uint32 // YYYYYYYY: the segment's number within its log
}

// String returns the segment's 24-character file name.
func (s Segment) String() string {
	return fmt.Sprintf("%08X%08X%08X", uint32(s.Timeline), s.Log, s.Seg)
}

// ParseSegmentName parses a 24-character segment name such as
// "000000010000000000000001". PostgreSQL writes these names in upper-case
// hex, so anything else is rejected, as is timeline 0. The YYYYYYYY part
// is checked against a segment size only by the methods that take one
// (Validate, StartLSN, Next) or by Header.Check.
func ParseSegmentName(s string) (Segment, error) {
	seg, reason := parseSegment(s)
	if reason != "" {
		return Segment{}, &nameError{what: "WAL segment name", name: s, reason: reason}
	}
	return seg, nil
}

// parseSegment parses a segment name; a non-empty reason says why s is not
// one.
func parseSegment(s string) (Segment, string) {
	if len(s) != 24 {
		return Segment{}, fmt.Sprintf("want 24 hex digits (TTTTTTTTXXXXXXXXYYYYYYYY), got %d characters", len(s))
	}
	tli, reason := parseHex8(s, 0)
	if reason != "" {
		return Segment{}, reason
	}
	log, reason := parseHex8(s, 8)
	if reason != "" {
		return Segment{}, reason
	}
	seg, reason := parseHex8(s, 16)
	if reason != "" {
		return Segment{}, reason
	}
	if tli == 0 {
		return Segment{}, "timeline 0 is not valid (timelines start at 1)"
	}
	return Segment{Timeline: TimelineID(tli), Log: log, Seg: seg}, ""
}

// parseHex8 parses the 8 upper-case hex digits of s starting at off; a
// non-empty reason names the first bad character and its offset in s.
func parseHex8(s string, off int) (uint32, string) {
	var v uint32
	for i := off; i < off+8; i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint32(c-'0')
		case 'A' <= c && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		case 'a' <= c && c <= 'f':
			return 0, fmt.Sprintf("lower-case hex digit %q at offset %d (PostgreSQL writes upper case)", c, i)
		default:
			return 0, fmt.Sprintf("invalid %s at offset %d (want upper-case hex)", describeByte(c), i)
		}
	}
	return v, ""
}

// describeByte names a byte for an error message: 'G' for printable
// ASCII and escapes, "byte 0xC3" for the rest (which may be part of a
// multi-byte character).
func describeByte(c byte) string {
	if c < 0x80 {
		return fmt.Sprintf("character %q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// Validate reports whether s can be a segment of the given size: the size
// is valid, the timeline is not 0, and Seg is below 4 GiB / size (with
// 16 MiB segments YYYYYYYY runs from 00000000 to 000000FF).
func (s Segment) Validate(segSize uint32) error {
	if err := ValidateSegmentSize(segSize); err != nil {
		return err
	}
	if s.Timeline == 0 {
		return fmt.Errorf("segment %s: timeline 0 is not valid", s)
	}
	if per := segmentsPerLog(segSize); s.Seg >= per {
		return fmt.Errorf("segment %s: segment number %08X is out of range for %s segments (the last in each log is %08X)",
			s, s.Seg, formatSize(segSize), per-1)
	}
	return nil
}

// StartLSN returns the LSN of the segment's first byte for the given
// segment size.
func (s Segment) StartLSN(segSize uint32) (LSN, error) {
	if err := s.Validate(segSize); err != nil {
		return 0, err
	}
	return LSN(uint64(s.Log)<<32 | uint64(s.Seg)*uint64(segSize)), nil
}

// Next returns the segment that follows s on the same timeline.
func (s Segment) Next(segSize uint32) (Segment, error) {
	if err := s.Validate(segSize); err != nil {
		return Segment{}, err
	}
	if s.Seg+1 < segmentsPerLog(segSize) {
		return Segment{Timeline: s.Timeline, Log: s.Log, Seg: s.Seg + 1}, nil
	}
	if s.Log == math.MaxUint32 {
		return Segment{}, fmt.Errorf("segment %s: no segment follows it, it ends the WAL address space", s)
	}
	return Segment{Timeline: s.Timeline, Log: s.Log + 1, Seg: 0}, nil
}

// SegmentFromLSN returns the segment on timeline tli that holds the byte
// at lsn (PostgreSQL's XLByteToSeg followed by XLogFileName).
func SegmentFromLSN(tli TimelineID, lsn LSN, segSize uint32) (Segment, error) {
	if err := ValidateSegmentSize(segSize); err != nil {
		return Segment{}, err
	}
	if tli == 0 {
		return Segment{}, fmt.Errorf("segment for LSN %s: timeline 0 is not valid", lsn)
	}
	segNo := uint64(lsn) / uint64(segSize)
	per := uint64(segmentsPerLog(segSize))
	return Segment{Timeline: tli, Log: uint32(segNo / per), Seg: uint32(segNo % per)}, nil
}

// formatSize prints a valid segment size the way people say it: "16 MiB",
// "1 GiB".
func formatSize(size uint32) string {
	if size >= 1<<30 {
		return fmt.Sprintf("%d GiB", size>>30)
	}
	return fmt.Sprintf("%d MiB", size>>20)
}
