package waltest_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// TestSegment: a synthetic segment has a header wal accepts for its name
// and cluster, and the same seed gives the same bytes.
func TestSegment(t *testing.T) {
	c := waltest.Cluster{SystemID: 7300000000000000001, SegmentSize: wal.MinSegmentSize}
	s := wal.Segment{Timeline: 2, Log: 1, Seg: 3}
	data := c.Segment(t, s, 7)
	if len(data) != int(c.SegmentSize) {
		t.Fatalf("segment size: got %d, want %d", len(data), c.SegmentSize)
	}
	h, err := wal.ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if err := h.Check(s); err != nil || h.SystemID != c.SystemID || h.SegmentSize != c.SegmentSize {
		t.Errorf("header %+v for %s: check %v, want system %d, size %d", h, s, err, c.SystemID, c.SegmentSize)
	}
	if !bytes.Equal(data, c.Segment(t, s, 7)) || bytes.Equal(data, c.Segment(t, s, 8)) {
		t.Error("segments: want the same bytes for a seed, other bytes for another")
	}
	path, sum := waltest.WriteFile(t, t.TempDir(), s.String(), data)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) || sum != waltest.SHA256(data) {
		t.Errorf("WriteFile: wrote %d bytes, sum %s", len(got), sum)
	}
}

func TestHistory(t *testing.T) {
	entries := []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x3000000, Reason: "no recovery target specified"}}
	body := waltest.History(t, entries...)
	if string(body) != "1\t0/3000000\tno recovery target specified\n" {
		t.Errorf("History: got %q", body)
	}
	got, err := wal.ParseHistory(bytes.NewReader(body))
	if err != nil || len(got) != 1 || got[0] != entries[0] {
		t.Errorf("ParseHistory(History): got %+v, %v", got, err)
	}
}
