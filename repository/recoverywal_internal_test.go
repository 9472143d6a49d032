package repository

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/walvault/walvault/wal"
)

// TestRangePrefixes: a range within a log is one prefix, one crossing logs
// a prefix per log, a long one a few prefixes of many logs each.
func TestRangePrefixes(t *testing.T) {
	x, err := NewWALIndex(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	no := func(log, seg uint32) uint64 { return x.segNo(wal.Segment{Log: log, Seg: seg}) }
	for _, tc := range []struct {
		name        string
		first, last uint64
		want        []string
	}{
		{"one segment", no(0x1A, 5), no(0x1A, 5), []string{"wal/00000002/000000020000001A"}},
		{"within a log", no(0, 0x12), no(0, 0xF0), []string{"wal/00000002/0000000200000000"}},
		{"across logs", no(0, 0xFE), no(1, 1), []string{"wal/00000002/0000000200000000", "wal/00000002/0000000200000001"}},
		{"sixteen logs at a time", no(0x0F, 0x80), no(0x30, 0x10), []string{
			"wal/00000002/000000020000000", "wal/00000002/000000020000001",
			"wal/00000002/000000020000002", "wal/00000002/000000020000003",
		}},
	} {
		if got := x.rangePrefixes(2, tc.first, tc.last); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: prefixes\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestRangePrefixesBounded: for any range and segment size, the prefixes
// hold every segment of it, are few, and hold at most two blocks (of at
// most the range's length, or minListedBlock) beyond it.
func TestRangePrefixesBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, segSize := range []uint32{1 << 20, 16 << 20, 64 << 20, 1 << 30} {
		x, err := NewWALIndex(segSize)
		if err != nil {
			t.Fatal(err)
		}
		for range 2000 {
			first := rng.Uint64N(x.perLog * 0x300)
			n := uint64(1) + rng.Uint64N([]uint64{4, 300, 5000, 2_000_000}[rng.IntN(4)])
			last := first + n - 1
			ps := x.rangePrefixes(1, first, last)
			if len(ps) > 17 {
				t.Fatalf("%d-byte segments, %d..%d: %d prefixes, want at most 17", segSize, first, last, len(ps))
			}
			for i, p := range ps {
				if !strings.HasPrefix(p, "wal/00000001/00000001") || i > 0 && ps[i-1] >= p {
					t.Fatalf("%d..%d: prefixes %q not sorted, or outside timeline 1", first, last, ps)
				}
			}
			// Count what the prefixes hold: the lowest and highest segment
			// number under each.
			var held uint64
			covers := func(n uint64) bool {
				name := x.segment(1, n).String()
				for _, p := range ps {
					if strings.HasPrefix(TimelinePrefix(1)+name, p) {
						return true
					}
				}
				return false
			}
			for _, p := range ps {
				lo, hi := prefixBounds(t, x, p)
				held += hi - lo + 1
			}
			for _, n := range []uint64{first, last, first + n/2, first + rng.Uint64N(n)} {
				if !covers(n) {
					t.Fatalf("%d-byte segments, %d..%d: segment %d is under none of %q", segSize, first, last, n, ps)
				}
			}
			if limit := max(n, minListedBlock); held > n+2*limit {
				t.Fatalf("%d-byte segments, %d..%d (%d): the prefixes %q hold %d segments", segSize, first, last, n, ps, held)
			}
		}
	}
}

// prefixBounds is the lowest and highest segment number of timeline 1
// whose name starts with prefix.
func prefixBounds(t *testing.T, x *WALIndex, prefix string) (uint64, uint64) {
	t.Helper()
	name := strings.TrimPrefix(prefix, TimelinePrefix(1))
	bound := func(fill byte) uint64 {
		full := name + strings.Repeat(string(fill), 24-len(name))
		s, err := wal.ParseSegmentName(full[:16] + "00000000")
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		var seg uint64
		for _, c := range full[16:] {
			seg = seg*16 + uint64(strings.IndexRune("0123456789ABCDEF", c))
		}
		return x.segNo(s) + min(seg, x.perLog-1)
	}
	return bound('0'), bound('F')
}
