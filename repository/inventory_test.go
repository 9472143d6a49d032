package repository_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

func segName(tli wal.TimelineID, n uint32) string {
	return wal.Segment{Timeline: tli, Seg: n}.String()
}

// inventoryFixture is a repository with WAL on two timelines, a gap, a
// partial, a drill record, strays and backups of every status.
func inventoryFixture(t *testing.T) storage.Backend {
	ctx := context.Background()
	b := newBackend(t)
	if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{2, 3, 5} {
		putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: n}}, repository.LZ4), "x")
	}
	putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: wal.Segment{Timeline: 2, Seg: 6}}, repository.LZ4), "x")
	putRaw(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None), "1\t0/6000100\tpromoted\n")
	putRaw(t, b, repository.PartialKey(wal.Segment{Timeline: 2, Seg: 7}, 0x7000100, repository.LZ4), "p")
	putRaw(t, b, repository.DrillRecordKey("20261125T103000.000Z"), "{}")
	putRaw(t, b, "wal/00000001/junk", "j")
	putRaw(t, b, "notes.txt", "n")
	putRaw(t, b, "check/leftover", "c")

	cross := manifest("20261125T130000Z", segName(1, 5), segName(2, 6)) // stop on the new timeline
	cross.StopTimeline = 2
	for _, m := range []repository.BackupManifest{
		manifest("20261125T100000Z", segName(1, 2), segName(1, 3)), // DONE
		manifest("20261125T110000Z", segName(1, 3), segName(1, 5)), // 4 lost in a gap
		manifest("20261125T120000Z", segName(1, 5), segName(1, 6)), // 6 not archived yet
		cross,
	} {
		if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	putRaw(t, b, repository.BackupPartKey("20261125T140000Z", "base.tar", 0, repository.LZ4), "part")
	if _, err := repository.WriteMark(ctx, b, "20261125T100000Z", true, created, repository.MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

type backupStatus struct {
	id      string
	status  repository.BackupStatus
	missing string
	beyond  bool
}

func backupStatuses(inv *repository.Inventory) []backupStatus {
	var out []backupStatus
	for _, bk := range inv.Backups {
		s := backupStatus{id: bk.ID, status: bk.Status(), beyond: bk.WAL.Beyond}
		if bk.WAL.Status == repository.StatusWaitingForWALs {
			s.missing = bk.WAL.Missing.String()
		}
		out = append(out, s)
	}
	return out
}

func TestLoadInventory(t *testing.T) {
	ctx := context.Background()
	b := inventoryFixture(t)
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{WALObjects: true, Histories: true})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Identity == nil || inv.IdentityErr != nil || inv.WAL == nil {
		t.Fatalf("identity %+v, %v", inv.Identity, inv.IdentityErr)
	}
	got := backupStatuses(inv)
	want := []backupStatus{
		{"20261125T100000Z", repository.StatusDone, "", false},
		{"20261125T110000Z", repository.StatusWaitingForWALs, segName(1, 4), false},
		{"20261125T120000Z", repository.StatusWaitingForWALs, segName(1, 6), true},
		{"20261125T130000Z", repository.StatusDone, "", false},
		{"20261125T140000Z", repository.StatusIncomplete, "", false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backups:\n got %+v\nwant %+v", got, want)
	}
	if bk := inv.Backup("20261125T100000Z"); bk == nil || len(bk.Marks) != 1 || !repository.Kept(bk.Marks) || len(bk.Objects) != 2 {
		t.Errorf("backup with a keep mark: %+v", bk)
	}
	if inv.Segments != 4 || inv.WALFiles != 5 || len(inv.WALObjects) != 5 || len(inv.Histories) != 1 {
		t.Errorf("WAL: %d segments, %d files, %d objects, %d histories; want 4, 5, 5, 1", inv.Segments, inv.WALFiles, len(inv.WALObjects), len(inv.Histories))
	}
	if n := inv.NewestSegment; n == nil || n.File.Segment != (wal.Segment{Timeline: 2, Seg: 6}) {
		t.Errorf("newest segment %+v", n)
	}
	if inv.ArchiveEnd != 0x7000000 || inv.ArchiveEndFile.String() != segName(2, 6) {
		t.Errorf("archive end %s (%s), want 0/7000000 (%s)", inv.ArchiveEnd, inv.ArchiveEndFile, segName(2, 6))
	}
	if len(inv.Partials) != 1 || inv.Partials[0].End != 0x7000100 || len(inv.DrillRecords) != 1 {
		t.Errorf("partials %+v, drill records %v", inv.Partials, inv.DrillRecords)
	}
	var strays []string
	for _, s := range inv.Strays {
		strays = append(strays, s.Key)
	}
	if !reflect.DeepEqual(strays, []string{"notes.txt", "wal/00000001/junk"}) {
		t.Errorf("strays %v, want notes.txt and wal/00000001/junk (check/ is never a stray)", strays)
	}
	if u := inv.Usage["wal/"]; u.Objects != 6 {
		t.Errorf("wal/ usage %+v, want 6 objects", u)
	}
	// The history file was read: timeline 2 branches from 1, so the gap
	// at 4 is needed and nothing is missing on timeline 2.
	c := inv.WAL.Continuity([]wal.Segment{{Timeline: 1, Seg: 2}})
	if len(c.Gaps) != 1 || c.Gaps[0].First.Seg != 4 || !c.Gaps[0].Needed || len(c.MissingHistory) != 0 {
		t.Errorf("continuity %+v", c)
	}

	// The catalog is what backup-list shows.
	list, err := inv.Catalog()
	if err != nil || len(list) != 5 || list[1].MissingWAL != segName(1, 4) || list[4].Manifest != nil {
		t.Errorf("catalog %+v, %v", list, err)
	}
}

func TestLoadInventoryWithoutIdentity(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	putRaw(t, b, "wal/00000001/000000010000000000000002.lz4", "x")
	if err := repository.WriteBackupManifest(ctx, b, manifest("20261125T100000Z", segName(1, 2), segName(1, 2)), nil); err != nil {
		t.Fatal(err)
	}
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{WALObjects: true})
	if err != nil || inv.Identity != nil || inv.IdentityErr != nil || inv.WAL != nil {
		t.Fatalf("inventory %+v, %v", inv, err)
	}
	if len(inv.WALObjects) != 1 || inv.Segments != 0 {
		t.Errorf("without an identity, WAL is classified by key only: %+v", inv.WALObjects)
	}
	if _, err := inv.Catalog(); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("catalog of a backup without walvault.json: %v, want not found", err)
	}
	putRaw(t, b, repository.IdentityKey, "not json")
	inv, err = repository.LoadInventory(ctx, b, repository.LoadOptions{})
	if err != nil || inv.Identity != nil || inv.IdentityErr == nil {
		t.Fatalf("a damaged walvault.json is a finding of the inventory, not an error: %+v, %v", inv, err)
	}
}

