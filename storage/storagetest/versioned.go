package storagetest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/walvault/walvault/storage"
)

// mustVersioned finds the backend's storage.Versioned, through its
// decorators, or fails the test.
func mustVersioned(t *testing.T, s *suite) storage.Versioned {
	t.Helper()
	v, ok := storage.AsVersioned(s.b)
	if !ok {
		t.Fatalf("storage.AsVersioned(%T): got false, want the backend's versioned calls (Options.Hide is set)", s.b)
	}
	return v
}

func listHidden(t *testing.T, s *suite, v storage.Versioned, prefix string) []string {
	t.Helper()
	var keys []string
	if err := v.ListHidden(s.ctx, prefix, func(h storage.HiddenObject) error {
		keys = append(keys, h.Key)
		return nil
	}); err != nil {
		t.Fatalf("ListHidden(%q): got %v, want nil", prefix, err)
	}
	return keys
}

// testHidden: a key hidden behind a delete marker is absent from Get, Stat
// and List (or, with Options.ReadsHidden, still served by them), listed by
// ListHidden with its size and version, readable by GetHidden, and visible
// again after Unhide. Keys that are not hidden are "not found" to
// GetHidden and Unhide.
func testHidden(t *testing.T, s *suite) {
	v := mustVersioned(t, s)
	visible, hidden := "wal/00000001/000000010000000000000010.lz4", "wal/00000001/000000010000000000000011.lz4"
	body := []byte("hidden segment")
	md := map[string]string{"sha256": "abc"}
	mustPut(t, s, visible, []byte("visible"), storage.PutOptions{Size: 7})
	mustPut(t, s, hidden, body, storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: md})
	s.opts.Hide(t, s.b, hidden)

	if s.opts.ReadsHidden {
		checkObject(t, s, hidden, body, md)
		if got := listKeys(t, s, "wal/"); !slices.Equal(got, []string{visible, hidden}) {
			t.Errorf(`List("wal/") reading through delete markers: got %q, want %q`, got, []string{visible, hidden})
		}
	} else {
		checkNotFound(t, s, hidden)
		if got := listKeys(t, s, "wal/"); !slices.Equal(got, []string{visible}) {
			t.Errorf(`List("wal/") with %s hidden: got %q, want [%q]`, hidden, got, visible)
		}
	}

	var hs []storage.HiddenObject
	if err := v.ListHidden(s.ctx, "wal/", func(h storage.HiddenObject) error {
		hs = append(hs, h)
		return nil
	}); err != nil {
		t.Fatalf(`ListHidden("wal/"): got %v, want nil`, err)
	}
	if len(hs) != 1 || hs[0].Key != hidden || hs[0].Size != int64(len(body)) || hs[0].VersionID == "" {
		t.Errorf(`ListHidden("wal/"): got %+v, want %s alone, size %d, with a version id`, hs, hidden, len(body))
	}

	rc, info, err := v.GetHidden(s.ctx, hidden)
	if err != nil {
		t.Fatalf("GetHidden(%q): got %v, want nil", hidden, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) || info.Size != int64(len(body)) {
		t.Errorf("GetHidden(%q): got %s (size %d), %v; want %s", hidden, describe(got), info.Size, err, describe(body))
	}
	for _, key := range []string{visible, "wal/00000001/000000010000000000000012.lz4"} {
		if _, _, err := v.GetHidden(s.ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetHidden(%q), not hidden: got %v, want storage.ErrNotFound", key, err)
		}
		if err := v.Unhide(s.ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Unhide(%q), not hidden: got %v, want storage.ErrNotFound", key, err)
		}
	}

	if err := v.Unhide(s.ctx, hidden); err != nil {
		t.Fatalf("Unhide(%q): got %v, want nil", hidden, err)
	}
	checkObject(t, s, hidden, body, md)
	if got := listHidden(t, s, v, ""); len(got) != 0 {
		t.Errorf(`ListHidden("") after Unhide: got %q, want none`, got)
	}
	if err := v.Unhide(s.ctx, hidden); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Unhide(%q) again: got %v, want storage.ErrNotFound", hidden, err)
	}
}

// testListHidden: ListHidden keeps key order and the prefix, and stops at
// the first error fn returns.
func testListHidden(t *testing.T, s *suite) {
	v := mustVersioned(t, s)
	keys := []string{"wal/a", "wal/b", "wal/c", "walvault.json", "x/d"}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k), storage.PutOptions{Size: int64(len(k))})
	}
	for _, k := range []string{"x/d", "wal/c", "wal/a", "walvault.json"} {
		s.opts.Hide(t, s.b, k)
	}
	if got, want := listHidden(t, s, v, ""), []string{"wal/a", "wal/c", "walvault.json", "x/d"}; !slices.Equal(got, want) {
		t.Errorf(`ListHidden(""): got %q, want %q`, got, want)
	}
	if got, want := listHidden(t, s, v, "wal/"), []string{"wal/a", "wal/c"}; !slices.Equal(got, want) {
		t.Errorf(`ListHidden("wal/"): got %q, want %q`, got, want)
	}
	errStop := errors.New("storagetest: stop listing")
	calls := 0
	err := v.ListHidden(s.ctx, "", func(storage.HiddenObject) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf(`ListHidden(""), fn failing on its first call: got %v after %d calls, want fn's error after 1`, err, calls)
	}
}

// testVersions: a Put over a key keeps the older version, which Versions
// lists after the newer one and GetVersion reads back with its metadata. A
// key never stored has no versions, and no error.
func testVersions(t *testing.T, s *suite) {
	v := mustVersioned(t, s)
	key := "wal/00000001/000000010000000000000012.lz4"
	orig, over := []byte("genuine segment"), []byte("overwritten")
	md := map[string]string{"sha256": "abc"}
	mustPut(t, s, key, orig, storage.PutOptions{IfNotExists: true, Size: int64(len(orig)), Metadata: md})
	mustPut(t, s, key, over, storage.PutOptions{Size: int64(len(over))})

	vs, err := v.Versions(s.ctx, key)
	if err != nil {
		t.Fatalf("Versions(%q): got %v, want nil", key, err)
	}
	if len(vs) != 2 || vs[0].Size != int64(len(over)) || vs[1].Size != int64(len(orig)) || vs[0].ID == "" || vs[0].ID == vs[1].ID {
		t.Fatalf("Versions(%q): got %+v, want two versions with ids, sizes %d then %d", key, vs, len(over), len(orig))
	}
	rc, info, err := v.GetVersion(s.ctx, key, vs[1].ID)
	if err != nil {
		t.Fatalf("GetVersion(%q, %q): got %v, want nil", key, vs[1].ID, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, orig) || info.Metadata["sha256"] != "abc" {
		t.Errorf("GetVersion(%q, older): got %s, metadata %v, %v; want %s with sha256 abc", key, describe(got), info.Metadata, err, describe(orig))
	}
	if vs, err := v.Versions(s.ctx, "wal/never-stored"); err != nil || len(vs) != 0 {
		t.Errorf(`Versions("wal/never-stored"): got %+v, %v; want none, nil`, vs, err)
	}
}
