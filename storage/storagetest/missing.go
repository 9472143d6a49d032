package storagetest

import (
	"errors"
	"testing"

	"github.com/walvault/walvault/storage"
)

// testNotFound: Get, Stat and Delete of missing keys give ErrNotFound, in an
// empty repository, beside an object, and under missing "directories".
func testNotFound(t *testing.T, s *suite) {
	checkMissing := func() {
		for _, key := range []string{
			"missing",
			"wal/00000001/000000010000000000000009.lz4",
			"wal/00000001/00000001000000000000000",  // a prefix of an object's key
			"wal/00000001/000000010000000000000001", // the object's key without suffix
			"no/such/deep/key",
		} {
			checkNotFound(t, s, key)
			if err := s.b.Delete(s.ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Delete(%q): got error %v, want one matching storage.ErrNotFound", key, err)
			}
		}
	}
	checkMissing()
	mustPut(t, s, "wal/00000001/000000010000000000000001.lz4", []byte("x"), storage.PutOptions{Size: 1})
	checkMissing()
	checkObject(t, s, "wal/00000001/000000010000000000000001.lz4", []byte("x"), nil)
}

// testDelete: after Delete an object is gone for Get, Stat, List and a
// second Delete, and the key can be created again.
func testDelete(t *testing.T, s *suite) {
	key := "wal/00000001/000000010000000000000006.lz4"
	keep := "wal/00000001/000000010000000000000007.lz4"
	mustPut(t, s, key, []byte("to delete"), storage.PutOptions{Size: -1, Metadata: map[string]string{"a": "b"}})
	mustPut(t, s, keep, []byte("to keep"), storage.PutOptions{Size: -1})
	if err := s.b.Delete(s.ctx, key); err != nil {
		t.Fatalf("Delete(%q): got %v, want nil", key, err)
	}
	checkNotFound(t, s, key)
	if err := s.b.Delete(s.ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete(%q): got error %v, want one matching storage.ErrNotFound", key, err)
	}
	if got := listKeys(t, s, ""); len(got) != 1 || got[0] != keep {
		t.Errorf(`List("") after Delete: got %q, want [%q]`, got, keep)
	}
	checkObject(t, s, keep, []byte("to keep"), nil)

	again := []byte("created again")
	mustPut(t, s, key, again, storage.PutOptions{IfNotExists: true, Size: int64(len(again))})
	checkObject(t, s, key, again, nil)
}
