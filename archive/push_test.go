package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestPushRoundTrip: what wal-push stores, wal-fetch gives back byte for
// byte, under the key the layout names, with metadata that describes it.
func TestPushRoundTrip(t *testing.T) {
	t.Parallel()
	s3 := seg(1, 0, 3)
	partial := seg(2, 0, 0x15)
	tests := []struct {
		name    string
		in      string // file name
		hdr     wal.Header
		c       repository.Compression
		wantKey string
	}{
		{"segment lz4", s3.String(), header(t, s3), repository.LZ4, "wal/00000001/000000010000000000000003.lz4"},
		{"segment none", s3.String(), header(t, s3), repository.None, "wal/00000001/000000010000000000000003"},
		{"default compression is lz4", s3.String(), header(t, s3), "", "wal/00000001/000000010000000000000003.lz4"},
		{"partial lz4", partial.String() + ".partial", header(t, partial), repository.LZ4, "wal/00000002/000000020000000000000015.partial.lz4"},
		{"partial none", partial.String() + ".partial", header(t, partial), repository.None, "wal/00000002/000000020000000000000015.partial"},
		{"segment in a high log", seg(1, 0xA, 0xFFF).String(), header(t, seg(1, 0xA, 0xFFF)), repository.LZ4, "wal/00000001/000000010000000A00000FFF.lz4"},
		{
			// The first segment of a new timeline carries its parent's
			// timeline in the header: allowed.
			"older header timeline", seg(3, 0, 4).String(),
			func() wal.Header { h := header(t, seg(3, 0, 4)); h.Timeline = 2; return h }(),
			repository.LZ4, "wal/00000003/000000030000000000000004.lz4",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			src, sum := writeSegment(t, t.TempDir(), tc.in, tc.hdr, 1)
			o := opts(tc.c)
			got := mustPush(t, b, src, o)
			want := archive.Result{Key: tc.wantKey, RawSize: testSegSize, SHA256: sum}
			if got.Key != want.Key || got.RawSize != want.RawSize || got.SHA256 != want.SHA256 || got.AlreadyArchived || got.File.String() != tc.in {
				t.Errorf("Push: got %+v, want %+v for %s", got, want, tc.in)
			}
			if gotKeys, wantKeys := keys(t, b), []string{tc.wantKey, repository.IdentityKey}; !slices.Equal(gotKeys, wantKeys) {
				t.Errorf("objects after Push: got %q, want %q", gotKeys, wantKeys)
			}
			_, info := object(t, b, tc.wantKey)
			wantC := tc.c
			if wantC == "" {
				wantC = repository.LZ4
			}
			wantMeta := map[string]string{
				repository.MetaSHA256:      sum,
				repository.MetaRawSize:     "1048576",
				repository.MetaCompression: string(wantC),
				repository.MetaSystemID:    "7300000000000000001",
				repository.MetaTimeline:    tc.in[:8],
				repository.MetaHost:        "db-1",
				repository.MetaPushedAt:    "2026-11-25T09:36:37Z",
				repository.MetaWalvault:    "test",
			}
			for k, v := range wantMeta {
				if info.Metadata[k] != v {
					t.Errorf("metadata %q of %s: got %q, want %q", k, tc.wantKey, info.Metadata[k], v)
				}
			}
			if wantC == repository.None && info.Size != testSegSize {
				t.Errorf("stored size of an uncompressed segment: got %d, want %d", info.Size, testSegSize)
			}

			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			fres, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: wantC})
			if err != nil {
				t.Fatalf("Fetch(%s): got %v, want nil", tc.in, err)
			}
			if fres.Key != tc.wantKey || fres.SHA256 != sum || fres.RawSize != testSegSize {
				t.Errorf("Fetch: got %+v, want key %s, sha256 %s, raw size %d", fres, tc.wantKey, sum, testSegSize)
			}
			assertSameFile(t, dest, src)
		})
	}
}

func assertSameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("read %s: %v", got, err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("read %s: %v", want, err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s: got %d bytes (sha256 %s), want the %d bytes of %s (sha256 %s)",
			got, len(g), fileSHA256(t, got), len(w), want, fileSHA256(t, want))
	}
}