func TestBackupStatusOf(t *testing.T) {
	if w, err := repository.BackupStatusOf(nil, nil); err != nil || w.Status != repository.StatusIncomplete {
		t.Errorf("no manifest: %+v, %v", w, err)
	}
	m := manifest("20261125T100000Z", "bad", segName(1, 2))
	if _, err := repository.BackupStatusOf(&m, nil); err == nil {
		t.Error("an invalid start_wal was accepted")
	}
	m = manifest("20261125T100000Z", segName(1, 2), segName(1, 2))
	if _, err := repository.BackupStatusOf(&m, nil); err == nil {
		t.Error("a status without a WAL index was decided")
	}
}

// gateGets holds each Get of a key under prefix until want of them are in
// flight at once (or patience runs out) and records the most seen.
type gateGets struct {
	storage.Backend
	prefix   string
	want     int
	patience time.Duration

	mu       sync.Mutex
	inFlight int
	most     int
	full     chan struct{}
}

func (g *gateGets) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if !strings.HasPrefix(key, g.prefix) {
		return g.Backend.Get(ctx, key)
	}
	g.mu.Lock()
	g.inFlight++
	if g.inFlight == g.want && g.most < g.want {
		close(g.full)
	}
	g.most = max(g.most, g.inFlight)
	g.mu.Unlock()
	select {
	case <-g.full:
	case <-time.After(g.patience):
	}
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	return g.Backend.Get(ctx, key)
}

