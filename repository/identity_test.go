package repository_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

func newBackend(t *testing.T) *file.Backend {
	t.Helper()
	b, _ := filetest.New(t)
	return b
}

func putRaw(t *testing.T, b storage.Backend, key, body string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatalf("Put(%q): got %v, want nil", key, err)
	}
}

func getRaw(t *testing.T, b storage.Backend, key string) string {
	t.Helper()
	rc, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): got %v, want nil", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return string(data)
}

var created = time.Date(2026, 11, 25, 9, 36, 37, 0, time.UTC)

func sameIdentity(a, b repository.Identity) bool {
	return a.FormatVersion == b.FormatVersion && a.SystemID == b.SystemID &&
		a.WALSegmentSize == b.WALSegmentSize && a.PGMajor == b.PGMajor &&
		a.Compression == b.Compression && a.CreatedAt.Equal(b.CreatedAt) && a.CreatedBy == b.CreatedBy
}

func TestNewIdentity(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 999_000_000, time.FixedZone("CET", 3600))
	got := repository.NewIdentity(18446744073709551615, 1<<20, 15, repository.None, "db-1", now)
	want := repository.Identity{
		FormatVersion:  repository.FormatVersion,
		SystemID:       "18446744073709551615", // max uint64, exact as a decimal string
		WALSegmentSize: 1 << 20,
		PGMajor:        15,
		Compression:    repository.None,
		CreatedAt:      time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC),
		CreatedBy:      "db-1",
	}
	if !sameIdentity(got, want) {
		t.Errorf("NewIdentity: got %+v, want %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("NewIdentity CreatedAt location: got %v, want UTC", got.CreatedAt.Location())
	}
}

func TestLoadIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		in           *string // walvault.json body; nil means absent
		want         repository.Identity
		wantNotFound bool
		wantErr      string // substring; "" means success
	}{
		{
			name:         "absent",
			in:           nil,
			wantNotFound: true,
			wantErr:      "not found",
		},
		{
			name: "valid",
			in:   ptr(`{"format_version":1,"system_identifier":"7712040661191622168","wal_segment_size":16777216,"pg_major":15,"compression":"lz4","created_at":"2026-11-25T09:36:37Z","created_by":"db-1"}`),
			want: repository.Identity{FormatVersion: 1, SystemID: "7712040661191622168", WALSegmentSize: 16 << 20, PGMajor: 15,
				Compression: repository.LZ4, CreatedAt: created, CreatedBy: "db-1"},
		},
		{
			name: "unknown fields are ignored",
			in:   ptr(`{"format_version":1,"system_identifier":"1","wal_segment_size":1048576,"compression":"none","lock":{"mode":"GOVERNANCE"}}`),
			want: repository.Identity{FormatVersion: 1, SystemID: "1", WALSegmentSize: 1 << 20, Compression: repository.None},
		},
		{
			name:    "newer format version",
			in:      ptr(`{"format_version":2,"system_identifier":"1","wal_segment_size":1048576,"compression":"lz4"}`),
			wantErr: "newer than this walvault understands",
		},
		{
			name:    "no system identifier",
			in:      ptr(`{"format_version":1,"wal_segment_size":1048576,"compression":"lz4"}`),
			wantErr: "lacks format_version or system_identifier",
		},
		{
			name:    "empty system identifier",
			in:      ptr(`{"format_version":1,"system_identifier":"","compression":"lz4"}`),
			wantErr: "lacks format_version or system_identifier",
		},
		{
			name:    "no format version",
			in:      ptr(`{"system_identifier":"1","compression":"lz4"}`),
			wantErr: "lacks format_version or system_identifier",
		},
		{
			name:    "JSON null",
			in:      ptr(`null`),
			wantErr: "lacks format_version or system_identifier",
		},
		{
			name:    "system identifier as a JSON number",
			in:      ptr(`{"format_version":1,"system_identifier":7712040661191622168}`),
			wantErr: "not valid JSON",
		},
		{
			name:    "not JSON",
			in:      ptr("format_version = 1\n"),
			wantErr: "not valid JSON",
		},
		{
			name:    "empty",
			in:      ptr(""),
			wantErr: "not valid JSON",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			if tc.in != nil {
				putRaw(t, b, repository.IdentityKey, *tc.in)
			}
			got, err := repository.LoadIdentity(context.Background(), b)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadIdentity: got error %v, want nil", err)
				}
				if !sameIdentity(got, tc.want) {
					t.Errorf("LoadIdentity: got %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadIdentity: got %+v, nil; want an error containing %q", got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LoadIdentity error: got %q, want it to contain %q", err, tc.wantErr)
			}
			if gotNF := errors.Is(err, storage.ErrNotFound); gotNF != tc.wantNotFound {
				t.Errorf("LoadIdentity error %q: errors.Is(err, ErrNotFound) got %v, want %v", err, gotNF, tc.wantNotFound)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestEnsureIdentityCreatesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBackend(t)
	first := repository.NewIdentity(7712040661191622168, 1<<20, 15, repository.None, "db-1", created)
	second := repository.NewIdentity(7300000000000000002, 16<<20, 16, repository.LZ4, "db-2", created.Add(time.Hour))

	got, err := repository.EnsureIdentity(ctx, b, first, nil)
	if err != nil {
		t.Fatalf("first EnsureIdentity: got %v, want nil", err)
	}
	if !sameIdentity(got, first) {
		t.Errorf("first EnsureIdentity: got %+v, want %+v", got, first)
	}
	stored := getRaw(t, b, repository.IdentityKey)
	var raw map[string]any
	if err := json.Unmarshal([]byte(stored), &raw); err != nil {
		t.Fatalf("stored %s is not JSON: %v\n%s", repository.IdentityKey, err, stored)
	}
	for k, want := range map[string]any{
		"format_version":    float64(1),
		"system_identifier": "7712040661191622168", // a string: a JSON number loses uint64 precision
		"wal_segment_size":  float64(1 << 20),
		"pg_major":          float64(15),
		"compression":       "none",
		"created_at":        "2026-11-25T09:36:37Z",
		"created_by":        "db-1",
	} {
		if raw[k] != want {
			t.Errorf("stored %s field %q: got %#v, want %#v", repository.IdentityKey, k, raw[k], want)
		}
	}

	// Write once: a later call with another want gets the first identity
	// and the object is not rewritten.
	got, err = repository.EnsureIdentity(ctx, b, second, nil)
	if err != nil {
		t.Fatalf("second EnsureIdentity: got %v, want nil", err)
	}
	if !sameIdentity(got, first) {
		t.Errorf("second EnsureIdentity: got %+v, want the first identity %+v", got, first)
	}
	if after := getRaw(t, b, repository.IdentityKey); after != stored {
		t.Errorf("%s after a second EnsureIdentity: got\n%s\nwant unchanged\n%s", repository.IdentityKey, after, stored)
	}
	loaded, err := repository.LoadIdentity(ctx, b)
	if err != nil || !sameIdentity(loaded, first) {
		t.Errorf("LoadIdentity after EnsureIdentity: got %+v, %v; want %+v, nil", loaded, err, first)
	}
}

// TestEnsureIdentityRace: racing first pushes agree on one identity.
func TestEnsureIdentityRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBackend(t)
	const n = 8
	got := make([]repository.Identity, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := repository.NewIdentity(uint64(7300000000000000000+i), 1<<20, 15, repository.LZ4, fmt.Sprintf("db-%d", i), created)
			got[i], errs[i] = repository.EnsureIdentity(ctx, b, want, nil)
		}()
	}
	wg.Wait()
	stored, err := repository.LoadIdentity(ctx, b)
	if err != nil {
		t.Fatalf("LoadIdentity after the race: got %v, want nil", err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("EnsureIdentity #%d: got %v, want nil", i, errs[i])
			continue
		}
		if !sameIdentity(got[i], stored) {
			t.Errorf("EnsureIdentity #%d: got %+v, want the stored identity %+v", i, got[i], stored)
		}
	}
}