// TestPushRealSegments: segments PostgreSQL 15 wrote (16 MiB, one the first
// of timeline 2 with timeline 1 in its header, one a .partial) round-trip.
func TestPushRealSegments(t *testing.T) {
	t.Parallel()
	src := realSegments(t, t.TempDir())
	tests := []struct {
		c   repository.Compression
		src []string
	}{
		{repository.LZ4, src},
		// One file is enough to show the raw path; it keeps -race fast.
		{repository.None, src[len(src)-1:]},
	}
	for _, tc := range tests {
		c := tc.c
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			for _, p := range tc.src {
				name := filepath.Base(p)
				res := mustPush(t, b, p, opts(c))
				if want := walKey(t, name, c); res.Key != want {
					t.Errorf("Push(%s): key got %q, want %q", name, res.Key, want)
				}
				if res.RawSize != wal.DefaultSegmentSize {
					t.Errorf("Push(%s): raw size got %d, want %d", name, res.RawSize, wal.DefaultSegmentSize)
				}
				dest := filepath.Join(t.TempDir(), name)
				if _, err := restore.Fetch(context.Background(), b, name, dest, restore.FetchOptions{Compression: c}); err != nil {
					t.Fatalf("Fetch(%s): got %v, want nil", name, err)
				}
				assertSameFile(t, dest, p)
			}
			id, err := repository.LoadIdentity(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			if id.SystemID != "7712040661191622168" || id.WALSegmentSize != wal.DefaultSegmentSize || id.PGMajor != 15 || id.Compression != c {
				t.Errorf("identity created by real segments: got %+v, want system id %d, 16 MiB, PG 15, %s", id, uint64(realSysID), c)
			}
		})
	}
}

// TestPushCreatesIdentity: the first push writes walvault.json from the
// segment's header and the configured compression.
func TestPushCreatesIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		magic uint16
		c     repository.Compression
		want  repository.Identity
	}{
		{"PG 15 lz4", 0xD110, repository.LZ4, repository.Identity{FormatVersion: 1, SystemID: "7300000000000000001", WALSegmentSize: testSegSize, PGMajor: 15, Compression: repository.LZ4, CreatedBy: "db-1"}},
		{"PG 16 none", 0xD113, repository.None, repository.Identity{FormatVersion: 1, SystemID: "7300000000000000001", WALSegmentSize: testSegSize, PGMajor: 16, Compression: repository.None, CreatedBy: "db-1"}},
		{"PG 18 default", 0xD118, "", repository.Identity{FormatVersion: 1, SystemID: "7300000000000000001", WALSegmentSize: testSegSize, PGMajor: 18, Compression: repository.LZ4, CreatedBy: "db-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			s := seg(1, 0, 1)
			h := header(t, s)
			h.Magic = tc.magic
			src, _ := writeSegment(t, t.TempDir(), s.String(), h, 1)
			mustPush(t, b, src, opts(tc.c))
			got, err := repository.LoadIdentity(context.Background(), b)
			if err != nil {
				t.Fatalf("LoadIdentity after the first push: got %v, want nil", err)
			}
			if got.FormatVersion != tc.want.FormatVersion || got.SystemID != tc.want.SystemID || got.WALSegmentSize != tc.want.WALSegmentSize ||
				got.PGMajor != tc.want.PGMajor || got.Compression != tc.want.Compression || got.CreatedBy != tc.want.CreatedBy || !got.CreatedAt.Equal(testNow) {
				t.Errorf("identity after the first push: got %+v, want %+v created at %s", got, tc.want, testNow)
			}
		})
	}
}

