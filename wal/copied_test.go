package wal

import (
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"
)

// TestCheckPagesAfterBranch: the first segment of timeline 2 a real
// promotion wrote holds WAL only up to the page of its switch point (it
// was copied right after the promotion): unknown. With a page past it
// begun on timeline 2, as the promoted server writes on, it is the
// child's; begun on timeline 1 (a copy of the parent's segment under the
// child's name, explore25a F1), the parent's. The integration suite
// checks a segment a promoted server filled (TestStandbyArchiveModeAlways).
func TestCheckPagesAfterBranch(t *testing.T) {
	raw, err := io.ReadAll(openSegment(t, filepath.Join("testdata", "segments", "ok", "000000020000000000000004.gz")))
	if err != nil {
		t.Fatal(err)
	}
	name := Segment{Timeline: 2, Log: 0, Seg: 4}
	const switchPoint = LSN(0x4002D98)
	check := func(data []byte) PagesAfterBranch {
		t.Helper()
		got, err := CheckPagesAfterBranch(bytes.NewReader(data), name, switchPoint)
		if err != nil {
			t.Fatalf("CheckPagesAfterBranch: %v", err)
		}
		return got
	}
	if got := check(raw); got != BranchPagesUnknown {
		t.Fatalf("the real first segment of timeline 2, WAL to the switch point's page only: %v, want BranchPagesUnknown", got)
	}
	// The next page (0/4004000), as a server writing on would begin it.
	withPage := func(tli uint32) []byte {
		data := bytes.Clone(raw)
		p := data[0x4000 : 0x4000+24]
		binary.LittleEndian.PutUint16(p[0:2], 0xD110)
		binary.LittleEndian.PutUint16(p[2:4], 0x0005)
		binary.LittleEndian.PutUint32(p[4:8], tli)
		binary.LittleEndian.PutUint64(p[8:16], 0x4004000)
		return data
	}
	if got := check(withPage(2)); got != BranchPagesChild {
		t.Errorf("a page past the switch point on timeline 2: %v, want BranchPagesChild", got)
	}
	if got := check(withPage(1)); got != BranchPagesParent {
		t.Errorf("a page past the switch point on timeline 1: %v, want BranchPagesParent", got)
	}
	// A page whose address is not its place is no page of this file.
	bad := withPage(1)
	binary.LittleEndian.PutUint64(bad[0x4008:0x4010], 0x5004000)
	if got := check(bad); got != BranchPagesUnknown {
		t.Errorf("a page past the switch point with another address: %v, want BranchPagesUnknown", got)
	}
}

// TestTimelineStartsAt: a switch point mid-page is where the new
// timeline's first record starts; one on a page boundary (after a WAL
// switch) has it just after the page's header: the short one, or the
// long one at a segment's start (explore25f).
func TestTimelineStartsAt(t *testing.T) {
	s := &SegmentScan{Start: 0x5000000, pageSize: 8192, TimelineStarts: []LSN{0x5000028, 0x5004018, 0x5006100}}
	for at, want := range map[LSN]bool{
		0x5000000: true,  // segment start: the record after the long header
		0x5004000: true,  // page boundary: after the short header
		0x5006100: true,  // mid-page: right there
		0x5006000: false, // a page boundary whose record is elsewhere
		0x5006118: false,
	} {
		if got := s.TimelineStartsAt(at); got != want {
			t.Errorf("TimelineStartsAt(%s) = %v, want %v", at, got, want)
		}
	}
}
