package repository

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// rotatedWAL stores n encrypted WAL segments whose recipients switch at
// the given indexes, cycling through keys, and returns their keys in
// order.
func rotatedWAL(t *testing.T, b storage.Backend, n int, switchAt []int, keys ...crypttest.Key) []string {
	t.Helper()
	var out []string
	k := 0
	for i := range n {
		if slices.Contains(switchAt, i) {
			k = (k + 1) % len(keys)
		}
		r := crypttest.Recipients(t, keys[k])
		fp := r.NewFingerprinter()
		fmt.Fprint(fp, i)
		meta := map[string]string{MetaRawSize: "1"}
		Codec{Compression: LZ4, Recipients: r}.Describe(meta, fp.Sum())
		key := WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: uint32(i / 256), Seg: uint32(i % 256)}}, LZ4)
		if err := b.Put(context.Background(), key, bytes.NewReader([]byte("x")), storage.PutOptions{Metadata: meta, Size: 1}); err != nil {
			t.Fatal(err)
		}
		out = append(out, key)
	}
	return out
}

// TestWALRecipientRunsBounded: 4,000 WAL objects with two rotations
// (A, then B, then A again: ends that agree) are told apart exactly, run
// by run, with about a hundred metadata reads instead of 4,000.
func TestWALRecipientRunsBounded(t *testing.T) {
	ctx := context.Background()
	a, bk := crypttest.NewKey(t), crypttest.NewKey(t)
	idA, idB := crypttest.Recipients(t, a).IDs(), crypttest.Recipients(t, bk).IDs()
	b := mem.New()
	keys := rotatedWAL(t, b, 4000, []int{1234, 3000}, a, bk)
	var c storage.Counter
	runs, stats, err := WALRecipientRuns(ctx, storage.Count(b, &c), keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		first, last int
		ids         []string
	}{{0, 1233, idA}, {1234, 2999, idB}, {3000, 3999, idA}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v, want %v", runs, want)
	}
	for i, w := range want {
		if r := runs[i]; r.First != w.first || r.Last != w.last || !r.Encrypted || !slices.Equal(r.Recipients, w.ids) {
			t.Errorf("run %d: %d-%d to %v, want %d-%d to %v", i, r.First, r.Last, r.Recipients, w.first, w.last, w.ids)
		}
	}
	// minSamples spread + about 2·log2(4000/64) per switch; one per
	// object before.
	if n := c.Counts().Stat; n != int64(stats) || n > 2*minSamples+1+2*2*6 {
		t.Fatalf("%d metadata reads (reported %d) for 4,000 objects and 2 switches", n, stats)
	}
	t.Logf("4,000 WAL objects, 2 key switches: %d metadata reads (one per object: 4,000)", stats)

	// An object deleted since the listing is a run of its own, Gone.
	if err := b.Delete(ctx, keys[10]); err != nil {
		t.Fatal(err)
	}
	runs, _, err = WALRecipientRuns(ctx, b, keys[:100])
	if err != nil || len(runs) != 3 || !runs[1].Gone || runs[1].First != 10 || runs[1].Last != 10 {
		t.Fatalf("with keys[10] gone: %+v, %v", runs, err)
	}
}

// TestRecipientUsesCost: walvault keys on 2,000 WAL objects with one
// rotation lists once and reads a bounded sample of metadata.
func TestRecipientUsesCost(t *testing.T) {
	ctx := context.Background()
	a, bk := crypttest.NewKey(t), crypttest.NewKey(t)
	b := mem.New()
	id := NewIdentity(1, 16<<20, 15, LZ4, "h", time.Now()).WithEncryption(crypttest.Recipients(t, a))
	if _, err := EnsureIdentity(ctx, b, id, nil); err != nil {
		t.Fatal(err)
	}
	rotatedWAL(t, b, 2000, []int{777}, a, bk)
	var c storage.Counter
	uses, stats, err := RecipientUses(ctx, storage.Count(b, &c))
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) != 2 || uses[0].WALRanges[0].Files+uses[1].WALRanges[0].Files != 2000 {
		t.Fatalf("uses %+v", uses)
	}
	n := c.Counts()
	if n.Stat > 2*minSamples+1+2*5 || n.List > 2 {
		t.Fatalf("%d Stat, %d List for 2,000 WAL objects and one rotation", n.Stat, n.List)
	}
	t.Logf("keys on 2,000 WAL objects, one rotation: %d List, %d Stat (%d metadata reads), %d Get", n.List, n.Stat, stats, n.Get)
}
