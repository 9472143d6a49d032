package verify

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
)

// putPartial stores what wal-receive stores for segment n of timeline tli
// received up to off bytes: the segment's first off bytes, with its
// metadata. It returns the key.
func (f *fixture) putPartial(t *testing.T, tli wal.TimelineID, n uint32, off int) string {
	t.Helper()
	s := wal.Segment{Timeline: tli, Seg: n}
	end := wal.LSN(uint64(n)*testSegSize + uint64(off))
	raw := segmentBody(n)[:off]
	key := repository.PartialKey(s, end, repository.LZ4)
	repotest.PutWAL(t, f.b, key, repository.LZ4, raw, map[string]string{repository.MetaEndLSN: end.String()})
	return key
}

// TestPartials: a superseded partial is a warning; the open segment's
// partials are reported with the newest end LSN, and the newest one (only)
// is read back by --full and ends the timeline's continuous WAL.
func TestPartials(t *testing.T) {
	f := newFixture(t) // segments 1-6, backup 2-3
	superseded := f.putPartial(t, 1, 4, 0x8000)
	older := f.putPartial(t, 1, 7, 0x1000)
	newest := f.putPartial(t, 1, 7, 0x9000)
	// Only the newest partial of a segment is what wal-fetch serves: an
	// older one that is damaged is not read.
	f.rewrite(t, older, []byte("not an lz4 frame"))

	for _, full := range []bool{false, true} {
		r := run(t, f.b, full)
		if !r.OK || len(r.Warnings) != 1 || r.Warnings[0].Kind != KindSupersededPartial || r.Warnings[0].Key != superseded {
			t.Fatalf("full=%v: problems %v, warnings %v; want only the superseded partial as a warning\n%s", full, kinds(r.Problems), kinds(r.Warnings), text(t, r))
		}
		if !strings.Contains(r.Warnings[0].Detail, "walvault delete") {
			t.Errorf("the superseded warning should say walvault delete removes it: %s", r.Warnings[0].Detail)
		}
		if r.Summary.ReceivedPartials != 3 || r.Summary.SupersededPartials != 1 || r.Summary.WALObjects != 6 {
			t.Errorf("full=%v: summary %+v", full, r.Summary)
		}
		if full && r.Summary.ObjectsRead != 9+1 {
			t.Errorf("--full read %d objects, want 10 (9 as without partials, and the newest partial)", r.Summary.ObjectsRead)
		}
		tl := r.Timelines[0]
		seg7 := wal.Segment{Timeline: 1, Seg: 7}.String()
		if tl.ReceivedPartials != 3 || tl.NewestPartial != newest || tl.NewestPartialEnd != "0/709000" ||
			tl.CheckedTo != seg7 || !tl.CheckedToPartial || tl.Newest != (wal.Segment{Timeline: 1, Seg: 6}).String() {
			t.Errorf("full=%v: timeline report %+v", full, tl)
		}
		out := text(t, r)
		for _, want := range []string{
			"OK: timeline 1: WAL continuous from 000000010000000000000002 to " + seg7 + " (" + seg7 + " only as a partial of wal-receive",
			"OK: timeline 1: 3 partials of wal-receive, the newest ending at 0/709000",
			"OK: partial/: 3 partials of wal-receive: 1 superseded",
			"1 backup, 3 partials",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("full=%v: output lacks %q:\n%s", full, want, out)
			}
		}
	}
}

func TestDamagedPartialFull(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, f *fixture, key string)
		want   string
	}{
		{"other bytes, same metadata", func(t *testing.T, f *fixture, key string) {
			other := append([]byte(nil), segmentBody(7)[:0x9000]...)
			other[100] ^= 0xFF
			f.rewrite(t, key, repotest.Compress(t, repository.LZ4, other))
		}, "sha256"},
		{"not lz4", func(t *testing.T, f *fixture, key string) { f.rewrite(t, key, []byte("not an lz4 frame")) }, "decompress"},
		{"truncated", func(t *testing.T, f *fixture, key string) {
			f.rewrite(t, key, repotest.Compress(t, repository.LZ4, segmentBody(7)[:0x8000]))
		}, "decompresses to 32768 bytes"},
		{"no metadata", func(t *testing.T, f *fixture, key string) {
			body := f.read(t, key)
			if err := f.b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "no valid sha256/raw-size metadata"},
		{"raw size not what the key says", func(t *testing.T, f *fixture, key string) {
			raw := segmentBody(7)[:0x8000]
			meta := map[string]string{repository.MetaSHA256: sum(raw), repository.MetaRawSize: strconv.Itoa(len(raw)), repository.MetaCompression: "lz4"}
			if err := f.b.Put(context.Background(), key, bytes.NewReader(repotest.Compress(t, repository.LZ4, raw)), storage.PutOptions{Metadata: meta}); err != nil {
				t.Fatal(err)
			}
		}, "its key's end LSN 0/709000 means 36864 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.putPartial(t, 1, 7, 0x9000)
			tc.damage(t, f, key)
			if r := run(t, f.b, false); !r.OK {
				t.Fatalf("without --full the listing looks fine, want OK: %v", kinds(r.Problems))
			}
			p := wantOnly(t, run(t, f.b, true), KindPartialChecksum, key)
			if !strings.Contains(p.Detail, tc.want) || !strings.Contains(p.Detail, "wal-fetch refuses it") {
				t.Errorf("detail %q should contain %q", p.Detail, tc.want)
			}
		})
	}
}

