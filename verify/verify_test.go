package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

const (
	testSegSize = wal.MinSegmentSize // 1 MiB segments keep the fixture small
	testSysID   = "7312345678901234567"
	testBackup  = "20261125T103000Z"
)

// fixture is a small, healthy repository on the file backend: segments 1
// to 6 on timeline 1 and one backup from segment 2 to 3.
type fixture struct {
	b    storage.Backend
	keys map[string]string // segment name -> key
	m    repository.BackupManifest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b, _ := filetest.New(t)
	return fixtureOn(t, b, testIdentity(), 6)
}

// testIdentity is the fixtures' walvault.json.
func testIdentity() repository.Identity {
	return repository.NewIdentity(7312345678901234567, testSegSize, 15, repository.LZ4, "test", time.Now())
}

// fixtureOn writes the fixture into b: identity id, segments 1 to last of
// timeline 1, and backup testBackup over segments 2 and 3.
func fixtureOn(t *testing.T, b storage.Backend, id repository.Identity, last uint32) *fixture {
	t.Helper()
	repotest.Init(t, b, id)
	f := &fixture{b: b, keys: map[string]string{}}
	for n := uint32(1); n <= last; n++ {
		f.putSegment(t, wal.Segment{Timeline: 1, Seg: n}, segmentBody(n))
	}
	f.m = f.putBackup(t, testBackup, 2, 3)
	return f
}

// segmentBody is a segment's raw content: the long header of segment n
// (timeline 1, which a later timeline's segment may name too), then
// compressible bytes, different for every segment.
func segmentBody(n uint32) []byte {
	h := wal.Header{Magic: 0xD110, Info: 0x0002, Timeline: 1, PageAddr: wal.LSN(n) * testSegSize,
		SystemID: 7312345678901234567, SegmentSize: testSegSize, BlockSize: 8192}
	hdr, err := h.MarshalBinary()
	if err != nil {
		panic(err)
	}
	body := append(hdr, bytes.Repeat([]byte(fmt.Sprintf("segment %08X ", n)), testSegSize/17+1)...)
	return body[:testSegSize]
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fixture) putSegment(t *testing.T, s wal.Segment, raw []byte) string {
	t.Helper()
	key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: s.Timeline, Segment: s}, repository.LZ4)
	repotest.PutWAL(t, f.b, key, repository.LZ4, raw, nil)
	f.keys[s.String()] = key
	return key
}

func (f *fixture) putHistory(t *testing.T, tli wal.TimelineID, text string) {
	t.Helper()
	key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None)
	repotest.PutWAL(t, f.b, key, repository.None, []byte(text), nil)
}

func (f *fixture) putPart(t *testing.T, key string, c repository.Compression, raw []byte) repository.BackupPart {
	t.Helper()
	return repotest.PutPart(t, f.b, key, c, raw, nil)
}

