package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// mustPut stores body under key or fails the test.
func mustPut(t *testing.T, s *suite, key string, body []byte, opts storage.PutOptions) {
	t.Helper()
	if err := s.b.Put(s.ctx, key, bytes.NewReader(body), opts); err != nil {
		t.Fatalf("Put(%q): got %v, want nil", key, err)
	}
}

// mustGet reads key's whole body through Get's stream and checks that Get's
// info names key and matches the body's length.
func mustGet(t *testing.T, s *suite, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := s.b.Get(s.ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): got %v, want nil", key, err)
	}
	body, err := io.ReadAll(rc)
	if err != nil {
		rc.Close()
		t.Fatalf("Get(%q): reading body: got %v, want nil", key, err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Get(%q): Close: got %v, want nil", key, err)
	}
	if info.Key != key {
		t.Errorf("Get(%q): info.Key: got %q, want %q", key, info.Key, key)
	}
	if info.Size != int64(len(body)) {
		t.Errorf("Get(%q): info.Size: got %d, want %d (the bytes read)", key, info.Size, len(body))
	}
	return body, info
}

// mustStat stats key or fails the test.
func mustStat(t *testing.T, s *suite, key string) storage.ObjectInfo {
	t.Helper()
	info, err := s.b.Stat(s.ctx, key)
	if err != nil {
		t.Fatalf("Stat(%q): got %v, want nil", key, err)
	}
	if info.Key != key {
		t.Errorf("Stat(%q): info.Key: got %q, want %q", key, info.Key, key)
	}
	return info
}

// checkObject checks that key holds body and metadata, through Get and Stat,
// and that Get's info agrees with Stat's.
func checkObject(t *testing.T, s *suite, key string, body []byte, md map[string]string) {
	t.Helper()
	got, ginfo := mustGet(t, s, key)
	if !bytes.Equal(got, body) {
		t.Errorf("Get(%q): body: got %s, want %s", key, describe(got), describe(body))
	}
	if !equalMetadata(ginfo.Metadata, md) {
		t.Errorf("Get(%q): metadata: got %v, want %v", key, ginfo.Metadata, md)
	}
	sinfo := mustStat(t, s, key)
	if sinfo.Size != int64(len(body)) {
		t.Errorf("Stat(%q): Size: got %d, want %d", key, sinfo.Size, len(body))
	}
	if !equalMetadata(sinfo.Metadata, md) {
		t.Errorf("Stat(%q): metadata: got %v, want %v", key, sinfo.Metadata, md)
	}
	checkInfoMatches(t, "Get", ginfo, "Stat", sinfo)
}

// checkInfoMatches checks that two descriptions of one object agree.
func checkInfoMatches(t *testing.T, gotName string, got storage.ObjectInfo, wantName string, want storage.ObjectInfo) {
	t.Helper()
	if got.Key != want.Key || got.Size != want.Size {
		t.Errorf("%s info: got key %q size %d, want %s's key %q size %d", gotName, got.Key, got.Size, wantName, want.Key, want.Size)
	}
	if !got.ModTime.Equal(want.ModTime) {
		t.Errorf("%s info: ModTime: got %v, want %s's %v", gotName, got.ModTime, wantName, want.ModTime)
	}
	// Zero means "unknown" in the contract: some S3 servers send lock
	// headers on HEAD only, and Get must not pay a second request for them.
	if !got.RetainUntil.IsZero() && !got.RetainUntil.Equal(want.RetainUntil) {
		t.Errorf("%s info: RetainUntil: got %v, want %s's %v", gotName, got.RetainUntil, wantName, want.RetainUntil)
	}
	if !equalMetadata(got.Metadata, want.Metadata) {
		t.Errorf("%s info: metadata: got %v, want %s's %v", gotName, got.Metadata, wantName, want.Metadata)
	}
}

// checkModTime checks that a modification time is set and plausible: within
// an hour of the test's clock (a server's clock may differ a little).
func checkModTime(t *testing.T, op string, got time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s: ModTime: got zero, want the time the object was written", op)
		return
	}
	if d := time.Since(got).Abs(); d > time.Hour {
		t.Errorf("%s: ModTime: got %v, want within an hour of now (%v)", op, got, time.Now())
	}
}

// checkNotFound checks that Get and Stat of key give storage.ErrNotFound.
func checkNotFound(t *testing.T, s *suite, key string) {
	t.Helper()
	rc, _, err := s.b.Get(s.ctx, key)
	if rc != nil {
		rc.Close()
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%q): got error %v, want one matching storage.ErrNotFound", key, err)
	}
	if _, err := s.b.Stat(s.ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q): got error %v, want one matching storage.ErrNotFound", key, err)
	}
}

// checkEmpty checks that List finds no object at all.
func checkEmpty(t *testing.T, s *suite) {
	t.Helper()
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf(`List(""): got keys %q, want none`, got)
	}
}

// list collects what List delivers under prefix.
func list(t *testing.T, s *suite, prefix string) []storage.ObjectInfo {
	t.Helper()
	var got []storage.ObjectInfo
	err := s.b.List(s.ctx, prefix, func(oi storage.ObjectInfo) error {
		got = append(got, oi)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): got %v, want nil", prefix, err)
	}
	return got
}

func listKeys(t *testing.T, s *suite, prefix string) []string {
	t.Helper()
	var keys []string
	for _, oi := range list(t, s, prefix) {
		keys = append(keys, oi.Key)
	}
	return keys
}

// equalMetadata compares metadata, a nil map equal to an empty one (as
// maps.Equal has it): backends may return either for "no metadata".
func equalMetadata(a, b map[string]string) bool {
	return maps.Equal(a, b)
}

// describe shows a body in a failure message: short ones in full, long ones
// by length and head.
func describe(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%d bytes starting %q", len(b), b[:32])
}

// sortedCopy returns keys sorted lexically.
func sortedCopy(keys []string) []string {
	c := slices.Clone(keys)
	slices.Sort(c)
	return c
}

// filterPrefix returns the keys that start with prefix, in order.
func filterPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}
