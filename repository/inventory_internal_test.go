package repository

import (
	"reflect"
	"testing"

	"github.com/walvault/walvault/wal"
)

// TestBackupWALPrefixes: each backup's range, and the segment after it,
// is covered by the prefixes; a range crossing a log boundary or a
// timeline gets a shorter prefix or one per timeline; prefixes inside
// another are dropped.
func TestBackupWALPrefixes(t *testing.T) {
	x, err := NewWALIndex(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	seg := func(tli wal.TimelineID, log, n uint32) string {
		return wal.Segment{Timeline: tli, Log: log, Seg: n}.String()
	}
	ms := []*BackupManifest{
		{StartWAL: seg(1, 0, 0x12), StopWAL: seg(1, 0, 0x13)},       // 0/12..0/14: "...0000001"
		{StartWAL: seg(1, 0, 0x14), StopWAL: seg(1, 0, 0x14)},       // 0/14..0/15: the same prefix
		{StartWAL: seg(1, 0, 0x10), StopWAL: seg(1, 0, 0x1F)},       // 0/10..0/20: "...000000", holds both
		{StartWAL: seg(1, 2, 0x30), StopWAL: seg(2, 2, 0x31)},       // promoted meanwhile
		{StartWAL: "not a segment", StopWAL: seg(1, 0, 0x01)},       // left to BackupStatusOf
		{StartWAL: seg(3, 0x1A, 0x05), StopWAL: seg(3, 0x1A, 0x05)}, // one segment
		{StartWAL: seg(4, 0x15, 0xFE), StopWAL: seg(4, 0x15, 0xFF)}, // the one after is in log 16
		{StartWAL: seg(5, 0x0F, 0xFF), StopWAL: seg(5, 0x0F, 0xFF)}, // 0F/FF..10/00: the names share "0000000500000"
	}
	got := backupWALPrefixes(ms, x)
	want := []string{
		"wal/00000001/0000000100000000000000",  // 0/10..0/20; 0/12..0/15 lie inside
		"wal/00000001/00000001000000020000003", // 2/30..2/32 on timeline 1
		"wal/00000002/00000002000000020000003", // 2/31..2/32 on timeline 2
		"wal/00000003/000000030000001A0000000", // 1A/05..1A/06
		"wal/00000004/0000000400000015",        // 15/FE..16/00: logs 15 and 16, not 10 to 1F
		"wal/00000004/0000000400000016",
		"wal/00000005/000000050000000F", // 0F/FF..10/00: logs 0F and 10, not 00 to FF
		"wal/00000005/0000000500000010",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("prefixes:\n got %q\nwant %q", got, want)
	}
}