// TestLoadInventoryReadsManifestsAtOnce: each manifest read is a round
// trip, so a repository with many backups must not read them one by one.
func TestLoadInventoryReadsManifestsAtOnce(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if _, err := repository.EnsureIdentity(ctx, b, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 40 {
		m := manifest(fmt.Sprintf("20261125T%02d%02d00Z", i/2, i%2*30), segName(1, 2), segName(1, 3))
		if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	gate := &gateGets{Backend: b, prefix: repository.BackupsPrefix, want: 32, patience: 300 * time.Millisecond, full: make(chan struct{})}
	inv, err := repository.LoadInventory(ctx, gate, repository.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gate.most < gate.want {
		t.Errorf("at most %d manifest reads were in flight at once, want %d", gate.most, gate.want)
	}
	// Read at once, still recorded in order, each with its own manifest.
	if len(inv.Backups) != len(ids) {
		t.Fatalf("%d backups, want %d", len(inv.Backups), len(ids))
	}
	for i, bk := range inv.Backups {
		if bk.ID != ids[i] || bk.Manifest == nil || bk.Manifest.ID != ids[i] || bk.ManifestErr != nil {
			t.Errorf("backup %d: %s with manifest %+v (%v), want %s", i, bk.ID, bk.Manifest, bk.ManifestErr, ids[i])
		}
	}
}

// TestLoadInventoryBackupsOnly: listing only what the backups need gives
// them the statuses a full listing gives, without listing the rest of the
// archive.
func TestLoadInventoryBackupsOnly(t *testing.T) {
	ctx := context.Background()
	b := inventoryFixture(t)
	// Far from every backup: a full listing sees it, a scoped one must not.
	far := wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: wal.Segment{Timeline: 2, Log: 9, Seg: 1}}
	putRaw(t, b, repository.WALKey(far, repository.LZ4), "x")

	full, err := repository.LoadInventory(ctx, b, repository.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c storage.Counter
	scoped, err := repository.LoadInventory(ctx, storage.Count(b, &c), repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := backupStatuses(scoped), backupStatuses(full); !reflect.DeepEqual(got, want) {
		t.Errorf("backups listed scoped:\n got %+v\nwant %+v (as a full listing)", got, want)
	}
	for i, bk := range scoped.Backups {
		if want := full.Backups[i]; bk.ID != want.ID || len(bk.Objects) != len(want.Objects) || len(bk.Marks) != len(want.Marks) || (bk.Manifest == nil) != (want.Manifest == nil) {
			t.Errorf("backup %s scoped: %+v, want %+v", bk.ID, bk, want)
		}
	}
	if n := scoped.WALFiles; n == 0 || n >= full.WALFiles {
		t.Errorf("scoped listing saw %d WAL files, the full one %d: want some, fewer", n, full.WALFiles)
	}
	if scoped.NewestSegment != nil && scoped.NewestSegment.File == far {
		t.Errorf("scoped listing listed %s, which no backup needs", far)
	}
	if got := c.Counts(); got.List < 2 || got.Listed >= int64(len(full.Backups)*4)+full.WALFiles {
		t.Errorf("scoped listing: %+v; want backups/ and the backups' WAL, not every object", got)
	}
	// Options that need all of wal/ override it.
	all, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true, WALObjects: true})
	if err != nil {
		t.Fatal(err)
	}
	if all.WALFiles != full.WALFiles {
		t.Errorf("BackupsOnly with WALObjects saw %d WAL files, want all %d", all.WALFiles, full.WALFiles)
	}
}

// overlapProbe holds the read of walvault.json until a listing starts (or
// patience runs out) and records whether one did.
type overlapProbe struct {
	storage.Backend
	listing    chan struct{}
	once       sync.Once
	overlapped bool
}

func (o *overlapProbe) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	o.once.Do(func() { close(o.listing) })
	return o.Backend.List(ctx, prefix, fn)
}

func (o *overlapProbe) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if key == repository.IdentityKey {
		select {
		case <-o.listing:
			o.overlapped = true
		case <-time.After(300 * time.Millisecond):
		}
	}
	return o.Backend.Get(ctx, key)
}

// TestLoadInventoryBackupsOnlyReadsIdentityWhileListing: listing backups/
// needs no segment size, so walvault.json is read meanwhile, a round trip
// less before a restore's first byte.
func TestLoadInventoryBackupsOnlyReadsIdentityWhileListing(t *testing.T) {
	probe := &overlapProbe{Backend: inventoryFixture(t), listing: make(chan struct{})}
	inv, err := repository.LoadInventory(context.Background(), probe, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !probe.overlapped {
		t.Error("walvault.json was read before the listing started, not during it")
	}
	if inv.Identity == nil || inv.WAL == nil || len(inv.Backups) == 0 || inv.Backups[0].Status() != repository.StatusDone {
		t.Errorf("identity %+v, backups %+v", inv.Identity, inv.Backups)
	}
}

// listingProbe holds the listing of backups/ until the manifest named key
// is being read (or patience runs out) and records whether it was.
type listingProbe struct {
	storage.Backend
	key        string
	reading    chan struct{}
	once       sync.Once
	overlapped bool
}

func (p *listingProbe) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if key == p.key {
		p.once.Do(func() { close(p.reading) })
	}
	return p.Backend.Get(ctx, key)
}