// TestPushHistoryNeedsNoIdentity: history files carry no header; pushing
// one neither needs nor creates walvault.json.
func TestPushHistoryNeedsNoIdentity(t *testing.T) {
	t.Parallel()
	b := mem.New()
	src := filepath.Join(t.TempDir(), "00000002.history")
	if err := os.WriteFile(src, []byte("1\t0/4002D98\tno recovery target specified\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPush(t, b, src, opts(repository.LZ4))
	if got, want := keys(t, b), []string{"wal/00000002.history"}; !slices.Equal(got, want) {
		t.Errorf("objects after pushing a history file: got %q, want %q", got, want)
	}
}

// TestPushAgainIsIdempotent: PostgreSQL re-runs archive_command after a
// crash; the same content already archived is success.
func TestPushAgainIsIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    repository.Compression
		o2   archive.Options // options of the second push
	}{
		{"lz4", repository.LZ4, opts(repository.LZ4)},
		{"none", repository.None, opts(repository.None)},
		{"other host and version", repository.LZ4, archive.Options{Compression: repository.LZ4, Host: "db-2", Version: "later"}},
		{"other configured compression", repository.LZ4, opts(repository.None)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			s := seg(1, 0, 7)
			src, sum := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			first := mustPush(t, b, src, opts(tc.c))
			if first.AlreadyArchived {
				t.Errorf("first Push: AlreadyArchived got true, want false")
			}
			stored, info := object(t, b, first.Key)
			second, err := archive.Push(context.Background(), b, src, tc.o2)
			if err != nil {
				t.Fatalf("second Push of the same file: got %v, want nil", err)
			}
			want := archive.Result{File: first.File, Key: first.Key, RawSize: testSegSize, StoredSize: info.Size, SHA256: sum, AlreadyArchived: true}
			if second != want {
				t.Errorf("second Push: got %+v, want %+v", second, want)
			}
			after, afterInfo := object(t, b, first.Key)
			if !bytes.Equal(after, stored) || afterInfo.Metadata[repository.MetaHost] != info.Metadata[repository.MetaHost] {
				t.Errorf("second Push rewrote %s", first.Key)
			}
		})
	}
}

// TestPushConcurrentSameFile: two pushes of one file at once both succeed,
// and exactly one of them stored it.
func TestPushConcurrentSameFile(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 9)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	const n = 4
	results := make([]archive.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = archive.Push(context.Background(), b, src, opts(repository.LZ4))
		}()
	}
	wg.Wait()
	stored := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("concurrent Push #%d: got %v, want nil", i, errs[i])
		}
		if !results[i].AlreadyArchived {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("concurrent pushes that stored the object: got %d, want 1", stored)
	}
}

