package storagetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// testRetentionUnsupported: a backend without Object Lock refuses a Put with
// Retention (ErrUnsupported) rather than store an unlocked object, and
// stores nothing.
func testRetentionUnsupported(t *testing.T, s *suite) {
	key := "wal/00000001/00000001000000000000000D.lz4"
	ret := &storage.Retention{Mode: storage.Governance, Until: time.Now().Add(s.opts.RetentionPeriod)}
	for _, ifNotExists := range []bool{false, true} {
		err := s.b.Put(s.ctx, key, bytes.NewReader([]byte("locked?")), storage.PutOptions{IfNotExists: ifNotExists, Size: 7, Retention: ret})
		if !errors.Is(err, storage.ErrUnsupported) {
			t.Errorf("Put(%q, Retention, IfNotExists=%v) on a backend without Object Lock: got error %v, want one matching storage.ErrUnsupported", key, ifNotExists, err)
		}
		checkNotFound(t, s, key)
	}
	checkEmpty(t, s)
}

// testRetentionLocked: an object put with GOVERNANCE retention reports its
// retain-until date and cannot be deleted before it.
//
// What the suite expects of Delete, explicitly: Delete of an object under
// retention returns an error matching storage.ErrLocked AND the object stays
// readable, body and metadata. On a versioned S3 bucket a DELETE without a
// version id "succeeds" by adding a delete marker, which hides the locked
// object (Get would say not found) while keeping its bytes; that is not a
// delete and would break the contract both ways (a success that deleted
// nothing, then ErrNotFound for an object that is still there). So the S3
// backend must delete by version id (or check retention first) and translate
// the refusal into ErrLocked.
func testRetentionLocked(t *testing.T, s *suite) {
	key := "wal/00000001/00000001000000000000000E.lz4"
	body := []byte("locked segment")
	md := map[string]string{"sha256": "abc", "timeline": "1"}
	// Whole seconds: S3 stores retain-until with second precision.
	until := time.Now().Add(s.opts.RetentionPeriod).Truncate(time.Second).UTC()
	mustPut(t, s, key, body, storage.PutOptions{
		IfNotExists: true,
		Size:        int64(len(body)),
		Metadata:    md,
		Retention:   &storage.Retention{Mode: storage.Governance, Until: until},
	})
	info := mustStat(t, s, key)
	if d := info.RetainUntil.Sub(until).Abs(); info.RetainUntil.IsZero() || d > time.Second {
		t.Errorf("Stat(%q): RetainUntil: got %v, want %v (within 1s)", key, info.RetainUntil, until)
	}
	checkObject(t, s, key, body, md)

	err := s.b.Delete(s.ctx, key)
	if !errors.Is(err, storage.ErrLocked) {
		t.Errorf("Delete(%q) under retention until %v: got error %v, want one matching storage.ErrLocked", key, until, err)
	}
	checkObject(t, s, key, body, md) // still there, not hidden behind a delete marker
	if got := listKeys(t, s, ""); len(got) != 1 || got[0] != key {
		t.Errorf(`List("") after refused Delete: got %q, want [%q]`, got, key)
	}
}
