package verify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestNestedRepository: another walvault repository under a sub-prefix is
// one warning naming it, not a stray per object with the advice to move
// each away.
func TestNestedRepository(t *testing.T) {
	f := newFixture(t)
	for _, k := range []string{"sub/walvault.json", "sub/wal/00000001/000000010000000000000001.lz4", "sub/wal/00000001/000000010000000000000002.lz4"} {
		repotest.Put(t, f.b, k, []byte("x"))
	}
	repotest.Put(t, f.b, "notes.txt", []byte("x"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var nested, strays []string
	for _, w := range r.Warnings {
		switch {
		case w.Kind != KindStray:
		case strings.Contains(w.Detail, "nested"):
			nested = append(nested, w.Detail)
		default:
			strays = append(strays, w.Key)
		}
	}
	if len(nested) != 1 || !strings.Contains(nested[0], "at sub/ (3 objects") {
		t.Errorf("nested warnings %q, want one for sub/ with its 3 objects", nested)
	}
	if len(strays) != 1 || strays[0] != "notes.txt" {
		t.Errorf("strays %q, want notes.txt alone", strays)
	}
	if r.Summary.Strays != 4 {
		t.Errorf("summary counts %d strays, want 4", r.Summary.Strays)
	}
}

// TestSampledWALMetadata: without --full verify still reads the metadata
// of the segment stored last: a repository copied without S3 user
// metadata lists whole but cannot be recovered from.
func TestSampledWALMetadata(t *testing.T) {
	f := newFixture(t)
	key := "wal/00000001/000000010000000000000007.lz4"
	repotest.Put(t, f.b, key, []byte("copied without its metadata"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Kind != KindWALMetadata || r.Problems[0].Key != key || !strings.Contains(r.Problems[0].Detail, "the segment stored last") || !strings.Contains(r.Problems[0].Detail, "drops S3 user metadata") {
		t.Errorf("problems %+v, want one wal_metadata for %s", r.Problems, key)
	}
}

// TestSampledWALMetadataBeyondTheLast: a copy that dropped the metadata
// of large objects only (aws-cli v1 copies those in parts) or of a
// backup's first segment, while the segment stored last kept it, is a
// problem too, naming the segment and why it was read (explore23d F1).
func TestSampledWALMetadataBeyondTheLast(t *testing.T) {
	for _, tc := range []struct {
		name string
		seg  uint32
		body []byte
		why  string
	}{
		{"the largest segment", 4, bytes.Repeat([]byte("large, copied in parts "), 50000), "the largest segment"},
		{"a backup's start", 2, []byte("x"), "where backup " + testBackup + " starts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: tc.seg}}, repository.LZ4)
			if err := f.b.Delete(t.Context(), key); err != nil {
				t.Fatal(err)
			}
			repotest.Put(t, f.b, key, tc.body)
			// The segment stored last, with its metadata.
			f.putSegment(t, wal.Segment{Timeline: 1, Seg: 7}, segmentBody(7))
			r, err := Run(t.Context(), f.b, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Problems) != 1 || r.Problems[0].Kind != KindWALMetadata || r.Problems[0].Key != key || !strings.Contains(r.Problems[0].Detail, tc.why) {
				t.Errorf("problems %+v, want one wal_metadata for %s, %s", r.Problems, key, tc.why)
			}
		})
	}
}

// TestSampledLock: in a repository whose walvault.json records a lock
// policy, sampled segments younger than lock_days that hold no lock (a
// copy into another bucket keeps none) are a warning (explore23d F7).
func TestSampledLock(t *testing.T) {
	id := testIdentity()
	id.LockMode, id.LockDays = storage.Compliance, 7
	f := fixtureOn(t, mem.New(), id, 6)
	r, err := Run(t.Context(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var unlocked []string
	for _, w := range r.Warnings {
		if w.Kind == KindNotLocked {
			unlocked = append(unlocked, w.Key)
		}
	}
	if len(unlocked) != 3 || !strings.Contains(text(t, r), "holds no Object Lock retention") {
		t.Errorf("not_locked warnings for %v, want the segment stored last, the largest and the backup's start\n%s", unlocked, text(t, r))
	}
}

// TestInsideAnotherRepository: a repository whose location ends in a
// folder of walvault's layout (s3://b/db10/backups, file:///outer/wal)
// lies inside another repository, whose objects there are shaped as that
// folder's: one warning that says so, not a stray per object with the
// advice to move it, which would destroy the other cluster's backups
// (explore24c F4).
func TestInsideAnotherRepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db10", "backups")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := fixtureOn(t, filetest.At(t, dir), testIdentity(), 6)
	for _, k := range []string{"20261125T103000Z/backup_manifest", "20261125T103000Z/base.tar.00000.lz4"} {
		repotest.Put(t, f.b, k, []byte("x"))
	}
	repotest.Put(t, f.b, "notes.txt", []byte("x"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var inside, strays []string
	for _, w := range r.Warnings {
		switch {
		case w.Kind != KindStray:
		case strings.Contains(w.Detail, "nested inside another walvault repository"):
			inside = append(inside, w.Detail)
		default:
			strays = append(strays, w.Key)
		}
	}
	if len(inside) != 1 || !strings.Contains(inside[0], "ends in backups/") || !strings.Contains(inside[0], "2 objects") || !strings.Contains(inside[0], "Do not move or delete them") {
		t.Errorf("warnings about the repository around this one: %q, want one for its 2 backup objects", inside)
	}
	if len(strays) != 1 || strays[0] != "notes.txt" {
		t.Errorf("strays %q, want notes.txt alone", strays)
	}
}

// TestInsideAnotherRepositoryWAL: inside another repository's wal/, its
// segments and its timeline history files (top-level keys here) are its
// own, not strays to move (explore24f F2).
func TestInsideAnotherRepositoryWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outer", "wal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := fixtureOn(t, filetest.At(t, dir), testIdentity(), 6)
	for _, k := range []string{"00000002.history", "00000001/000000010000000000000007.lz4"} {
		repotest.Put(t, f.b, k, []byte("x"))
	}
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Warnings {
		if w.Kind == KindStray && !strings.Contains(w.Detail, "nested inside another walvault repository") {
			t.Errorf("stray warning %q: want the outer repository's objects in the one warning", w.Detail)
		}
	}
	if !strings.Contains(text(t, r), "ends in wal/, a folder of walvault's own layout, and 2 objects") {
		t.Errorf("report lacks the warning about the outer repository's 2 objects:\n%s", text(t, r))
	}
}