// TestPushRefuses: files that are not what their name says are refused with
// a message that says why, and nothing is stored (not even walvault.json).
func TestPushRefuses(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	withHeader := func(f func(*wal.Header)) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			h := header(t, s)
			f(&h)
			p, _ := writeSegment(t, dir, s.String(), h, 1)
			return p
		}
	}
	tests := []struct {
		name       string
		in         func(t *testing.T, dir string) string // returns the path to push
		wantErr    []string                              // substrings of the message
		wantHeader bool                                  // errors.Is(err, wal.ErrInvalidHeader)
		wantName   bool                                  // errors.Is(err, wal.ErrNotWALName)
	}{
		{
			name:       "wrong page address",
			in:         withHeader(func(h *wal.Header) { h.PageAddr = 2 * testSegSize }),
			wantErr:    []string{"000000010000000000000003", "page address 0/200000", "0/300000"},
			wantHeader: true,
		},
		{
			name:       "newer header timeline",
			in:         withHeader(func(h *wal.Header) { h.Timeline = 2 }),
			wantErr:    []string{"000000010000000000000003", "header timeline 2"},
			wantHeader: true,
		},
		{
			name:       "bad magic",
			in:         withHeader(func(h *wal.Header) { h.Magic = 0xBEEF }),
			wantErr:    []string{"0xBEEF"},
			wantHeader: true,
		},
		{
			name:       "no long header",
			in:         withHeader(func(h *wal.Header) { h.Info = 0 }),
			wantErr:    []string{"long header"},
			wantHeader: true,
		},
		{
			name: "truncated",
			in: func(t *testing.T, dir string) string {
				p, _ := writeSegment(t, dir, s.String(), header(t, s), 1)
				if err := os.Truncate(p, testSegSize/2); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: []string{"000000010000000000000003", "524288 bytes", "1048576"},
		},
		{
			name: "longer than its header says",
			in: func(t *testing.T, dir string) string {
				p, _ := writeSegment(t, dir, s.String(), header(t, s), 1)
				if err := os.Truncate(p, testSegSize+1); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: []string{"1048577 bytes", "1048576"},
		},
		{
			name: "shorter than a header",
			in: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, s.String())
				if err := os.WriteFile(p, []byte{0x10, 0xD1, 2, 0}, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr:    []string{"too short"},
			wantHeader: true,
		},
		{
			name: "empty file",
			in: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, s.String())
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr:    []string{"too short"},
			wantHeader: true,
		},
		{
			name: "partial with a wrong page address",
			in: func(t *testing.T, dir string) string {
				h := header(t, s)
				h.PageAddr = 0
				p, _ := writeSegment(t, dir, s.String()+".partial", h, 1)
				return p
			},
			wantErr:    []string{"page address"},
			wantHeader: true,
		},
		{
			name:    "nonexistent path",
			in:      func(t *testing.T, dir string) string { return filepath.Join(dir, s.String()) },
			wantErr: []string{s.String(), "does not exist", "%p"},
		},
		{
			name: "a directory",
			in: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, s.String())
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: []string{s.String(), "not a regular file"},
		},
		{
			name: "non-WAL name",
			in: func(t *testing.T, dir string) string {
				p, _ := writeSegment(t, dir, "postgresql.conf", header(t, s), 1)
				return p
			},
			wantErr:  []string{"postgresql.conf", "not a WAL file name"},
			wantName: true,
		},
		{
			name: "lower-case segment name",
			in: func(t *testing.T, dir string) string {
				p, _ := writeSegment(t, dir, "00000001000000000000000a", header(t, s), 1)
				return p
			},
			wantErr:  []string{"lower-case"},
			wantName: true,
		},
		{
			name:     "empty path",
			in:       func(t *testing.T, dir string) string { return "" },
			wantName: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, root := filetest.New(t)
			path := tc.in(t, t.TempDir())
			res, err := archive.Push(context.Background(), b, path, opts(repository.LZ4))
			if err == nil {
				t.Fatalf("Push(%q): got %+v, nil; want an error", path, res)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Push(%q) error: got %q, want it to contain %q", path, err, want)
				}
			}
			if got := errors.Is(err, wal.ErrInvalidHeader); got != tc.wantHeader {
				t.Errorf("Push(%q) error %q: errors.Is(err, wal.ErrInvalidHeader) got %v, want %v", path, err, got, tc.wantHeader)
			}
			if got := errors.Is(err, wal.ErrNotWALName); got != tc.wantName {
				t.Errorf("Push(%q) error %q: errors.Is(err, wal.ErrNotWALName) got %v, want %v", path, err, got, tc.wantName)
			}
			if errors.Is(err, archive.ErrConflict) || errors.Is(err, archive.ErrWrongCluster) {
				t.Errorf("Push(%q) error %q: got a conflict/wrong-cluster error, want neither", path, err)
			}
			if got := keys(t, b); len(got) != 0 {
				t.Errorf("objects after a refused Push: got %q, want none", got)
			}
			assertNoTempFiles(t, root)
		})
	}
}

// TestPushWrongCluster: a repository belongs to one cluster; segments of
// another are refused with both identifiers, and nothing is stored.
func TestPushWrongCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(*wal.Header)
		wantIs  error
		wantErr []string
	}{
		{
			name:    "other system identifier",
			mod:     func(h *wal.Header) { h.SystemID = otherSysID },
			wantIs:  archive.ErrWrongCluster,
			wantErr: []string{"7300000000000000001", "7300000000000000002", "000000010000000000000004", "new repository prefix"},
		},
		{
			name: "other segment size",
			mod: func(h *wal.Header) {
				h.SegmentSize = 2 * testSegSize
				h.PageAddr = 4 * 2 * testSegSize
			},
			wantErr: []string{"2097152", "1048576", "000000010000000000000004"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, root := filetest.New(t)
			first, second := seg(1, 0, 3), seg(1, 0, 4)
			p1, _ := writeSegment(t, t.TempDir(), first.String(), header(t, first), 1)
			mustPush(t, b, p1, opts(repository.LZ4))
			before := keys(t, b)

			h := header(t, second)
			tc.mod(&h)
			p2, _ := writeSegment(t, t.TempDir(), second.String(), h, 2)
			res, err := archive.Push(context.Background(), b, p2, opts(repository.LZ4))
			if err == nil {
				t.Fatalf("Push of a foreign segment: got %+v, nil; want an error", res)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Push of a foreign segment: got %v, want an error wrapping %v", err, tc.wantIs)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Push error: got %q, want it to contain %q", err, want)
				}
			}
			if after := keys(t, b); !slices.Equal(after, before) {
				t.Errorf("objects after a refused Push: got %q, want unchanged %q", after, before)
			}
			assertAbsent(t, b, walKey(t, second.String(), repository.LZ4))
			assertNoTempFiles(t, root)
		})
	}
}

