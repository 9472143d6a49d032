package storagetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/walvault/walvault/storage"
)

// invalidKeys break the key rules of storage.Backend (and
// storage.ValidateKey).
var invalidKeys = []string{
	"",
	"/a",
	"a/",
	"/",
	"a//b",
	"../x",
	"a/../b",
	"./a",
	"a/.",
	"..",
	`a\b`,
	"a\x00b",
}

// testInvalidKeys: Put refuses malformed keys and stores nothing; Get, Stat
// and Delete refuse them too, and not as ErrNotFound (a malformed key is a
// bug, not an authoritative "absent"). The refusal is permanent
// (storage.IsPermanent): retrying cannot make a key valid.
func testInvalidKeys(t *testing.T, s *suite) {
	for _, key := range invalidKeys {
		for _, opts := range []storage.PutOptions{{Size: 1}, {Size: 1, IfNotExists: true}} {
			err := s.b.Put(s.ctx, key, bytes.NewReader([]byte("x")), opts)
			if err == nil {
				t.Errorf("Put(%q, IfNotExists=%v): got nil, want an invalid-key error", key, opts.IfNotExists)
			} else if !storage.IsPermanent(err) {
				t.Errorf("Put(%q, IfNotExists=%v): got %v, want a permanent error (storage.IsPermanent)", key, opts.IfNotExists, err)
			}
		}
		rc, _, err := s.b.Get(s.ctx, key)
		if rc != nil {
			rc.Close()
		}
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(%q): got error %v, want an invalid-key error that is not storage.ErrNotFound", key, err)
		}
		if _, err := s.b.Stat(s.ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q): got error %v, want an invalid-key error that is not storage.ErrNotFound", key, err)
		}
		if err := s.b.Delete(s.ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete(%q): got error %v, want an invalid-key error that is not storage.ErrNotFound", key, err)
		}
	}
	checkEmpty(t, s)
}
