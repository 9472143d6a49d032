package repository_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// recoveryFixture is a repository of 16 MiB segments: timeline 1 holds
// 1/00 to 1/1A but for a gap at 1/10, timeline 2 branched off at 1/18 and
// holds 1/18 to 1/30, timeline 4 has an unreadable history file (and
// timeline 3 none, so "latest" stops at 2); far segments no recovery here
// reads lie on both timelines.
func recoveryFixture(t *testing.T) (storage.Backend, []string) {
	ctx := context.Background()
	b := newBackend(t)
	if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	put := func(tli wal.TimelineID, log, seg uint32) string {
		key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: wal.Segment{Timeline: tli, Log: log, Seg: seg}}, repository.LZ4)
		putRaw(t, b, key, "x")
		return key
	}
	for n := uint32(0); n <= 0x1A; n++ {
		if n != 0x10 {
			put(1, 1, n)
		}
	}
	for n := uint32(0x18); n <= 0x30; n++ {
		put(2, 1, n)
	}
	putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindPartial, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: 1, Seg: 0x1B}}, repository.LZ4), "p")
	putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None), "1\t1/18000100\tpromoted\n")
	putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 4}, repository.None), "not a history\n")
	far := []string{put(1, 9, 1), put(2, 0x20, 0), put(1, 0, 3)}
	for _, m := range []repository.BackupManifest{
		manifest("20261125T100000Z", "000000010000000100000002", "000000010000000100000003"),
		manifest("20261125T110000Z", "000000010000000100000011", "000000010000000100000012"),
	} {
		if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	return b, far
}

// TestLoadRecoveryWAL: the verdict on a recovery range from an inventory
// of backups/, their WAL and LoadRecoveryWAL's listing is the one a full
// listing (with every history file read) gives, and is right; nothing
// listed reaches beyond the range.
func TestLoadRecoveryWAL(t *testing.T) {
	ctx := context.Background()
	b, far := recoveryFixture(t)
	full, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Histories: true})
	if err != nil {
		t.Fatal(err)
	}
	seg := func(tli wal.TimelineID, log, n uint32) wal.Segment {
		return wal.Segment{Timeline: tli, Log: log, Seg: n}
	}
	a, c := seg(1, 1, 2), seg(1, 1, 0x11) // the backups' start segments
	lsn := func(log, n uint32) wal.LSN { return wal.LSN(uint64(log)<<32 | uint64(n)<<24 | 0x60) }
	type verdict struct {
		ok       bool
		tli      wal.TimelineID
		missing  string
		beyond   bool
		errMatch string
	}
	for _, tc := range []struct {
		name string
		r    repository.RecoveryRange
		want verdict
	}{
		{"within timeline 1", repository.RecoveryRange{Start: a, Target: lsn(1, 5)}, verdict{ok: true, tli: 2}},
		{"in the gap's segment", repository.RecoveryRange{Start: a, Target: lsn(1, 0x10)}, verdict{tli: 2, missing: "000000010000000100000010", beyond: true}},
		{"past the gap", repository.RecoveryRange{Start: a, Target: lsn(1, 0x12)}, verdict{tli: 2, missing: "000000010000000100000010"}},
		{"across the switch", repository.RecoveryRange{Start: c, Target: lsn(1, 0x20)}, verdict{ok: true, tli: 2}},
		{"to the switch segment", repository.RecoveryRange{Start: c, Target: lsn(1, 0x18) - 0x50}, verdict{ok: true, tli: 2}},
		{"on timeline 1 past its end", repository.RecoveryRange{Start: c, Target: lsn(1, 0x20), Timeline: 1}, verdict{tli: 1, missing: "00000001000000010000001B", beyond: true}},
		{"past timeline 2's end", repository.RecoveryRange{Start: c, Target: lsn(1, 0x31)}, verdict{tli: 2, missing: "000000020000000100000031", beyond: true}},
		{"timeline 3, no history, no WAL", repository.RecoveryRange{Start: c, Target: lsn(1, 0x20), Timeline: 3}, verdict{tli: 3, missing: "000000030000000100000011", beyond: true}},
		{"timeline 4, bad history", repository.RecoveryRange{Start: c, Target: lsn(1, 0x20), Timeline: 4}, verdict{tli: 4, ok: true, errMatch: "00000004.history"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &storagetest.ListRecorder{Backend: b}
			scoped, err := repository.LoadInventory(ctx, rec, repository.LoadOptions{BackupsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := scoped.LoadRecoveryWAL(ctx, rec, tc.r); err != nil {
				t.Fatal(err)
			}
			got, gotErr := scoped.WAL.RecoveryReach(tc.r)
			want, wantErr := full.WAL.RecoveryReach(tc.r)
			if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("scoped verdict %+v (%v), full listing's %+v (%v)", got, gotErr, want, wantErr)
			}
			v := verdict{ok: got.OK, tli: got.Timeline, beyond: got.Beyond}
			if !got.OK {
				v.missing = got.Missing.String()
			}
			if gotErr != nil {
				v.errMatch = tc.want.errMatch
				if !strings.Contains(gotErr.Error(), tc.want.errMatch) {
					v.errMatch = gotErr.Error()
				}
			}
			if v != tc.want {
				t.Errorf("verdict %+v (%v), want %+v", v, gotErr, tc.want)
			}

			// Listed: backups/ and prefixes within one log of wal/
			// (these ranges are short), never a far segment.
			for _, p := range rec.Prefixes() {
				if p == repository.BackupsPrefix {
					continue
				}
				if !strings.HasPrefix(p, repository.WALPrefix) || len(p) < len("wal/00000001/0000000100000001") {
					t.Errorf("listed %q: want backups/ and single logs of wal/", p)
				}
				for _, k := range far {
					if strings.HasPrefix(k, p) {
						t.Errorf("listed %q, which holds %s, far from the range", p, k)
					}
				}
			}
			// Each key counted once, though the backups' WAL ranges and the
			// recovery's overlap.
			if scoped.Segments >= full.Segments {
				t.Errorf("scoped: %d segments, the full listing %d: want fewer", scoped.Segments, full.Segments)
			}
			var distinct int64
			for _, o := range fullWALObjects(t, b) {
				for _, p := range rec.Prefixes() {
					if strings.HasPrefix(o, p) && p != repository.BackupsPrefix {
						distinct++
						break
					}
				}
			}
			if histories := int64(len(scoped.Histories)); scoped.WALFiles != distinct+histories {
				t.Errorf("scoped inventory counts %d WAL files; %d are under the listed prefixes, and %d history files were read", scoped.WALFiles, distinct, histories)
			}
		})
	}
}