// TestPushHistoryAndBackupFiles: small text files are stored as they are,
// whatever the compression, and come back from wal-fetch.
func TestPushHistoryAndBackupFiles(t *testing.T) {
	t.Parallel()
	realHistory, err := os.ReadFile(filepath.Join("..", "wal", "testdata", "history", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	realBackup, err := os.ReadFile(filepath.Join("..", "wal", "testdata", "backup", "000000010000000000000003.00000028.backup"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		body    []byte
		c       repository.Compression
		wantKey string
	}{
		{"timeline history lz4", "00000002.history", realHistory, repository.LZ4, "wal/00000002.history"},
		{"timeline history none", "00000002.history", realHistory, repository.None, "wal/00000002.history"},
		{"backup history lz4", "000000010000000000000003.00000028.backup", realBackup, repository.LZ4, "wal/00000001/000000010000000000000003.00000028.backup"},
		{"backup history none", "000000010000000000000003.00000028.backup", realBackup, repository.None, "wal/00000001/000000010000000000000003.00000028.backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			// A repository that already has an identity: the compression
			// of small text files does not follow it either.
			s := seg(1, 0, 2)
			segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			mustPush(t, b, segPath, opts(tc.c))

			src := filepath.Join(t.TempDir(), tc.in)
			if err := os.WriteFile(src, tc.body, 0o600); err != nil {
				t.Fatal(err)
			}
			res := mustPush(t, b, src, opts(tc.c))
			if res.Key != tc.wantKey {
				t.Errorf("Push(%s): key got %q, want %q", tc.in, res.Key, tc.wantKey)
			}
			if res.Key != repository.WALKey(res.File, tc.c) {
				t.Errorf("Push(%s): key %q is not repository.WALKey %q", tc.in, res.Key, repository.WALKey(res.File, tc.c))
			}
			stored, info := object(t, b, tc.wantKey)
			if !bytes.Equal(stored, tc.body) {
				t.Errorf("stored %s: got %q, want the file as it is %q", tc.wantKey, stored, tc.body)
			}
			if got := info.Metadata[repository.MetaCompression]; got != string(repository.None) {
				t.Errorf("metadata compression of %s: got %q, want %q", tc.wantKey, got, repository.None)
			}
			dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
			if _, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: tc.c}); err != nil {
				t.Fatalf("Fetch(%s): got %v, want nil", tc.in, err)
			}
			assertSameFile(t, dest, src)

			again := mustPush(t, b, src, opts(tc.c))
			if !again.AlreadyArchived {
				t.Errorf("second Push(%s): AlreadyArchived got false, want true", tc.in)
			}
		})
	}
}

