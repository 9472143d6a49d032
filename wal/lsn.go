package wal

import (
	"fmt"
	"strconv"
)

// LSN is a log sequence number: a byte position in the WAL stream
// (PostgreSQL's XLogRecPtr and the SQL type pg_lsn).
type LSN uint64

// String formats l the way PostgreSQL 15 to 18 print an LSN: the high and
// low 32 bits in upper-case hex without leading zeros, separated by a
// slash ("16/B374D848", "0/2000000").
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses an LSN as PostgreSQL's pg_lsn input does: two hex
// numbers of 1 to 8 digits (either case) separated by "/", nothing else.
func ParseLSN(s string) (LSN, error) {
	slash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			slash = i
			break
		}
	}
	if slash < 0 {
		return 0, lsnError(s, "no slash")
	}
	hi, lo := s[:slash], s[slash+1:]
	for _, part := range []string{hi, lo} {
		if len(part) < 1 || len(part) > 8 {
			return 0, lsnError(s, "each side must have 1 to 8 hex digits")
		}
		for i := 0; i < len(part); i++ {
			if !isHex(part[i]) {
				return 0, lsnError(s, "invalid "+describeByte(part[i]))
			}
		}
	}
	h, _ := strconv.ParseUint(hi, 16, 32) // checked above: 1-8 hex digits
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSN(h<<32 | l), nil
}

func lsnError(s, reason string) error {
	return fmt.Errorf("invalid LSN %q: %s (want two hex numbers separated by a slash, like 16/B374D848)", s, reason)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