func (f *fixture) putBackup(t *testing.T, id string, startSeg, stopSeg uint32) repository.BackupManifest {
	t.Helper()
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, SystemID: testSysID, PGVersion: 150010,
		WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1,
		StartWAL: wal.Segment{Timeline: 1, Seg: startSeg}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: stopSeg}.String(),
	}
	var tar []byte
	partSize := 0
	for i := range 2 {
		part := bytes.Repeat([]byte(fmt.Sprintf("%s tar part %d ", id, i)), 5000)
		partSize = len(part)
		tar = append(tar, part...)
	}
	return repotest.WriteBackup(t, f.b, repotest.Backup{
		Manifest: m, PartSize: partSize,
		Archives:   []repotest.Archive{{Name: "base.tar", Data: tar}},
		PGManifest: []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`),
	})
}

// rewrite replaces an object's body, keeping its metadata: what bit rot or
// a hostile overwrite leaves.
func (f *fixture) rewrite(t *testing.T, key string, body []byte) {
	t.Helper()
	info, err := f.b.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Metadata: info.Metadata}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) read(t *testing.T, key string) []byte {
	t.Helper()
	rc, _, err := f.b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *fixture) remove(t *testing.T, key string) {
	t.Helper()
	if err := f.b.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, b storage.Backend, full bool) *Report {
	t.Helper()
	r, err := Run(context.Background(), b, Options{Full: full, Concurrency: 3})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

// kinds lists the findings' kinds and keys, "kind key" each.
func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind+" "+f.Key)
	}
	return out
}

func text(t *testing.T, r *Report) string {
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func wantOnly(t *testing.T, r *Report, kind, key string) Finding {
	t.Helper()
	if len(r.Problems) != 1 || r.Problems[0].Kind != kind || r.Problems[0].Key != key {
		t.Fatalf("problems = %v, want exactly %s %s\n%s", kinds(r.Problems), kind, key, text(t, r))
	}
	if r.OK {
		t.Fatal("report says OK despite a problem")
	}
	return r.Problems[0]
}

func TestHealthyRepository(t *testing.T) {
	f := newFixture(t)
	for _, full := range []bool{false, true} {
		r := run(t, f.b, full)
		if !r.OK || len(r.Problems) != 0 || len(r.Warnings) != 0 {
			t.Fatalf("full=%v: a healthy repository: problems %v, warnings %v\n%s", full, kinds(r.Problems), kinds(r.Warnings), text(t, r))
		}
		if r.Summary.WALObjects != 6 || r.Summary.Backups != 1 || r.Summary.Timelines != 1 {
			t.Errorf("full=%v: summary = %+v, want 6 WAL objects, 1 backup, 1 timeline", full, r.Summary)
		}
		if full && r.Summary.ObjectsRead != 6+3 {
			t.Errorf("--full read %d objects, want 9 (6 segments, 2 parts, backup_manifest)", r.Summary.ObjectsRead)
		}
		out := text(t, r)
		for _, want := range []string{"OK: timeline 1: WAL continuous from 000000010000000000000002 to 000000010000000000000006", "OK: backup " + testBackup, "summary: repository is healthy: 0 problems"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if notRead := strings.Contains(out, "contents not read: --full checks"); notRead == full {
			t.Errorf("full=%v: the summary must say contents were not read exactly when --full is off:\n%s", full, out)
		}
		if b := r.Backups[0]; b.Status != "OK" || b.Parts != 2 || b.StartWAL != f.m.StartWAL {
			t.Errorf("backup report = %+v", b)
		}
	}
}

func TestDeletedSegment(t *testing.T) {
	f := newFixture(t)
	name := wal.Segment{Timeline: 1, Seg: 4}.String()
	f.remove(t, f.keys[name])
	p := wantOnly(t, run(t, f.b, false), KindWALGap, f.keys[name])
	if p.MissingFirst != name || p.MissingCount != 1 || len(p.Missing) != 1 || p.Missing[0] != name || !strings.Contains(p.Detail, name) {
		t.Fatalf("gap finding = %+v, want %s named", p, name)
	}
}

func TestDeletedSegmentInsideBackup(t *testing.T) {
	f := newFixture(t)
	name := wal.Segment{Timeline: 1, Seg: 3}.String() // the backup's stop segment
	f.remove(t, f.keys[name])
	r := run(t, f.b, false)
	wantOnly(t, r, KindWALGap, f.keys[name])
	if r.Backups[0].Status != "PROBLEM" {
		t.Fatalf("backup status = %s, want PROBLEM: its WAL has a gap", r.Backups[0].Status)
	}
}

func TestCorruptedSegmentFull(t *testing.T) {
	f := newFixture(t)
	key := f.keys[wal.Segment{Timeline: 1, Seg: 5}.String()]
	// Valid lz4 of other bytes, same metadata: only a re-read finds it.
	other := segmentBody(5)
	other[1000] ^= 0xFF
	f.rewrite(t, key, repotest.Compress(t, repository.LZ4, other))
	if r := run(t, f.b, false); !r.OK {
		t.Fatalf("without --full the listing looks fine, want OK: %v", kinds(r.Problems))
	}
	p := wantOnly(t, run(t, f.b, true), KindWALChecksum, key)
	if !strings.Contains(p.Detail, "sha256") {
		t.Errorf("detail should name the checksum: %s", p.Detail)
	}

	// Garbage that is not lz4 at all.
	f.rewrite(t, key, []byte("not an lz4 frame"))
	p = wantOnly(t, run(t, f.b, true), KindWALChecksum, key)
	if !strings.Contains(p.Detail, "decompress") {
		t.Errorf("detail should say it does not decompress: %s", p.Detail)
	}
}

// TestAnotherSegmentsObjectFull: another segment's object copied over a
// key with its metadata passes the size and sha256 checks; its header
// names the other segment (or another cluster), and wal-fetch refuses it,
// so --full reports it.
func TestAnotherSegmentsObjectFull(t *testing.T) {
	f := newFixture(t)
	key := f.keys[wal.Segment{Timeline: 1, Seg: 5}.String()]
	copyOver := func(raw []byte) {
		t.Helper()
		if err := f.b.Delete(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		repotest.PutWAL(t, f.b, key, repository.LZ4, raw, nil)
	}
	copyOver(segmentBody(4))
	if r := run(t, f.b, false); !r.OK {
		t.Fatalf("without --full the listing looks fine, want OK: %v", kinds(r.Problems))
	}
	p := wantOnly(t, run(t, f.b, true), KindWALHeader, key)
	if !strings.Contains(p.Detail, "header page address 0/400000, file name says 0/500000") {
		t.Errorf("detail should name both addresses: %s", p.Detail)
	}

	foreign := segmentBody(5)
	binary.LittleEndian.PutUint64(foreign[24:], 7000000000000000001) // xlp_sysid
	copyOver(foreign)
	p = wantOnly(t, run(t, f.b, true), KindWALHeader, key)
	if !strings.Contains(p.Detail, "its header says cluster 7000000000000000001, the repository's is 7312345678901234567") {
		t.Errorf("detail should name both clusters: %s", p.Detail)
	}
}

func TestSegmentWithoutMetadataFull(t *testing.T) {
	f := newFixture(t)
	key := f.keys[wal.Segment{Timeline: 1, Seg: 2}.String()]
	body := f.read(t, key)
	if err := f.b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	wantOnly(t, run(t, f.b, true), KindWALMetadata, key)
}

func TestPartWithWrongSize(t *testing.T) {
	f := newFixture(t)
	part := f.m.Archives[0].Parts[1]
	f.rewrite(t, part.Key, append(f.read(t, part.Key), 0))
	r := run(t, f.b, false)
	p := wantOnly(t, r, KindPartSize, part.Key)
	if p.BackupID != testBackup || r.Backups[0].Status != "PROBLEM" {
		t.Fatalf("finding %+v, backup %+v: want the backup named and marked PROBLEM", p, r.Backups[0])
	}
}

func TestMissingPart(t *testing.T) {
	f := newFixture(t)
	for _, key := range []string{f.m.Archives[0].Parts[0].Key, f.m.PGManifest.Key} {
		t.Run(key, func(t *testing.T) {
			f := newFixture(t)
			f.remove(t, key)
			wantOnly(t, run(t, f.b, false), KindPartMissing, key)
		})
	}
}

func TestCorruptedPartFull(t *testing.T) {
	f := newFixture(t)
	part := f.m.Archives[0].Parts[0]
	raw := bytes.Repeat([]byte(fmt.Sprintf("%s tar part %d ", testBackup, 0)), 5000)
	raw[10] = 'X' // same length, and lz4 output of the same size is likely but not certain
	body := repotest.Compress(t, repository.LZ4, raw)
	f.rewrite(t, part.Key, body)
	r := run(t, f.b, true)
	if int64(len(body)) != part.StoredSize {
		wantOnly(t, r, KindPartSize, part.Key)
		return
	}
	wantOnly(t, r, KindPartChecksum, part.Key)
}

func TestIncompleteBackupIsAWarning(t *testing.T) {
	f := newFixture(t)
	f.putPart(t, repository.BackupPartKey("20261125T110000Z", "base.tar", 0, repository.LZ4), repository.LZ4, []byte("interrupted"))
	r := run(t, f.b, false)
	if !r.OK || len(r.Warnings) != 1 || r.Warnings[0].Kind != KindIncomplete || r.Warnings[0].BackupID != "20261125T110000Z" {
		t.Fatalf("want OK with one incomplete_backup warning: problems %v, warnings %v", kinds(r.Problems), kinds(r.Warnings))
	}
	if r.Backups[1].Status != "INCOMPLETE" {
		t.Errorf("status = %s, want INCOMPLETE", r.Backups[1].Status)
	}
}

func TestInvalidManifest(t *testing.T) {
	f := newFixture(t)
	key := repository.BackupManifestKey("20261125T120000Z")
	if err := f.b.Put(context.Background(), key, strings.NewReader("{not json"), storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	wantOnly(t, run(t, f.b, false), KindManifestInvalid, key)
}

func TestStrays(t *testing.T) {
	f := newFixture(t)
	for _, key := range []string{"notes.txt", "wal/00000001/readme", "backups/latest", repository.BackupPrefix(testBackup) + "extra.bin", "check/probe-1"} {
		if err := f.b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, f.b, false)
	got := kinds(r.Warnings)
	sort.Strings(got)
	want := []string{"stray backups/20261125T103000Z/extra.bin", "stray backups/latest", "stray notes.txt", "stray wal/00000001/readme"}
	if !r.OK || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("warnings = %v, want %v (and check/ is walvault's own)", got, want)
	}
}

func TestNoIdentity(t *testing.T) {
	b, _ := filetest.New(t)
	wantOnly(t, run(t, b, false), KindNoIdentity, repository.IdentityKey)
}

func TestTimelineSwitch(t *testing.T) {
	f := newFixture(t)
	// Promotion in segment 7: timeline 1 ends with a partial, timeline 2
	// begins with segment 7.
	f.putHistory(t, 2, "1\t0/700100\tno recovery target specified\n") // 1 MiB segments
	partial := segmentBody(7)
	partialKey := repository.WALKey(wal.FileName{Kind: wal.KindPartial, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 7}}, repository.LZ4)
	repotest.PutWAL(t, f.b, partialKey, repository.LZ4, partial, nil)
	for n := uint32(7); n <= 8; n++ {
		f.putSegment(t, wal.Segment{Timeline: 2, Seg: n}, segmentBody(n))
	}
	r := run(t, f.b, true)
	if !r.OK || len(r.Warnings) != 0 {
		t.Fatalf("a clean timeline switch: problems %v, warnings %v\n%s", kinds(r.Problems), kinds(r.Warnings), text(t, r))
	}
	if len(r.Timelines) != 2 || r.Timelines[0].Partials != 1 || r.Timelines[1].Parent != 1 || r.Timelines[1].SwitchLSN != "0/700100" {
		t.Fatalf("timelines = %+v", r.Timelines)
	}
	// Without the history file, recovery could not follow the switch.
	f.remove(t, "wal/00000002.history")
	wantOnly(t, run(t, f.b, false), KindMissingHistory, "wal/00000002.history")
}

func TestHiddenObjects(t *testing.T) {
	f := newFixture(t)
	// A versioned storage's view of the file backend: keys "deleted"
	// without a version id are hidden. Through the retry decorator, as the
	// command opens it.
	h := storagetest.NewFault(f.b)
	b := storage.WithRetry(h.Versioned(), storage.DefaultRetryPolicy, nil)
	if r := run(t, b, false); !r.OK || !strings.Contains(text(t, r), "no object is hidden") {
		t.Fatalf("nothing hidden yet: %v\n%s", kinds(r.Problems), text(t, r))
	}
	seg := f.keys[wal.Segment{Timeline: 1, Seg: 4}.String()]
	h.Hide(seg)
	p := wantOnly(t, run(t, b, false), KindHidden, seg)
	if !strings.Contains(p.Detail, "walvault repair") {
		t.Errorf("a hidden object's finding should say to run walvault repair: %s", p.Detail)
	}
	part := f.m.Archives[0].Parts[0].Key
	h.Hide(part)
	r := run(t, b, false)
	if got := kinds(r.Problems); len(got) != 2 || r.Problems[0].Kind != KindHidden || r.Problems[1].Kind != KindHidden {
		t.Fatalf("problems = %v, want the two hidden objects only (no gap, no missing part)", got)
	}
	if r.Backups[0].Status != "PROBLEM" {
		t.Errorf("backup with a hidden part: status %s, want PROBLEM", r.Backups[0].Status)
	}
}

func TestJSONSchema(t *testing.T) {
	f := newFixture(t)
	f.remove(t, f.keys[wal.Segment{Timeline: 1, Seg: 5}.String()])
	var buf bytes.Buffer
	if err := run(t, f.b, false).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Repository string `json:"repository"`
		OK         *bool  `json:"ok"`
		Summary    struct {
			Problems int `json:"problems"`
		} `json:"summary"`
		Problems []map[string]any `json:"problems"`
		Warnings []map[string]any `json:"warnings"`
		Backups  []map[string]any `json:"backups"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if doc.OK == nil || *doc.OK || doc.Summary.Problems != 1 || len(doc.Problems) != 1 || doc.Warnings == nil {
		t.Fatalf("document = %s", buf.String())
	}
	p := doc.Problems[0]
	for _, field := range []string{"kind", "key", "detail", "timeline", "missing_first", "missing_last", "missing_count", "missing"} {
		if _, ok := p[field]; !ok {
			t.Errorf("gap finding lacks %q: %v", field, p)
		}
	}
}

// TestIncompleteUploads: a temp file a crash left (file://'s incomplete
// upload) older than UploadAge is a warning, not a problem; a younger one
// (a write in progress) is not reported.
func TestIncompleteUploads(t *testing.T) {
	b, root := filetest.New(t)
	repotest.Init(t, b, testIdentity())
	dir := filepath.Join(root, "backups", testBackup)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, age := range map[string]time.Duration{".tmp-old": 2 * time.Hour, ".tmp-new": time.Minute} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("half a part"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, time.Now().Add(-age), time.Now().Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Run(t.Context(), b, Options{UploadAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Warnings {
		if f.Kind == KindIncompleteUpload {
			got = append(got, f.Key)
		}
	}
	if strings.Join(got, " ") != "backups/"+testBackup+"/.tmp-old" || r.Summary.IncompleteUploads != 1 {
		t.Errorf("incomplete_upload warnings: got %q (summary %d), want the old temp file only", got, r.Summary.IncompleteUploads)
	}
	for _, f := range r.Problems {
		if f.Kind == KindIncompleteUpload {
			t.Errorf("an incomplete upload reported as a problem: %+v", f)
		}
	}
}

// TestOverwrittenWAL: a WAL key that holds a second data version in a
// versioned storage was written over by someone else (walvault writes each
// once): a wal_overwritten problem, even when the newer version is a
// consistent segment of its own.
func TestOverwrittenWAL(t *testing.T) {
	b := repotest.New(t, testIdentity())
	keys := map[uint32]string{}
	for n := uint32(1); n <= 6; n++ {
		s := wal.Segment{Timeline: 1, Seg: n}
		keys[n] = repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.LZ4)
		repotest.PutWAL(t, b, keys[n], repository.LZ4, segmentBody(n), nil)
	}
	if r := run(t, b, false); !r.OK || !strings.Contains(text(t, r), "no WAL or backup object was written over") {
		t.Fatalf("nothing written over yet: %v\n%s", kinds(r.Problems), text(t, r))
	}
	// A plain PUT over the key (no condition), as an intruder sends it.
	info, err := b.Stat(context.Background(), keys[4])
	if err != nil {
		t.Fatal(err)
	}
	body := repotest.Compress(t, repository.LZ4, segmentBody(4))
	if err := b.Put(context.Background(), keys[4], bytes.NewReader(body), storage.PutOptions{Size: int64(len(body)), Metadata: info.Metadata}); err != nil {
		t.Fatal(err)
	}
	p := wantOnly(t, run(t, b, false), KindWALOverwritten, keys[4])
	if !strings.Contains(p.Detail, "2 versions") {
		t.Errorf("finding %q, want it to count the versions", p.Detail)
	}
}

// TestSecondCodecCopy: a segment stored under a second codec's key (put
// beside walvault's by someone else) is a wal_second_copy problem naming
// both keys.
func TestSecondCodecCopy(t *testing.T) {
	f := newFixture(t)
	s := wal.Segment{Timeline: 1, Seg: 4}
	zkey := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.Zstd)
	repotest.PutWAL(t, f.b, zkey, repository.Zstd, segmentBody(4), nil)
	p := wantOnly(t, run(t, f.b, false), KindWALSecondCopy, f.keys[s.String()]+" and "+zkey)
	if !strings.Contains(p.Detail, "two codecs' keys") {
		t.Errorf("finding %q", p.Detail)
	}
}

// listingsBeside is a versioned store whose ListOverwritten waits until the
// inventory's first List is in flight, and that List until ListOverwritten
// is: both at once, or timedOut after five seconds.
type listingsBeside struct {
	*mem.Backend
	mu       sync.Mutex
	arrived  int
	both     chan struct{}
	timedOut bool
}

func (b *listingsBeside) meet() {
	b.mu.Lock()
	b.arrived++
	if b.arrived == 2 {
		close(b.both)
	}
	arrived := b.arrived
	b.mu.Unlock()
	if arrived > 2 {
		return
	}
	select {
	case <-b.both:
	case <-time.After(5 * time.Second):
		b.mu.Lock()
		b.timedOut = true
		b.mu.Unlock()
	}
}

func (b *listingsBeside) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	b.meet()
	return b.Backend.List(ctx, prefix, fn)
}

func (b *listingsBeside) ListOverwritten(ctx context.Context, prefix string, fn func(key string, versions int) error) error {
	b.meet()
	return b.Backend.ListOverwritten(ctx, prefix, fn)
}

// TestOverwrittenListedBesideInventory: the walk over WAL versions for
// overwritten keys does not wait for the inventory's listings.
func TestOverwrittenListedBesideInventory(t *testing.T) {
	inner := repotest.New(t, testIdentity())
	key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 1}}, repository.LZ4)
	repotest.PutWAL(t, inner, key, repository.LZ4, segmentBody(1), nil)
	b := &listingsBeside{Backend: inner, both: make(chan struct{})}
	if r := run(t, b, false); !strings.Contains(text(t, r), "no WAL or backup object was written over") {
		t.Fatalf("verify did not look for overwritten WAL:\n%s", text(t, r))
	}
	if b.timedOut {
		t.Error("the listing of overwritten WAL keys waited for the inventory's listings (or they for it)")
	}
}