// TestPushUsesConfiguredCompression: the configured compression decides
// each segment's codec, whatever the repository was created with, and the
// object records it (key and metadata).
func TestPushUsesConfiguredCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		first     repository.Compression // creates the repository
		later     repository.Compression // configured for the later push
		wantLater repository.Compression
	}{
		{"none repository, lz4 configured", repository.None, repository.LZ4, repository.LZ4},
		{"none repository, default configured", repository.None, "", repository.LZ4},
		{"lz4 repository, none configured", repository.LZ4, repository.None, repository.None},
		{"lz4 repository, zstd configured", repository.LZ4, repository.Zstd, repository.Zstd},
		{"zstd repository, lz4 configured", repository.Zstd, repository.LZ4, repository.LZ4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			dir := t.TempDir()
			s1, s2 := seg(1, 0, 1), seg(1, 0, 2)
			p1, _ := writeSegment(t, dir, s1.String(), header(t, s1), 1)
			p2, _ := writeSegment(t, dir, s2.String(), header(t, s2), 2)
			mustPush(t, b, p1, opts(tc.first))
			res := mustPush(t, b, p2, opts(tc.later))
			if want := walKey(t, s2.String(), tc.wantLater); res.Key != want {
				t.Errorf("Push with %q configured: key got %q, want %q", tc.later, res.Key, want)
			}
			_, info := object(t, b, res.Key)
			if got := info.Metadata[repository.MetaCompression]; got != string(tc.wantLater) {
				t.Errorf("metadata compression: got %q, want %q", got, tc.wantLater)
			}
			// Fetch with the configured (not the repository's) compression
			// preferred still finds it.
			dest := filepath.Join(dir, "RECOVERYXLOG")
			if _, err := restore.Fetch(context.Background(), b, s2.String(), dest, restore.FetchOptions{Compression: repository.LZ4}); err != nil {
				t.Fatalf("Fetch: got %v, want nil", err)
			}
			assertSameFile(t, dest, p2)
		})
	}
}

// changingBackend modifies the file being pushed on disk when Put of a WAL
// object starts, before any of the body has been read by the storage: the
// file changed between the hash pass and the upload pass.
type changingBackend struct {
	storage.Backend
	t      *testing.T
	path   string
	change func(t *testing.T, path string)
	puts   int
}

func (c *changingBackend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if strings.HasPrefix(key, repository.WALPrefix) {
		c.puts++
		c.change(c.t, c.path)
	}
	return c.Backend.Put(ctx, key, r, opts)
}

// TestPushFileChangedDuringUpload: segments larger than archive's in-memory
// limit are hashed first and streamed second; the upload re-hashes what it
// sends and fails if the file is no longer what the first pass hashed, so a
// stored body always matches its metadata. (Smaller segments are read once:
// see TestPushInMemoryBodyMatchesItsChecksum.)
func TestPushFileChangedDuringUpload(t *testing.T) {
	t.Parallel()
	flipLast := func(t *testing.T, path string, size int64) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{0xFF, 0x00, 0xFF}, size-3); err != nil {
			t.Fatal(err)
		}
	}
	shrink := func(t *testing.T, path string, size int64) {
		if err := os.Truncate(path, size-8192); err != nil {
			t.Fatal(err)
		}
	}
	grow := func(t *testing.T, path string, _ int64) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(make([]byte, 8192)); err != nil {
			t.Fatal(err)
		}
	}
	// 32 MiB segments take the streaming path; that is more than the
	// compressor (4 MiB blocks) can read ahead before Put starts reading, so
	// a change at the end always happens before the upload pass reads it.
	const lz4Size, noneSize = 32 << 20, 32 << 20
	tests := []struct {
		name   string
		c      repository.Compression
		size   uint32
		change func(t *testing.T, path string, size int64)
	}{
		{"lz4 bytes changed", repository.LZ4, lz4Size, flipLast},
		{"none bytes changed", repository.None, noneSize, flipLast},
		{"lz4 shrank", repository.LZ4, lz4Size, shrink},
		{"none shrank", repository.None, noneSize, shrink},
		{"lz4 grew", repository.LZ4, lz4Size, grow},
		{"none grew", repository.None, noneSize, grow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inner, root := filetest.New(t)
			s := seg(1, 0, 3)
			addr, err := s.StartLSN(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			h := header(t, s)
			h.SegmentSize, h.PageAddr = tc.size, addr
			src, _ := writeSegment(t, t.TempDir(), s.String(), h, 1)
			b := &changingBackend{Backend: inner, t: t, path: src, change: func(t *testing.T, path string) { tc.change(t, path, int64(tc.size)) }}

			res, err := archive.Push(context.Background(), b, src, opts(tc.c))
			if err == nil {
				t.Fatalf("Push of a file that changed during the upload: got %+v, nil; want an error", res)
			}
			if !strings.Contains(err.Error(), "changed while it was being archived") {
				t.Errorf("Push error: got %q, want it to say the file changed while it was being archived", err)
			}
			if errors.Is(err, archive.ErrConflict) || errors.Is(err, storage.ErrExists) {
				t.Errorf("Push error %q: got a conflict, want a plain failure PostgreSQL retries", err)
			}
			if b.puts != 1 {
				t.Errorf("WAL Puts: got %d, want 1", b.puts)
			}
			assertAbsent(t, inner, walKey(t, s.String(), tc.c))
			assertNoTempFiles(t, root)
		})
	}
}