func (p *listingProbe) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == repository.BackupsPrefix {
		select {
		case <-p.reading:
			p.overlapped = true
		case <-time.After(300 * time.Millisecond):
		}
	}
	return p.Backend.List(ctx, prefix, fn)
}

// TestLoadInventoryReadsAheadWhileListing: the manifest of a backup named
// in ReadAhead is read while backups/ is listed (a round trip less for a
// restore of a named backup), and the inventory is the one a load without
// it gives; names of no backup change nothing.
func TestLoadInventoryReadsAheadWhileListing(t *testing.T) {
	ctx := context.Background()
	b := inventoryFixture(t)
	want, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	const id = "20261125T110000Z"
	probe := &listingProbe{Backend: b, key: repository.BackupManifestKey(id), reading: make(chan struct{})}
	got, err := repository.LoadInventory(ctx, probe, repository.LoadOptions{BackupsOnly: true, ReadAhead: []string{id, "20300101T000000Z", "../x", id}})
	if err != nil {
		t.Fatal(err)
	}
	if !probe.overlapped {
		t.Errorf("the manifest of %s was not read while backups/ was listed", id)
	}
	if g, w := backupStatuses(got), backupStatuses(want); !reflect.DeepEqual(g, w) {
		t.Errorf("backups with read-ahead:\n got %+v\nwant %+v", g, w)
	}
	for i, bk := range got.Backups {
		if w := want.Backups[i]; !reflect.DeepEqual(bk.Manifest, w.Manifest) {
			t.Errorf("backup %s manifest read ahead: %+v, want %+v", bk.ID, bk.Manifest, w.Manifest)
		}
	}
}

// TestWriteBackupManifestAgain: a manifest write whose first answer was
// lost is sent again and finds its own manifest stored: that is success;
// a different manifest under the same backup id is not.
func TestWriteBackupManifestAgain(t *testing.T) {
	b := mem.New()
	m := manifest("20261125T100000Z", segName(1, 2), segName(1, 3))
	for i := range 2 {
		if err := repository.WriteBackupManifest(t.Context(), b, m, nil); err != nil {
			t.Fatalf("write %d of the same manifest: %v", i+1, err)
		}
	}
	other := m
	other.Label = "another"
	if err := repository.WriteBackupManifest(t.Context(), b, other, nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("another manifest under the same id: %v; want ErrExists", err)
	}
}

// versionsProbe holds the listing of backups/ until the versions of the
// manifest named key are being listed (or patience runs out) and records
// whether they were, and counts those listings.
type versionsProbe struct {
	*mem.Backend
	key        string
	asked      chan struct{}
	once       sync.Once
	overlapped bool
	calls      atomic.Int64
}

func (p *versionsProbe) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	if key == p.key {
		p.calls.Add(1)
		p.once.Do(func() { close(p.asked) })
	}
	return p.Backend.Versions(ctx, key)
}

func (p *versionsProbe) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == repository.BackupsPrefix {
		select {
		case <-p.asked:
			p.overlapped = true
		case <-time.After(300 * time.Millisecond):
		}
	}
	return p.Backend.List(ctx, prefix, fn)
}

// TestManifestVersionsReadAhead: on a storage that keeps versions, the
// versions of a manifest named in ReadAhead are listed while backups/ is
// (restore judges a backup by its manifest's first version: a round trip
// less in series), ManifestVersions gives that listing once, and a later
// call lists again.
func TestManifestVersionsReadAhead(t *testing.T) {
	ctx := t.Context()
	const id = "20261125T110000Z"
	key := repository.BackupManifestKey(id)
	probe := &versionsProbe{Backend: mem.New(), key: key, asked: make(chan struct{})}
	if _, err := repository.EnsureIdentity(ctx, probe.Backend, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created), nil); err != nil {
		t.Fatal(err)
	}
	if err := repository.WriteBackupManifest(ctx, probe.Backend, manifest(id, segName(1, 2), segName(1, 3)), nil); err != nil {
		t.Fatal(err)
	}
	inv, err := repository.LoadInventory(ctx, probe, repository.LoadOptions{BackupsOnly: true, ReadAhead: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if !probe.overlapped {
		t.Errorf("the versions of %s were not listed while backups/ was", key)
	}
	for call := int64(1); call <= 2; call++ {
		vs, err := inv.ManifestVersions(ctx, probe, id)
		if err != nil || len(vs) != 1 {
			t.Errorf("call %d: %d versions, %v; want 1", call, len(vs), err)
		}
		if n := probe.calls.Load(); n != call {
			t.Errorf("after call %d, %d version listings; want %d (the one read ahead, then one per call)", call, n, call)
		}
	}
}