// TestOverwrittenBackupManifest: a backup's manifest with a second version
// (put over it with other times, which would steer a point-in-time
// restore) is a backup_overwritten problem of that backup (explore22a F4).
func TestOverwrittenBackupManifest(t *testing.T) {
	b := mem.New()
	f := fixtureOn(t, b, testIdentity(), 6)
	if r := run(t, b, false); !r.OK {
		t.Fatalf("before the overwrite: %v", kinds(r.Problems))
	}
	key := repository.BackupManifestKey(testBackup)
	forged := f.m
	forged.StopTime = forged.StopTime.Add(-time.Hour)
	data, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, b, false)
	p := wantOnly(t, r, KindBackupOverwritten, key)
	if p.BackupID != testBackup || !strings.Contains(p.Detail, "restore judges this backup by the first version") {
		t.Errorf("finding %+v", p)
	}
}

// TestForeignFilesInFileRepository: files put into a file:// repository
// by other tools (a note, an NFS .nfs file: no object header) are strays
// there too, as on S3, not a listing that fails (explore22d F3).
func TestForeignFilesInFileRepository(t *testing.T) {
	b, root := filetest.New(t)
	fixtureOn(t, b, testIdentity(), 3)
	for _, name := range []string{"README.txt", filepath.Join("wal", "00000001", ".nfs000000000123abcd00000001")} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("written by someone else\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, b, false)
	got := kinds(r.Warnings)
	sort.Strings(got)
	if want := []string{"stray README.txt", "stray wal/00000001/.nfs000000000123abcd00000001"}; !r.OK || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("warnings %v, problems %v; want only %v", got, kinds(r.Problems), want)
	}
}