// TestPushCancelled: a cancelled context stops a push without storing.
func TestPushCancelled(t *testing.T) {
	t.Parallel()
	b, root := filetest.New(t)
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := archive.Push(ctx, b, src, opts(repository.LZ4)); err == nil {
		t.Fatalf("Push with a cancelled context: got %+v, nil; want an error", res)
	}
	if got := keys(t, b); len(got) != 0 {
		t.Errorf("objects after a cancelled Push: got %q, want none", got)
	}
	assertNoTempFiles(t, root)
}

// TestPushInMemoryBodyMatchesItsChecksum: a segment read once into memory is
// stored exactly as it was read, with the checksum of those bytes, even if
// the file changes while the upload runs.
func TestPushInMemoryBodyMatchesItsChecksum(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		t.Run(string(c), func(t *testing.T) {
			inner := mem.New()
			s := seg(1, 0, 3)
			src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			original, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			b := &changingBackend{Backend: inner, t: t, path: src, change: func(t *testing.T, path string) {
				if err := os.WriteFile(path, make([]byte, len(original)), 0o600); err != nil {
					t.Fatal(err)
				}
			}}
			res, err := archive.Push(context.Background(), b, src, opts(c))
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			sum := sha256.Sum256(original)
			if res.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("checksum %s, want that of the bytes read (%x)", res.SHA256, sum)
			}
			dest := filepath.Join(t.TempDir(), s.String())
			if _, err := restore.Fetch(context.Background(), inner, s.String(), dest, restore.FetchOptions{Compression: c}); err != nil {
				t.Fatalf("fetch back: %v", err)
			}
			got, _ := os.ReadFile(dest)
			if !bytes.Equal(got, original) {
				t.Fatal("stored body differs from the bytes that were read")
			}
		})
	}
}

// A push encodes only in an encode slot, so one process never reads and
// compresses more files at once than the slots allow, however many it
// pushes ahead. Not parallel: it holds every slot of the process.
func TestPushWaitsForAnEncodeSlot(t *testing.T) {
	b := mem.New()
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	giveBack := archive.TakeEncodeSlots()
	done := make(chan error, 1)
	go func() {
		_, err := archive.Push(context.Background(), b, src, opts(repository.LZ4))
		done <- err
	}()
	select {
	case err := <-done:
		giveBack()
		t.Fatalf("Push returned (error %v) while every encode slot was taken", err)
	case <-time.After(200 * time.Millisecond):
	}
	giveBack()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Push did not finish within 10 s of the encode slots coming free")
	}
}

// TestPushHistoryOfAnotherCluster: history and backup history files carry
// no system identifier; the data directory whose pg_wal holds them does.
// Another cluster's (pg_upgrade, a new initdb or a clone with the old
// archive settings) are refused like its segments: its timeline history
// would send recovery to latest down its timelines. The repository's own
// cluster's are stored with its system identifier.
func TestPushHistoryOfAnotherCluster(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"00000003.history", "000000010000000000000007.00000028.backup"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			s := seg(1, 0, 2)
			segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			mustPush(t, b, segPath, opts(repository.LZ4))
			before := keys(t, b)
			body := []byte("1\t0/1E000000\tno recovery target specified\n2\t0/20000000\tno recovery target specified\n")
			if strings.HasSuffix(name, ".backup") {
				body = []byte("START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\n")
			}

			foreign := filepath.Join(fakeDataDir(t, otherSysID), "pg_wal", name)
			if err := os.WriteFile(foreign, body, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := archive.Push(context.Background(), b, foreign, opts(repository.LZ4))
			if !errors.Is(err, archive.ErrWrongCluster) || !strings.Contains(err.Error(), fmt.Sprint(otherSysID)) || !strings.Contains(err.Error(), "PostgreSQL 16") {
				t.Fatalf("Push of another cluster's %s: got %v, want ErrWrongCluster naming its system identifier and major", name, err)
			}
			if after := keys(t, b); !slices.Equal(after, before) {
				t.Errorf("objects after a refused Push: got %q, want unchanged %q", after, before)
			}

			own := filepath.Join(fakeDataDir(t, testSysID), "pg_wal", name)
			if err := os.WriteFile(own, body, 0o600); err != nil {
				t.Fatal(err)
			}
			res := mustPush(t, b, own, opts(repository.LZ4))
			if _, info := object(t, b, res.Key); info.Metadata[repository.MetaSystemID] != fmt.Sprint(testSysID) {
				t.Errorf("metadata of %s: system-id %q, want %d", res.Key, info.Metadata[repository.MetaSystemID], testSysID)
			}
		})
	}
}

