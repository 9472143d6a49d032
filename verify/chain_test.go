package verify

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// putIncremental stores an incremental backup on parent over segments 4-5.
func (f *fixture) putIncremental(t *testing.T, id, parent string) {
	t.Helper()
	m := repository.BackupManifest{
		FormatVersion: repository.IncrementalFormatVersion, ID: id, SystemID: testSysID, PGVersion: 170002,
		WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1,
		StartWAL: wal.Segment{Timeline: 1, Seg: 4}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: 5}.String(),
		Type: repository.BackupIncremental, Parent: parent,
	}
	repotest.WriteBackup(t, f.b, repotest.Backup{
		Manifest:   m,
		Archives:   []repotest.Archive{{Name: "base.tar", Data: []byte(id + " incremental tar")}},
		PGManifest: []byte(`{"PostgreSQL-Backup-Manifest-Version": 2}`),
	})
}

// TestChains: an incremental on a present DONE backup is healthy; one
// whose parent is gone is a broken_chain problem naming that parent.
func TestChains(t *testing.T) {
	f := newFixture(t)
	f.putIncremental(t, "20991231T000000Z", testBackup)
	if r := run(t, f.b, false); !r.OK || len(r.Problems) != 0 {
		t.Fatalf("a whole chain: problems %v\n%s", kinds(r.Problems), text(t, r))
	}
	const orphan, gone = "20991231T000001Z", "20991230T000000Z"
	f.putIncremental(t, orphan, gone)
	p := wantOnly(t, run(t, f.b, false), KindBrokenChain, repository.BackupManifestKey(orphan))
	if p.BackupID != orphan || !strings.Contains(p.Detail, gone) {
		t.Fatalf("finding %+v, want backup %s and its missing parent %s named", p, orphan, gone)
	}
}

// TestChainOnDamagedPart: a truncated part of the parent is its own
// part_size problem, and the incremental on it cannot be restored either:
// a broken_chain problem naming the parent DAMAGED and the part.
func TestChainOnDamagedPart(t *testing.T) {
	f := newFixture(t)
	const child = "20991231T000000Z"
	f.putIncremental(t, child, testBackup)
	key := f.m.Archives[0].Parts[0].Key
	if err := f.b.Put(context.Background(), key, strings.NewReader("short"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	r := run(t, f.b, false)
	got := kinds(r.Problems)
	want := []string{KindPartSize + " " + key, KindBrokenChain + " " + repository.BackupManifestKey(child)}
	if !slices.Equal(got, want) {
		t.Fatalf("problems %v, want %v\n%s", got, want, text(t, r))
	}
	if d := r.Problems[1].Detail; !strings.Contains(d, testBackup+", which is DAMAGED: part "+key+" has 5 bytes") {
		t.Errorf("broken_chain detail %q, want it to name %s DAMAGED by %s", d, testBackup, key)
	}
}

// TestChainOnCorruptPart: a part of the parent whose bytes --full reads
// corrupt (its size intact) makes the incremental on it a broken_chain
// problem too: restore would meet the part when it applies the chain.
func TestChainOnCorruptPart(t *testing.T) {
	f := newFixture(t)
	const child = "20991231T000000Z"
	f.putIncremental(t, child, testBackup)
	key := f.m.Archives[0].Parts[0].Key
	rc, _, err := f.b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)/2] ^= 0xFF
	if err := f.b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	r := run(t, f.b, true)
	var chain *Finding
	for i, p := range r.Problems {
		if p.Kind == KindBrokenChain && p.BackupID == child {
			chain = &r.Problems[i]
		}
	}
	if chain == nil || !strings.Contains(chain.Detail, testBackup+", which is DAMAGED") {
		t.Fatalf("problems %v, want a broken_chain for %s naming %s\n%s", kinds(r.Problems), child, testBackup, text(t, r))
	}
	for _, b := range r.Backups {
		if b.ID == child && b.Status != "PROBLEM" {
			t.Errorf("the incremental on a corrupt parent: status %s, want PROBLEM", b.Status)
		}
	}
}

// TestBackupsMisordered: two backups whose times are in another order
// than their WAL positions (a backup host's clock was behind) are a
// warning naming both, as every policy delete refuses to run meanwhile
// (explore23c F4).
func TestBackupsMisordered(t *testing.T) {
	f := newFixture(t)
	for _, b := range []struct {
		id  string
		seg uint32
	}{{"20261126T000000Z", 3}, {"20261127T000000Z", 2}} { // the later by time starts earlier
		s := wal.Segment{Timeline: 1, Seg: b.seg}
		repotest.WriteBackup(t, f.b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.FormatVersion, ID: b.id, SystemID: testSysID, PGVersion: 150010,
				WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1,
				StartLSN: wal.LSN(uint64(b.seg)*testSegSize + 0x28).String(), StopLSN: wal.LSN(uint64(b.seg)*testSegSize + 0x100).String(),
				StartWAL: s.String(), StopWAL: s.String(),
			},
			Archives:   []repotest.Archive{{Name: "base.tar", Data: []byte(b.id + " tar")}},
			PGManifest: []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`),
		})
	}
	r := run(t, f.b, false)
	found := false
	for _, w := range r.Warnings {
		found = found || w.Kind == KindBackupsMisordered && strings.Contains(w.Detail, "backup 20261127T000000Z is newer than backup 20261126T000000Z by its time, but older by its WAL position")
	}
	if !found {
		t.Errorf("misordered backups: warnings %v, want %s naming both\n%s", kinds(r.Warnings), KindBackupsMisordered, text(t, r))
	}
}
