package wal

import (
	"encoding/binary"
	"fmt"
	"io"
)

// PagesAfterBranch says whose WAL the pages of a new timeline's first
// segment hold past the point where it branched off its parent. A server
// that starts timeline T copies its parent's WAL up to the switch point
// into the segment and writes on from there, every page it begins after
// that carrying T in xlp_tli: so past the page that holds the switch
// point, a page of an older timeline means the file is a copy of the
// parent's segment put under the child's name, not WAL a server wrote on
// T (explore25a F1).
type PagesAfterBranch int

const (
	// BranchPagesUnknown: no page past the switch point's holds WAL (the
	// segment ends there, zero-filled), so the file cannot tell.
	BranchPagesUnknown PagesAfterBranch = iota
	// BranchPagesChild: the first such page carries the child's timeline.
	BranchPagesChild
	// BranchPagesParent: it carries an older timeline: a copy.
	BranchPagesParent
)

// CheckPagesAfterBranch reads segment name of a timeline that branched at
// switchPoint from r, and says whose WAL its first page past the one
// holding switchPoint carries (PagesAfterBranch). It reads no further than
// that page.
func CheckPagesAfterBranch(r io.Reader, name Segment, switchPoint LSN) (PagesAfterBranch, error) {
	h, err := ReadHeaderOf(r, name)
	if err != nil {
		return BranchPagesUnknown, err
	}
	if h.BlockSize == 0 || h.SegmentSize%h.BlockSize != 0 {
		return BranchPagesUnknown, fmt.Errorf("segment %s: page size %d does not divide segment size %d", name, h.BlockSize, h.SegmentSize)
	}
	page := make([]byte, h.BlockSize)
	copy(page, mustMarshal(h))
	if _, err := io.ReadFull(r, page[HeaderSize:]); err != nil {
		return BranchPagesUnknown, fmt.Errorf("segment %s: %w", name, err)
	}
	for addr := h.PageAddr; addr < h.PageAddr+LSN(h.SegmentSize); addr += LSN(h.BlockSize) {
		if addr != h.PageAddr {
			if _, err := io.ReadFull(r, page); err != nil {
				return BranchPagesUnknown, fmt.Errorf("segment %s: %w", name, err)
			}
		}
		// Pages that begin at or before the switch point were written
		// (or copied) before the child began.
		if addr <= switchPoint {
			continue
		}
		magic := binary.LittleEndian.Uint16(page[0:2])
		if magic != h.Magic || LSN(binary.LittleEndian.Uint64(page[8:16])) != addr {
			return BranchPagesUnknown, nil // zeros: the WAL ended before this page
		}
		if TimelineID(binary.LittleEndian.Uint32(page[4:8])) < name.Timeline {
			return BranchPagesParent, nil
		}
		return BranchPagesChild, nil
	}
	return BranchPagesUnknown, nil
}

func mustMarshal(h Header) []byte {
	b, _ := h.MarshalBinary()
	return b
}