// fakeDataDir is a data directory of PostgreSQL 16 whose pg_control holds
// sysID, with an empty pg_wal.
func fakeDataDir(t *testing.T, sysID uint64) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"global", "pg_wal"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	control := make([]byte, 296)
	binary.NativeEndian.PutUint64(control, sysID)
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), control, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("16\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPushHistoryFirstIntoNewRepository: a promoted server pointed at a new
// prefix archives its timeline's history file before any segment. The
// history file records the cluster of the data directory it came from, so
// the first segment's push creates walvault.json over it, instead of
// refusing every segment after it for good (explore24c F1); another
// cluster's history file there still refuses it.
func TestPushHistoryFirstIntoNewRepository(t *testing.T) {
	t.Parallel()
	body := []byte("1\t0/1E000000\tno recovery target specified\n")
	for _, tc := range []struct {
		name    string
		sysID   uint64
		spool   bool // pushed from wal-receive's spool, naming its cluster
		wantErr error
	}{
		{"this cluster's", testSysID, false, nil},
		{"another cluster's", otherSysID, false, archive.ErrWrongCluster},
		{"wal-receive's, from its spool", testSysID, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			history := filepath.Join(fakeDataDir(t, tc.sysID), "pg_wal", "00000002.history")
			o := opts(repository.LZ4)
			if tc.spool {
				history = filepath.Join(t.TempDir(), "00000002.history")
				o.SystemID = fmt.Sprint(tc.sysID)
			}
			if err := os.WriteFile(history, body, 0o600); err != nil {
				t.Fatal(err)
			}
			mustPush(t, b, history, o)
			s := seg(2, 0, 0x1E)
			segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			_, err := archive.Push(context.Background(), b, segPath, opts(repository.LZ4))
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("segment pushed after %s history file: got %v, want %v", tc.name, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			id, err := repository.LoadIdentity(context.Background(), b)
			if err != nil || id.SystemID != fmt.Sprint(testSysID) || id.Recreated != "" {
				t.Errorf("walvault.json after the first segment: %+v, %v; want this cluster's, new (not recreated)", id, err)
			}
		})
	}
}

// TestPushHistoriesOfTwoClustersFirst: a new prefix holding this cluster's
// history file and another cluster's is not claimed by this cluster's
// first segment: the other timeline would be adopted beside its own
// (explore24f F5).
func TestPushHistoriesOfTwoClustersFirst(t *testing.T) {
	t.Parallel()
	b := mem.New()
	body := []byte("1\t0/1E000000\tno recovery target specified\n")
	for _, h := range []struct {
		sysID uint64
		name  string
	}{{testSysID, "00000002.history"}, {otherSysID, "00000003.history"}} {
		path := filepath.Join(fakeDataDir(t, h.sysID), "pg_wal", h.name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		mustPush(t, b, path, opts(repository.LZ4))
	}
	s := seg(2, 0, 0x1E)
	segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	if _, err := archive.Push(context.Background(), b, segPath, opts(repository.LZ4)); !errors.Is(err, archive.ErrWrongCluster) || !strings.Contains(err.Error(), "delete wal/00000003.history (the other cluster's)") {
		t.Fatalf("first segment beside another cluster's history file: got %v, want ErrWrongCluster naming the other cluster's history file to delete", err)
	}
}