// TestEnsureIdentityKeepsBadIdentity: a damaged or foreign walvault.json is
// an error, never silently replaced.
func TestEnsureIdentityKeepsBadIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"not JSON", "garbage", "not valid JSON"},
		{"newer format", `{"format_version":9,"system_identifier":"1"}`, "newer than this walvault understands"},
		{"no system identifier", `{"format_version":1}`, "lacks format_version or system_identifier"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			putRaw(t, b, repository.IdentityKey, tc.in)
			want := repository.NewIdentity(1, 1<<20, 15, repository.LZ4, "db-1", created)
			got, err := repository.EnsureIdentity(context.Background(), b, want, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("EnsureIdentity over %q: got %+v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("EnsureIdentity over %q: got %v, want an error that is not ErrNotFound", tc.in, err)
			}
			if after := getRaw(t, b, repository.IdentityKey); after != tc.in {
				t.Errorf("%s after EnsureIdentity: got %q, want unchanged %q", repository.IdentityKey, after, tc.in)
			}
		})
	}
}

// TestEnsureIdentityStorageErrors: a storage failure is reported, never
// taken for an empty repository.
func TestEnsureIdentityStorageErrors(t *testing.T) {
	t.Parallel()
	transient := errors.New("connection reset by peer")
	tests := []struct {
		name    string
		fail    storagetest.Op
		wantErr error
	}{
		{"get fails", storagetest.OpGet, transient},
		{"put fails", storagetest.OpPut, transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inner := newBackend(t)
			b := storagetest.NewFault(inner)
			b.Fail(tc.fail, storagetest.AnyKey, transient)
			want := repository.NewIdentity(1, 1<<20, 15, repository.LZ4, "db-1", created)
			got, err := repository.EnsureIdentity(context.Background(), b, want, nil)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("EnsureIdentity: got %+v, %v; want an error wrapping %v", got, err, tc.wantErr)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("EnsureIdentity: got %v, want an error that is not ErrNotFound", err)
			}
			if _, err := inner.Stat(context.Background(), repository.IdentityKey); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat(%s) after a failed EnsureIdentity: got %v, want ErrNotFound", repository.IdentityKey, err)
			}
		})
	}
}

func TestIdentityJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := repository.NewIdentity(18446744073709551615, 1<<30, 18, repository.LZ4, "db-1", created)
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t)
	if err := b.Put(context.Background(), repository.IdentityKey, bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := repository.LoadIdentity(context.Background(), b)
	if err != nil || !sameIdentity(got, in) {
		t.Errorf("LoadIdentity of a marshalled identity: got %+v, %v; want %+v, nil", got, err, in)
	}
}

func TestCheckCluster(t *testing.T) {
	t.Parallel()
	id := repository.NewIdentity(7300000000000000001, 16<<20, 15, repository.LZ4, "db-1", time.Now())
	if err := id.CheckCluster("7300000000000000001", 15, "file:///repo"); err != nil {
		t.Fatalf("the repository's own cluster: %v", err)
	}
	// A pg_upgrade to 18 gives the cluster a new system identifier.
	err := id.CheckCluster("7400000000000000002", 18, "file:///repo")
	if !errors.Is(err, repository.ErrWrongCluster) {
		t.Fatalf("another cluster: got %v, want ErrWrongCluster", err)
	}
	for _, want := range []string{"file:///repo", "7300000000000000001", "7400000000000000002", "created by PostgreSQL 15, this server runs PostgreSQL 18", "pg_upgrade", "start a new repository prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal is not one line: %q", err)
	}
	// The major is left out when the writer does not know it.
	if err := id.CheckCluster("7400000000000000002", 0, "file:///repo"); err == nil || strings.Contains(err.Error(), "PostgreSQL 0") {
		t.Errorf("unknown major: %v", err)
	}
}

// TestLoadIdentityOverwritten: walvault.json is written once, so in a
// bucket that keeps versions a later version was put over it by someone
// else: the first is read, with Overwritten saying so, whether the later
// one is junk (every command would stop) or a valid identity without the
// lock (commands would advise turning Object Lock off); a copy of the
// first put back over it is no overwrite (explore25a F2, F3).
func TestLoadIdentityOverwritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := repository.NewIdentity(7712040661191622168, 16<<20, 17, repository.LZ4, "db-1", created)
	first.LockMode, first.LockDays = "COMPLIANCE", 30
	original, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	unlocked := first
	unlocked.LockMode, unlocked.LockDays = "", 0
	forged, err := json.Marshal(unlocked)
	if err != nil {
		t.Fatal(err)
	}
	for name, over := range map[string]string{"junk": `{"format":1,"system_identifier":"1"}`, "lock removed": string(forged)} {
		b := mem.New()
		putRaw(t, b, repository.IdentityKey, string(original))
		putRaw(t, b, repository.IdentityKey, over)
		got, err := repository.LoadIdentity(ctx, b)
		if err != nil {
			t.Fatalf("%s: LoadIdentity: %v, want the first version", name, err)
		}
		if !sameIdentity(got, first) || got.Lock() != first.Lock() || !strings.Contains(got.Overwritten, "2 versions") {
			t.Errorf("%s: got %+v (lock %s), want the first version, lock %s, Overwritten saying 2 versions", name, got, got.Lock(), first.Lock())
		}
		// The first put back over it: no warning any more.
		putRaw(t, b, repository.IdentityKey, string(original))
		if got, err := repository.LoadIdentity(ctx, b); err != nil || got.Overwritten != "" || got.Lock() != first.Lock() {
			t.Errorf("%s, first put back: %+v, %v; want it read without Overwritten", name, got, err)
		}
	}
	// One version: read as it is.
	b := mem.New()
	putRaw(t, b, repository.IdentityKey, string(original))
	if got, err := repository.LoadIdentity(ctx, b); err != nil || got.Overwritten != "" {
		t.Errorf("one version: %+v, %v", got, err)
	}
}

// TestKeyUseJSON: keys --json speaks snake_case like every other walvault
// JSON (explore25d F10).
func TestKeyUseJSON(t *testing.T) {
	got, err := json.Marshal(repository.KeyUse{KeyID: "age:1", Backups: []string{"20261208T000000Z"},
		WALRanges: []repository.WALRange{{First: "000000010000000000000002", Last: "000000010000000000000009", Files: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key_id":"age:1","backups":["20261208T000000Z"],"wal_ranges":[{"first":"000000010000000000000002","last":"000000010000000000000009","files":8}]}`
	if string(got) != want {
		t.Errorf("KeyUse JSON %s, want %s", got, want)
	}
}