// fullWALObjects are the keys of every walvault object under wal/ but the
// history files.
func fullWALObjects(t *testing.T, b storage.Backend) []string {
	t.Helper()
	inv, err := repository.LoadInventory(context.Background(), b, repository.LoadOptions{WALObjects: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range inv.WALObjects {
		if o.File.Kind != wal.KindTimelineHistory {
			keys = append(keys, o.Key)
		}
	}
	return keys
}

// historyOverlap holds the read of a history file until a listing of
// wal/ starts (or patience runs out) and records whether one did.
type historyOverlap struct {
	storage.Backend
	mu         sync.Mutex
	listing    chan struct{}
	started    bool
	overlapped bool
}

func (o *historyOverlap) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if strings.HasPrefix(prefix, repository.WALPrefix) {
		o.mu.Lock()
		if !o.started {
			o.started = true
			close(o.listing)
		}
		o.mu.Unlock()
	}
	return o.Backend.List(ctx, prefix, fn)
}

func (o *historyOverlap) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if strings.HasSuffix(key, ".history") {
		select {
		case <-o.listing:
			o.mu.Lock()
			o.overlapped = true
			o.mu.Unlock()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return o.Backend.Get(ctx, key)
}

// TestLoadRecoveryWALListsWhileReadingHistories: recovery usually stays
// on the backup's timeline, so its range there is listed while the next
// timeline's history file is read, a round trip less.
func TestLoadRecoveryWALListsWhileReadingHistories(t *testing.T) {
	ctx := context.Background()
	b, _ := recoveryFixture(t)
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	probe := &historyOverlap{Backend: b, listing: make(chan struct{})}
	r := repository.RecoveryRange{Start: wal.Segment{Timeline: 1, Log: 1, Seg: 0x11}, Target: wal.LSN(1<<32 | 0x20<<24)}
	if err := inv.LoadRecoveryWAL(ctx, probe, r); err != nil {
		t.Fatal(err)
	}
	if !probe.overlapped {
		t.Error("the history file was read before the range was listed, not while")
	}
	if v, err := inv.WAL.RecoveryReach(r); err != nil || !v.OK || v.Timeline != 2 {
		t.Errorf("verdict %+v (%v), want OK on timeline 2", v, err)
	}
}