// TestPartialFillsNoGap: a partial in the middle of a timeline, or after a
// missing segment, does not make the WAL continuous: recovery would stop at
// its end.
func TestPartialFillsNoGap(t *testing.T) {
	f := newFixture(t)
	seg5 := wal.Segment{Timeline: 1, Seg: 5}.String()
	f.remove(t, f.keys[seg5])
	f.putPartial(t, 1, 5, 0x9000)
	p := wantOnly(t, run(t, f.b, true), KindWALGap, f.keys[seg5])
	if p.MissingFirst != seg5 || p.MissingCount != 1 || !strings.Contains(p.Detail, "a partial fills no gap") {
		t.Fatalf("gap finding %+v", p)
	}

	// The timeline's last segment may be a partial, but not past a hole.
	f = newFixture(t)
	f.putPartial(t, 1, 8, 0x9000)
	r := run(t, f.b, false)
	seg7 := wal.Segment{Timeline: 1, Seg: 7}.String()
	p = wantOnly(t, r, KindWALGap, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 7}}, repository.LZ4))
	if p.MissingFirst != seg7 || p.MissingCount != 1 || strings.Contains(p.Detail, "a partial fills no gap") {
		t.Fatalf("gap finding %+v: want segment 7 missing, with no partial in it", p)
	}
}

func TestPartialStrays(t *testing.T) {
	f := newFixture(t)
	seg := wal.Segment{Timeline: 1, Seg: 7}
	outside := repository.PartialKey(seg, wal.LSN(9*testSegSize), repository.LZ4) // ends in segment 9
	for _, key := range []string{"partial/notes.txt", repository.PartialSegmentPrefix(seg) + "latest", outside} {
		if err := f.b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, f.b, true)
	if !r.OK || len(r.Warnings) != 3 || r.Summary.Strays != 3 || r.Summary.ReceivedPartials != 0 {
		t.Fatalf("want 3 stray warnings and no partial: problems %v, warnings %v, summary %+v", kinds(r.Problems), kinds(r.Warnings), r.Summary)
	}
	for _, w := range r.Warnings {
		if w.Key == outside && !strings.Contains(w.Detail, "lies outside segment") {
			t.Errorf("stray detail: %s", w.Detail)
		}
	}
}

// TestEncryptedPartialFull: in an encrypted repository the newest partial
// of wal-receive carries no sha256 (its keyed fingerprint stands in, as
// for every encrypted object): --full reads it with the identity and finds
// nothing wrong; a changed byte is still found (explore22a F2).
func TestEncryptedPartialFull(t *testing.T) {
	key := crypttest.NewKey(t)
	rec := crypttest.Recipients(t, key)
	for _, damaged := range []bool{false, true} {
		b, _ := filetest.New(t)
		f := fixtureOn(t, b, testIdentity().WithEncryption(rec), 6)
		end := wal.LSN(7*testSegSize + 0x9000)
		pkey := repository.PartialKey(wal.Segment{Timeline: 1, Seg: 7}, end, repository.None)
		repotest.PutEncrypted(t, b, pkey, segmentBody(7)[:0x9000], rec, map[string]string{repository.MetaEndLSN: end.String()})
		if damaged {
			body := f.read(t, pkey)
			body[len(body)/2] ^= 0xFF
			f.rewrite(t, pkey, body)
		}
		r, err := Run(context.Background(), b, Options{Full: true, Concurrency: 2, Identities: key.Identities(t)})
		if err != nil {
			t.Fatalf("verify --full: %v", err)
		}
		switch {
		case !damaged && !r.OK:
			t.Errorf("encrypted partial, intact: problems %v; want OK\n%s", kinds(r.Problems), text(t, r))
		case damaged:
			wantOnly(t, r, KindPartialChecksum, pkey)
		}
	}
}

// TestSupersededPartialsOneWarningPerSegment: the superseded partials of
// one segment (wal-receive may store one a second, and a lock keeps them
// for days) are one warning, counting them, not one each (explore22a F9).
func TestSupersededPartialsOneWarningPerSegment(t *testing.T) {
	f := newFixture(t) // segments 1-6 archived
	for _, off := range []int{0x1000, 0x2000, 0x3000} {
		f.putPartial(t, 1, 4, off)
	}
	r := run(t, f.b, false)
	if len(r.Warnings) != 1 || r.Warnings[0].Kind != KindSupersededPartial || !strings.Contains(r.Warnings[0].Detail, "3 partials of segment 000000010000000000000004") {
		t.Fatalf("warnings %v; want one superseded_partial warning counting 3\n%s", kinds(r.Warnings), text(t, r))
	}
	if r.Summary.SupersededPartials != 3 {
		t.Errorf("summary counts %d superseded partials, want 3", r.Summary.SupersededPartials)
	}
}
