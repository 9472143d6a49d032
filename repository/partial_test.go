package repository

import (
	"testing"

	"github.com/walvault/walvault/wal"
)

func TestPartialKeyRoundTrip(t *testing.T) {
	seg := wal.Segment{Timeline: 2, Log: 0, Seg: 3}
	for _, c := range Compressions {
		key := PartialKey(seg, 0x3001234, c)
		want := "partial/00000002/000000020000000000000003/0000000003001234" + c.Ext()
		if key != want {
			t.Errorf("key %s, want %s", key, want)
		}
		p, ok := ParsePartialKey(key)
		if !ok || p.Segment != seg || p.End != 0x3001234 || p.Compression != c || p.Key != key {
			t.Errorf("parse %s: %+v %v", key, p, ok)
		}
	}
	for _, bad := range []string{
		"wal/00000002/000000020000000000000003.lz4",
		"partial/00000001/000000020000000000000003/0000000003001234.lz4",
		"partial/00000002/000000020000000000000003/3001234.lz4",
		"partial/00000002/000000020000000000000003/000000000300123a.lz4",
	} {
		if _, ok := ParsePartialKey(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
	// Newer partials sort after older ones.
	if PartialKey(seg, 0x3000100, LZ4) >= PartialKey(seg, 0x3001000, LZ4) {
		t.Error("keys do not sort by end LSN")
	}
}
