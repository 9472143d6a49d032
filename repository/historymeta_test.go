package repository_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestHistoryMetaRoundTrip: a history's timelines and switch points come
// back from the metadata, in one compact value; the reasons stay out.
func TestHistoryMetaRoundTrip(t *testing.T) {
	t.Parallel()
	entries := []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x3010710, Reason: "no recovery target specified"}, {Timeline: 2, SwitchPoint: 0x1_05000000, Reason: "at restore point"}}
	meta := map[string]string{repository.MetaHost: "db-1"}
	repository.DescribeHistory(meta, entries)
	if got, want := meta[repository.MetaHistory], "1:0/3010710,2:1/5000000"; got != want {
		t.Fatalf("metadata %q, want %q", got, want)
	}
	got, complete, err := repository.ParseHistoryMeta(meta)
	want := []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x3010710}, {Timeline: 2, SwitchPoint: 0x1_05000000}}
	if err != nil || !complete || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseHistoryMeta: %+v, complete %v, %v; want %+v, complete", got, complete, err, want)
	}
	if _, _, err := repository.ParseHistoryMeta(map[string]string{}); err == nil {
		t.Error("ParseHistoryMeta of metadata without it: no error")
	}
	for _, bad := range []string{"", "1", "x:0/1", "0:0/1", "1:zz", "2:0/1,1:0/2", "...", "...,1:0/1,2:0/2"} {
		if got, _, err := repository.ParseHistoryMeta(map[string]string{repository.MetaHistory: bad}); err == nil {
			t.Errorf("ParseHistoryMeta(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestHistoryMetaFitsS3: all of an object's user metadata must stay
// within S3's 2 KB. A history too long for what the other metadata leaves
// keeps its last entry (the parent and switch point), marked incomplete;
// with no room even for that, none.
func TestHistoryMetaFitsS3(t *testing.T) {
	t.Parallel()
	var long []wal.HistoryEntry
	for tli := wal.TimelineID(1); tli < 200; tli++ {
		long = append(long, wal.HistoryEntry{Timeline: tli, SwitchPoint: wal.LSN(tli) << 32})
	}
	size := func(meta map[string]string) int {
		n := 0
		for k, v := range meta {
			n += len("x-amz-meta-") + len(k) + len(v)
		}
		return n
	}
	meta := map[string]string{repository.MetaHost: "db-1", repository.MetaFingerprints: strings.Repeat("f", 500)}
	repository.DescribeHistory(meta, long)
	if n := size(meta); n > 2048 {
		t.Fatalf("metadata of %d bytes, more than S3's 2048", n)
	}
	got, complete, err := repository.ParseHistoryMeta(meta)
	if err != nil || complete || len(got) != 1 || got[0] != (wal.HistoryEntry{Timeline: 199, SwitchPoint: 199 << 32}) {
		t.Fatalf("long history: %+v, complete %v, %v; want only the last entry, incomplete", got, complete, err)
	}

	full := map[string]string{repository.MetaFingerprints: strings.Repeat("f", 2000)}
	repository.DescribeHistory(full, long[:1])
	if v, ok := full[repository.MetaHistory]; ok {
		t.Fatalf("no room left, yet %s holds %q", repository.MetaHistory, v)
	}
}
