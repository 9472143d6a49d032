package repository_test

import (
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestFirstMissingWAL: the first segment of a range stored on none of the
// timelines from the start's to the stop's, whatever codec stores the
// others, with a range starting where a segment number's last digit is 0
// and across a timeline switch.
func TestFirstMissingWAL(t *testing.T) {
	const segSize = 16 << 20
	b := mem.New()
	put := func(tli wal.TimelineID, seg uint32, c repository.Compression) {
		f := wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: wal.Segment{Timeline: tli, Seg: seg}}
		repotest.Put(t, b, repository.WALKey(f, c), []byte("x"))
	}
	for seg := uint32(0x0E); seg <= 0x14; seg++ {
		if seg != 0x12 {
			put(1, seg, repository.Compressions[int(seg)%len(repository.Compressions)])
		}
	}
	put(2, 0x15, repository.LZ4)
	put(2, 0x16, repository.Zstd)
	seg := func(tli wal.TimelineID, n uint32) wal.Segment { return wal.Segment{Timeline: tli, Seg: n} }
	for _, tc := range []struct {
		start, stop wal.Segment
		ok          bool
		missing     wal.Segment
	}{
		{seg(1, 0x10), seg(1, 0x11), true, wal.Segment{}},
		{seg(1, 0x10), seg(1, 0x14), false, seg(1, 0x12)},
		{seg(1, 0x13), seg(2, 0x16), true, wal.Segment{}},
		{seg(1, 0x13), seg(2, 0x17), false, seg(2, 0x17)},
		{seg(1, 0x0E), seg(1, 0x0E), true, wal.Segment{}},
		{seg(1, 0x0D), seg(1, 0x0E), false, seg(1, 0x0D)},
	} {
		missing, ok, err := repository.FirstMissingWAL(t.Context(), b, segSize, tc.start, tc.stop)
		if err != nil || ok != tc.ok || !ok && missing != tc.missing {
			t.Errorf("FirstMissingWAL(%s, %s) = %s, %v, %v; want ok %v, missing %s", tc.start, tc.stop, missing, ok, err, tc.ok, tc.missing)
		}
	}
}

// TestLastWritten: when the repository last received WAL of a timeline
// from a segment on: its segments and its history file count; a .partial,
// which the server promoted from the timeline writes, does not.
func TestLastWritten(t *testing.T) {
	b := mem.New()
	seg := func(tli wal.TimelineID, n uint32, kind wal.Kind) string {
		return repository.WALKey(wal.FileName{Kind: kind, Timeline: tli, Segment: wal.Segment{Timeline: tli, Seg: n}}, repository.LZ4)
	}
	repotest.Put(t, b, seg(1, 4, wal.KindSegment), []byte("x"))
	repotest.Put(t, b, seg(1, 5, wal.KindSegment), []byte("x"))
	time.Sleep(10 * time.Millisecond)
	mid := time.Now()
	time.Sleep(10 * time.Millisecond)
	repotest.Put(t, b, seg(1, 6, wal.KindPartial), []byte("x")) // the child's promotion
	got, err := repository.LastWritten(t.Context(), b, 1, wal.Segment{Timeline: 1, Seg: 5})
	if err != nil || got.IsZero() || got.After(mid) {
		t.Errorf("LastWritten(1 from 5) = %v, %v; want segment 5's time, before %v (the partial not counted)", got, err, mid)
	}
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t0/6000080\tno recovery target specified\n"))
	if got, err := repository.LastWritten(t.Context(), b, 2, wal.Segment{Timeline: 2, Seg: 6}); err != nil || !got.After(mid) {
		t.Errorf("LastWritten(2) with only its history file = %v, %v; want the history file's time", got, err)
	}
}
