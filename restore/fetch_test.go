package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

const oldDest = "OLD CONTENT PostgreSQL must keep if the fetch fails"

// destCase is where a fetch writes: a fresh directory, with or without a
// file already at dest (restore_command's %p may exist from an earlier try).
type destCase struct {
	name        string
	preexisting bool
}

var destCases = []destCase{{"dest absent", false}, {"dest exists", true}}

func prepareDest(t *testing.T, dc destCase) (dir, dest string) {
	t.Helper()
	dir = t.TempDir()
	dest = filepath.Join(dir, "RECOVERYXLOG")
	if dc.preexisting {
		if err := os.WriteFile(dest, []byte(oldDest), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, dest
}

// assertDestUntouched checks that a failed fetch left dest as it was and no
// temporary file beside it.
func assertDestUntouched(t *testing.T, dc destCase, dir, dest string) {
	t.Helper()
	got, err := os.ReadFile(dest)
	switch {
	case dc.preexisting && err != nil:
		t.Errorf("dest after a failed fetch: got %v, want the old content kept", err)
	case dc.preexisting && string(got) != oldDest:
		t.Errorf("dest after a failed fetch: got %d bytes %.40q, want the old content %q", len(got), got, oldDest)
	case !dc.preexisting && !errors.Is(err, os.ErrNotExist):
		t.Errorf("dest after a failed fetch: got %d bytes, err %v; want no file", len(got), err)
	}
	var want []string
	if dc.preexisting {
		want = []string{filepath.Base(dest)}
	}
	if entries := dirEntries(t, dir); !slices.Equal(entries, want) {
		t.Errorf("files beside dest after a failed fetch: got %q, want %q (no temp files)", entries, want)
	}
}

// TestFetchRoundTrip: every kind of file comes back byte for byte, whatever
// the preferred compression, and dest is replaced only when complete.
func TestFetchRoundTrip(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	history := []byte("1\t0/4002D98\tno recovery target specified\n")
	backup := []byte("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\n")
	tests := []struct {
		name      string
		in        string // file name
		data      func(t *testing.T) []byte
		stored    repository.Compression
		preferred repository.Compression
		wantKey   string
	}{
		{"segment lz4", s.String(), func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.LZ4, repository.LZ4, "wal/00000001/000000010000000000000003.lz4"},
		{"segment lz4, none preferred", s.String(), func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.LZ4, repository.None, "wal/00000001/000000010000000000000003.lz4"},
		{"segment none", s.String(), func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.None, repository.None, "wal/00000001/000000010000000000000003"},
		{"segment none, lz4 preferred", s.String(), func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.None, repository.LZ4, "wal/00000001/000000010000000000000003"},
		{"partial lz4", s.String() + ".partial", func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.LZ4, repository.LZ4, "wal/00000001/000000010000000000000003.partial.lz4"},
		{"partial none", s.String() + ".partial", func(t *testing.T) []byte { return segmentBytes(t, s, 1) }, repository.None, repository.LZ4, "wal/00000001/000000010000000000000003.partial"},
		{"timeline history", "00000002.history", func(*testing.T) []byte { return history }, repository.LZ4, repository.LZ4, "wal/00000002.history"},
		{"timeline history, none preferred", "00000002.history", func(*testing.T) []byte { return history }, repository.None, repository.None, "wal/00000002.history"},
		{"backup history", "000000010000000000000003.00000028.backup", func(*testing.T) []byte { return backup }, repository.LZ4, repository.LZ4, "wal/00000001/000000010000000000000003.00000028.backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			// The identity comes from a segment, as in a real archive.
			pushSegment(t, b, seg(1, 0, 1), tc.stored)
			a := push(t, b, tc.in, tc.data(t), tc.stored)
			for _, dc := range destCases {
				t.Run(dc.name, func(t *testing.T) {
					dir, dest := prepareDest(t, dc)

					got, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: tc.preferred})
					if err != nil {
						t.Fatalf("Fetch(%s): got %v, want nil", tc.in, err)
					}
					if got.Key != tc.wantKey || got.SHA256 != a.sum || got.RawSize != int64(len(a.raw)) {
						t.Errorf("Fetch(%s): got %+v, want key %s, sha256 %s, raw size %d", tc.in, got, tc.wantKey, a.sum, len(a.raw))
					}
					if info, err := b.Stat(context.Background(), tc.wantKey); err != nil || got.StoredSize != info.Size {
						t.Errorf("Fetch(%s): stored size got %d, want %d (%v)", tc.in, got.StoredSize, info.Size, err)
					}
					data, err := os.ReadFile(dest)
					if err != nil {
						t.Fatalf("read dest: %v", err)
					}
					if !bytes.Equal(data, a.raw) {
						t.Errorf("dest: got %d bytes, want the %d bytes pushed", len(data), len(a.raw))
					}
					if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
						t.Errorf("dest mode: got %v (%v), want %v", fi.Mode().Perm(), err, os.FileMode(0o600))
					}
					if entries := dirEntries(t, dir); !slices.Equal(entries, []string{"RECOVERYXLOG"}) {
						t.Errorf("files beside dest: got %q, want only RECOVERYXLOG", entries)
					}
				})
			}
		})
	}
}

// TestFetchZeroOptions: the zero FetchOptions must fetch what wal-push
// stored under either compression (an empty preference once matched the
// uncompressed key and then called the healthy object corrupt).
func TestFetchZeroOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		t.Run(string(c), func(t *testing.T) {
			b := mem.New()
			a := pushSegment(t, b, seg(1, 0, 3), c)
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if _, err := restore.Fetch(context.Background(), b, a.name, dest, restore.FetchOptions{}); err != nil {
				t.Fatalf("Fetch(%s) of a %s segment with zero FetchOptions: got %v, want nil", a.name, c, err)
			}
			if data, _ := os.ReadFile(dest); !bytes.Equal(data, a.raw) {
				t.Errorf("dest: got %d bytes, want the %d bytes pushed", len(data), len(a.raw))
			}
		})
	}
}

// TestFetchMissing: a file the repository authoritatively lacks is
// storage.ErrNotFound (wal-fetch exits 1, recovery moves on), and nothing is
// written.
func TestFetchMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		preferred repository.Compression
	}{
		{"next segment", "000000010000000000000004", repository.LZ4},
		{"next segment, none preferred", "000000010000000000000004", repository.None},
		{"segment on a newer timeline", "000000020000000000000003", repository.LZ4},
		{"partial", "000000010000000000000003.partial", repository.LZ4},
		// PostgreSQL probes for the next timeline's history file at the
		// start of every recovery.
		{"timeline history", "00000002.history", repository.LZ4},
		// Asked for at every promotion from timeline 1, which has none.
		{"timeline 1's history", "00000001.history", repository.LZ4},
		{"backup history", "000000010000000000000003.00000028.backup", repository.LZ4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
			for _, dc := range destCases {
				t.Run(dc.name, func(t *testing.T) {
					dir, dest := prepareDest(t, dc)
					got, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: tc.preferred})
					if !errors.Is(err, storage.ErrNotFound) {
						t.Fatalf("Fetch(%s) of a missing file: got %+v, %v; want an error wrapping storage.ErrNotFound", tc.in, got, err)
					}
					if errors.Is(err, restore.ErrCorrupt) {
						t.Errorf("Fetch(%s) of a missing file: got %v, want no ErrCorrupt", tc.in, err)
					}
					if !strings.Contains(err.Error(), tc.in) {
						t.Errorf("Fetch(%s) error: got %q, want it to name the file", tc.in, err)
					}
					assertDestUntouched(t, dc, dir, dest)
				})
			}
		})
	}
}

// TestFetchTimelineOneHistoryAsksNothing: PostgreSQL never writes
// 00000001.history but asks for it at every promotion from timeline 1; it
// is missing without a request, so a storage outage cannot stop the
// promotion.
func TestFetchTimelineOneHistoryAsksNothing(t *testing.T) {
	t.Parallel()
	b := storagetest.NewFault(mem.New())
	b.Before(storagetest.OpGet, storagetest.AnyKey, func(context.Context, string) error { return storagetest.ErrConnReset })
	b.Before(storagetest.OpStat, storagetest.AnyKey, func(context.Context, string) error { return storagetest.ErrConnReset })
	_, err := restore.Fetch(t.Context(), b, "00000001.history", filepath.Join(t.TempDir(), "RECOVERYHISTORY"), restore.FetchOptions{})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("00000001.history with the storage out: %v; want ErrNotFound", err)
	}
}

// TestFetchGap: a segment missing while a later one of its timeline is
// archived is not "missing" (which would end recovery there) but a
// *GapError, unless AcceptGap; a later segment of another timeline, its
// own partial or backup history file, and the end of the archive leave a
// miss a miss.
func TestFetchGap(t *testing.T) {
	t.Parallel()
	b := mem.New()
	for _, n := range []uint32{3, 5} {
		pushSegment(t, b, seg(1, 0, n), repository.LZ4)
	}
	pushSegment(t, b, seg(2, 0, 2), repository.LZ4)
	push(t, b, "000000010000000000000006.partial", segmentBytes(t, seg(1, 0, 6), 1), repository.LZ4)
	push(t, b, "000000010000000000000006.00000028.backup", []byte("START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\n"), repository.None)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	_, err := restore.Fetch(t.Context(), b, "000000010000000000000004", dest, restore.FetchOptions{Compression: repository.LZ4})
	var gap *restore.GapError
	if !errors.As(err, &gap) || errors.Is(err, storage.ErrNotFound) || gap.Later != "wal/00000001/000000010000000000000005.lz4" {
		t.Fatalf("a segment missing before a later one: %v; want a GapError naming segment 5, not ErrNotFound", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("dest after a gap: %v; want nothing written", err)
	}
	if _, err := restore.Fetch(t.Context(), b, "000000010000000000000004", dest, restore.FetchOptions{Compression: repository.LZ4, AcceptGap: true}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a gap with AcceptGap: %v; want ErrNotFound", err)
	}
	for _, name := range []string{"000000010000000000000006", "000000020000000000000004", "00000003.history"} {
		if _, err := restore.Fetch(t.Context(), b, name, dest, restore.FetchOptions{Compression: repository.LZ4}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Fetch(%s), with no later segment of its timeline: %v; want ErrNotFound", name, err)
		}
	}
}

// barrierBackend holds each of the first want Gets and Stats until all of
// them are in flight at once (reached), or five seconds have passed (long
// for a loaded machine; only a failure waits), and lets later ones
// through. It records every Get's and Stat's key.
type barrierBackend struct {
	storage.Backend
	want    int
	mu      sync.Mutex
	calls   int
	reached bool
	all     chan struct{}
	gets    []string
	stats   []string
}

func (b *barrierBackend) hold(record *[]string, key string) {
	b.mu.Lock()
	*record = append(*record, key)
	b.calls++
	if b.calls > b.want {
		b.mu.Unlock()
		return
	}
	if b.calls == b.want {
		b.reached = true
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(5 * time.Second):
	}
}

func (b *barrierBackend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	b.hold(&b.gets, key)
	return b.Backend.Get(ctx, key)
}

func (b *barrierBackend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	b.hold(&b.stats, key)
	return b.Backend.Stat(ctx, key)
}

// TestFetchMissAsksOnce: the preferred key's Get goes out with a HEAD of
// each other codec's key, all in flight at once; on its miss, only the key
// those HEADs found is read (one round trip more), and only a file under
// no key costs the identity's Stat. Nothing is asked twice.
func TestFetchMissAsksOnce(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	a := pushSegment(t, inner, seg(1, 0, 3), repository.None)
	missing := seg(1, 0, 4).String()
	others := func(name string) []string {
		var keys []string
		for _, c := range repository.Compressions {
			if c != repository.LZ4 {
				keys = append(keys, repository.WALKey(mustClassify(t, name), c))
			}
		}
		return keys
	}
	for _, tc := range []struct {
		in                  string
		wantGets, wantStats []string
	}{
		{a.name, []string{repository.WALKey(mustClassify(t, a.name), repository.LZ4), repository.WALKey(mustClassify(t, a.name), repository.None)}, others(a.name)},
		{missing, []string{repository.WALKey(mustClassify(t, missing), repository.LZ4)}, append(others(missing), repository.IdentityKey)},
	} {
		b := &barrierBackend{Backend: inner, want: len(repository.Compressions), all: make(chan struct{})}
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		_, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: repository.LZ4})
		if tc.in == a.name {
			if err != nil {
				t.Fatalf("Fetch(%s) stored uncompressed, lz4 preferred: %v", tc.in, err)
			}
			assertDest(t, dest, a.raw)
		} else if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Fetch(%s) of a missing segment: got %v, want ErrNotFound", tc.in, err)
		}
		if !b.reached {
			t.Errorf("Fetch(%s): the preferred key's Get and the other codecs' HEADs (%d requests) were not in flight at once", tc.in, b.want)
		}
		slices.Sort(b.gets)
		slices.Sort(b.stats)
		slices.Sort(tc.wantGets)
		slices.Sort(tc.wantStats)
		if !slices.Equal(b.gets, tc.wantGets) || !slices.Equal(b.stats, tc.wantStats) {
			t.Errorf("Fetch(%s): Gets %q, Stats %q; want Gets %q, Stats %q", tc.in, b.gets, b.stats, tc.wantGets, tc.wantStats)
		}
	}
}

// TestFetchNotARepository: a location without walvault.json (a mistyped
// prefix, an empty mount point) must not answer "missing", which would end
// recovery early.
func TestFetchNotARepository(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, b storage.Backend)
		in    string
	}{
		{"empty directory, segment", func(*testing.T, storage.Backend) {}, "000000010000000000000003"},
		{"empty directory, history", func(*testing.T, storage.Backend) {}, "00000002.history"},
		{
			// History files are pushed without creating the identity.
			"only history files", func(t *testing.T, b storage.Backend) {
				push(t, b, "00000002.history", []byte("1\t0/4002D98\tno recovery target specified\n"), repository.LZ4)
			}, "000000020000000000000004",
		},
		{
			"other objects but no identity", func(t *testing.T, b storage.Backend) {
				if err := b.Put(context.Background(), "backups/x/manifest.json", strings.NewReader("{}"), storage.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}, "000000010000000000000003",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			tc.setup(t, b)
			for _, dc := range destCases {
				t.Run(dc.name, func(t *testing.T) {
					dir, dest := prepareDest(t, dc)
					got, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: repository.LZ4})
					if err == nil {
						t.Fatalf("Fetch(%s) from a non-repository: got %+v, nil; want an error", tc.in, got)
					}
					if errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Fetch(%s) from a location without %s: got %v, want an error that is NOT ErrNotFound", tc.in, repository.IdentityKey, err)
					}
					for _, want := range []string{repository.IdentityKey, tc.in, b.Location()} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("Fetch error: got %q, want it to contain %q", err, want)
						}
					}
					assertDestUntouched(t, dc, dir, dest)
				})
			}
		})
	}
}

// lz4Edit decodes an lz4 body, lets edit change the raw bytes, and encodes
// the result again: a well-formed lz4 frame with other content.
func lz4Edit(t testing.TB, body []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	r, err := repository.LZ4.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode the stored lz4 body: %v", err)
	}
	return repotest.Compress(t, repository.LZ4, edit(raw))
}

// TestFetchCorrupt: an object that does not match its recorded checksum or
// size, or cannot be verified, is ErrCorrupt; nothing reaches dest.
func TestFetchCorrupt(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	tests := []struct {
		name   string
		stored repository.Compression
		in     string // file name; the segment when empty
		edit   func(t *testing.T, body []byte, meta map[string]string) []byte
	}{
		{"none: a byte flipped", repository.None, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return flip(4096)(b) }},
		{"none: header byte flipped", repository.None, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return flip(24)(b) }},
		{"none: one byte longer", repository.None, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return append(b, 0) }},
		{"none: one byte shorter", repository.None, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return b[:len(b)-1] }},
		{"none: empty body", repository.None, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return nil }},
		{"lz4: recompressed with a byte flipped", repository.LZ4, "", func(t *testing.T, b []byte, _ map[string]string) []byte { return lz4Edit(t, b, flip(testSegSize-1)) }},
		{"lz4: recompressed one byte longer", repository.LZ4, "", func(t *testing.T, b []byte, _ map[string]string) []byte {
			return lz4Edit(t, b, func(r []byte) []byte { return append(r, 0) })
		}},
		{"lz4: recompressed shorter", repository.LZ4, "", func(t *testing.T, b []byte, _ map[string]string) []byte {
			return lz4Edit(t, b, func(r []byte) []byte { return r[:len(r)/2] })
		}},
		{"lz4: stored bytes flipped", repository.LZ4, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { b[len(b)/2] ^= 0xFF; return b }},
		{"lz4: truncated", repository.LZ4, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return b[:len(b)/2] }},
		{"lz4: not lz4 at all", repository.LZ4, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return []byte("this is not an lz4 frame") }},
		{"lz4: empty body", repository.LZ4, "", func(_ *testing.T, b []byte, _ map[string]string) []byte { return nil }},
		{"raw-size one too small", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaRawSize] = fmt.Sprint(testSegSize - 1)
			return b
		}},
		{"raw-size one too large", repository.None, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaRawSize] = fmt.Sprint(testSegSize + 1)
			return b
		}},
		{"raw-size not a number", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaRawSize] = "1MiB"
			return b
		}},
		{"raw-size missing", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			delete(m, repository.MetaRawSize)
			return b
		}},
		{"sha256 missing", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			delete(m, repository.MetaSHA256)
			return b
		}},
		{"sha256 missing, none", repository.None, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			delete(m, repository.MetaSHA256)
			return b
		}},
		{"sha256 truncated", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaSHA256] = m[repository.MetaSHA256][:63]
			return b
		}},
		{"sha256 of another file", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaSHA256] = strings.Repeat("ab", 32)
			return b
		}},
		{"no metadata at all", repository.None, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			clear(m)
			return b
		}},
		{"compression metadata disagrees with the key", repository.LZ4, "", func(_ *testing.T, b []byte, m map[string]string) []byte {
			m[repository.MetaCompression] = string(repository.None)
			return b
		}},
		{"timeline history changed", repository.LZ4, "00000002.history", func(_ *testing.T, b []byte, _ map[string]string) []byte {
			return bytes.Replace(b, []byte("0/4002D98"), []byte("0/5002D98"), 1)
		}},
		{"timeline history without sha256", repository.LZ4, "00000002.history", func(_ *testing.T, b []byte, m map[string]string) []byte {
			delete(m, repository.MetaSHA256)
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			a := pushSegment(t, b, s, tc.stored)
			if tc.in != "" {
				a = push(t, b, tc.in, []byte("1\t0/4002D98\tno recovery target specified\n"), tc.stored)
			}
			rewrite(t, b, a.key, func(body []byte, meta map[string]string) []byte { return tc.edit(t, body, meta) })
			for _, dc := range destCases {
				t.Run(dc.name, func(t *testing.T) {
					dir, dest := prepareDest(t, dc)

					got, err := restore.Fetch(context.Background(), b, a.name, dest, restore.FetchOptions{Compression: tc.stored})
					t.Logf("Fetch error: %v", err)
					if !errors.Is(err, restore.ErrCorrupt) {
						t.Fatalf("Fetch(%s) of a damaged object: got %+v, %v; want an error wrapping restore.ErrCorrupt", a.name, got, err)
					}
					if errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Fetch(%s) of a damaged object: got %v, want an error that is not ErrNotFound", a.name, err)
					}
					if !strings.Contains(err.Error(), a.key) {
						t.Errorf("Fetch error: got %q, want it to name the key %s", err, a.key)
					}
					assertDestUntouched(t, dc, dir, dest)
				})
			}
		})
	}
}

var errTransient = errors.New("dial tcp 10.0.0.7:443: i/o timeout")

// TestFetchStorageErrors: a storage failure is never "not found" (which
// would end recovery early) and never success.
func TestFetchStorageErrors(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	lz4Key := "wal/00000001/000000010000000000000003.lz4"
	noneKey := "wal/00000001/000000010000000000000003"
	tests := []struct {
		name      string
		stored    repository.Compression
		preferred repository.Compression
		in        string // file name; the pushed segment when empty
		flaky     func(f *storagetest.Fault)
		wantIs    error // the injected error must be wrapped, when set
	}{
		{"Get of the segment times out", repository.LZ4, repository.LZ4, "", func(f *storagetest.Fault) { f.Fail(storagetest.OpGet, storagetest.Prefix("wal/"), errTransient) }, errTransient},
		{"Get of the segment is denied", repository.LZ4, repository.LZ4, "", func(f *storagetest.Fault) {
			f.Fail(storagetest.OpGet, storagetest.Prefix("wal/"), storage.Permanent(errors.New("403 AccessDenied")))
		}, nil},
		{"missing under the preferred key, other key unreadable", repository.None, repository.LZ4, "", func(f *storagetest.Fault) { f.Fail(storagetest.OpGet, storagetest.Key(noneKey), errTransient) }, errTransient},
		{"preferred key unreadable, other key holds it", repository.None, repository.LZ4, "", func(f *storagetest.Fault) { f.Fail(storagetest.OpGet, storagetest.Key(lz4Key), errTransient) }, errTransient},
		{"missing segment, identity unreadable", repository.LZ4, repository.LZ4, "000000010000000000000004", func(f *storagetest.Fault) {
			f.Fail(storagetest.OpStat, storagetest.Key(repository.IdentityKey), errTransient)
		}, errTransient},
		{"missing history, identity unreadable", repository.LZ4, repository.LZ4, "00000002.history", func(f *storagetest.Fault) {
			f.Fail(storagetest.OpStat, storagetest.Key(repository.IdentityKey), errTransient)
		}, errTransient},
		{"lz4 body breaks mid-stream", repository.LZ4, repository.LZ4, "", func(f *storagetest.Fault) { f.BreakBodies(storagetest.AnyKey, 1000) }, nil},
		{"none body breaks mid-stream", repository.None, repository.None, "", func(f *storagetest.Fault) { f.BreakBodies(storagetest.AnyKey, testSegSize/2) }, nil},
		{"body breaks at once", repository.None, repository.None, "", func(f *storagetest.Fault) { f.BreakBodies(storagetest.AnyKey, 0) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inner := mem.New()
			a := pushSegment(t, inner, s, tc.stored)
			name := a.name
			if tc.in != "" {
				name = tc.in
			}
			f := storagetest.NewFault(inner)
			tc.flaky(f)
			for _, dc := range destCases {
				t.Run(dc.name, func(t *testing.T) {
					runStorageFailure(t, f, name, tc.preferred, tc.wantIs, dc)
				})
			}
		})
	}
}

func runStorageFailure(t *testing.T, b storage.Backend, name string, preferred repository.Compression, wantIs error, dc destCase) {
	t.Helper()
	dir, dest := prepareDest(t, dc)
	got, err := restore.Fetch(context.Background(), b, name, dest, restore.FetchOptions{Compression: preferred})
	t.Logf("Fetch error: %v", err)
	if err == nil {
		t.Fatalf("Fetch(%s) with a failing storage: got %+v, nil; want an error", name, got)
	}
	if errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Fetch(%s) with a failing storage: got %v, want an error that is NOT ErrNotFound", name, err)
	}
	if errors.Is(err, restore.ErrCorrupt) {
		t.Errorf("Fetch(%s) with a failing storage: got %v, want no ErrCorrupt (the stored object is fine)", name, err)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("Fetch(%s) with a failing storage: got %v, want an error wrapping %v", name, err, wantIs)
	}
	if !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), "000000010000000000000003") {
		t.Errorf("Fetch(%s) error: got %q, want it to name the file", name, err)
	}
	assertDestUntouched(t, dc, dir, dest)
}

// TestFetchRepositoryVanished: a repository root that disappears (an
// unmounted disk) after the backend was opened is an error, not "missing".
func TestFetchRepositoryVanished(t *testing.T) {
	t.Parallel()
	for _, dc := range destCases {
		t.Run(dc.name, func(t *testing.T) {
			b, root := filetest.New(t)
			a := pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
			if err := os.RemoveAll(root); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{a.name, "000000010000000000000004"} {
				dir, dest := prepareDest(t, dc)
				_, err := restore.Fetch(context.Background(), b, name, dest, restore.FetchOptions{Compression: repository.LZ4})
				if err == nil || errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Fetch(%s) from a vanished repository: got %v, want an error that is not ErrNotFound", name, err)
				}
				assertDestUntouched(t, dc, dir, dest)
			}
		})
	}
}

// TestFetchCancelled: a cancelled context (wal-fetch's deadline) is an
// error, not "missing".
func TestFetchCancelled(t *testing.T) {
	t.Parallel()
	b := mem.New()
	a := pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{a.name, "000000010000000000000004"} {
		dc := destCase{"dest absent", false}
		dir, dest := prepareDest(t, dc)
		_, err := restore.Fetch(ctx, b, name, dest, restore.FetchOptions{Compression: repository.LZ4})
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Fetch(%s) with a cancelled context: got %v, want an error that is not ErrNotFound", name, err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch(%s) with a cancelled context: got %v, want an error wrapping context.Canceled", name, err)
		}
		assertDestUntouched(t, dc, dir, dest)
	}
}

// TestFetchBadName: restore_command's %f is a WAL file name; anything else
// is an error of its own, never "missing", and nothing is fetched.
func TestFetchBadName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"RECOVERYXLOG", "RECOVERYXLOG"},
		{"a path", "pg_wal/000000010000000000000003"},
		{"parent path", "../000000010000000000000003"},
		{"a key suffix", "000000010000000000000003.lz4"},
		{"lower case", "00000001000000000000000a"},
		{"timeline 0 history", "00000000.history"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inner := mem.New()
			pushSegment(t, inner, seg(1, 0, 3), repository.LZ4)
			b := storagetest.NewFault(inner)
			dc := destCase{"dest exists", true}
			dir, dest := prepareDest(t, dc)
			got, err := restore.Fetch(context.Background(), b, tc.in, dest, restore.FetchOptions{Compression: repository.LZ4})
			if !errors.Is(err, wal.ErrNotWALName) {
				t.Fatalf("Fetch(%q): got %+v, %v; want an error wrapping wal.ErrNotWALName", tc.in, got, err)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Fetch(%q): got %v, want an error that is not ErrNotFound", tc.in, err)
			}
			if n := b.Calls(storagetest.OpGet); n != 0 {
				t.Errorf("Fetch(%q): storage Gets got %d, want 0", tc.in, n)
			}
			assertDestUntouched(t, dc, dir, dest)
		})
	}
}

// TestFetchDestDirMissing: a destination that cannot be written is an
// error, not "missing".
func TestFetchDestDirMissing(t *testing.T) {
	t.Parallel()
	b := mem.New()
	a := pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
	dest := filepath.Join(t.TempDir(), "no-such-dir", "RECOVERYXLOG")
	_, err := restore.Fetch(context.Background(), b, a.name, dest, restore.FetchOptions{Compression: repository.LZ4})
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, restore.ErrCorrupt) {
		t.Errorf("Fetch into a missing directory: got %v, want a plain error (not ErrNotFound, not ErrCorrupt)", err)
	}
}

// TestFetchSegmentOfManyBlocks: a segment stored as several lz4 blocks,
// which wal-fetch decodes on several cores at once, comes back whole; a
// byte changed in a later block is refused, a body that breaks there is a
// storage error, and a body longer than its recorded size is refused
// before its end: in each case nothing reaches dest, and no decoder is
// left behind (the fetch stopped reading before the last block).
func TestFetchSegmentOfManyBlocks(t *testing.T) {
	const segSize = 4 << 20 // four 1 MiB blocks
	s := seg(1, 0, 1)
	raw := waltest.Cluster{SystemID: testSysID, SegmentSize: segSize}.Segment(t, s, 1)
	// Compressible past the first page, as WAL is, so the blocks are
	// decoded rather than stored as they are.
	for i := 8192; i < len(raw); i++ {
		raw[i] = byte(i/512) ^ byte(i%7)
	}
	fresh := func(t *testing.T) (storage.Backend, archived) {
		b := mem.New()
		return b, push(t, b, s.String(), raw, repository.LZ4)
	}
	stored := func(t *testing.T, b storage.Backend, key string) int64 {
		info, err := b.Stat(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size > segSize/4 {
			t.Fatalf("stored %d bytes for a %d byte segment: the test segment does not compress", info.Size, segSize)
		}
		return info.Size
	}
	fetch := func(b storage.Backend, dest string, ids *crypt.Identities) error {
		_, err := restore.Fetch(context.Background(), b, s.String(), dest, restore.FetchOptions{Compression: repository.LZ4, Identities: ids})
		return err
	}
	// failedFetch fetches from b into an existing dest, which must be left
	// as it was, and returns the error once the fetch's goroutines are gone.
	failedFetch := func(t *testing.T, b storage.Backend, ids *crypt.Identities) error {
		t.Helper()
		dir, dest := prepareDest(t, destCases[1])
		before := runtime.NumGoroutine()
		err := fetch(b, dest, ids)
		assertDestUntouched(t, destCases[1], dir, dest)
		waitGoroutines(t, before)
		return err
	}

	t.Run("whole", func(t *testing.T) {
		b, _ := fresh(t)
		_, dest := prepareDest(t, destCases[0])
		if err := fetch(b, dest, nil); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		assertDest(t, dest, raw)
	})
	t.Run("a byte changed in the third block", func(t *testing.T) {
		b, a := fresh(t)
		n := stored(t, b, a.key)
		rewrite(t, b, a.key, func(body []byte, _ map[string]string) []byte { body[n*5/8] ^= 0x20; return body })
		if err := failedFetch(t, b, nil); !errors.Is(err, restore.ErrCorrupt) {
			t.Fatalf("Fetch of a changed object: got %v, want ErrCorrupt", err)
		}
	})
	t.Run("the body breaks in the third block", func(t *testing.T) {
		b, a := fresh(t)
		n := stored(t, b, a.key)
		f := storagetest.NewFault(b)
		f.BreakBodies(storagetest.AnyKey, n*5/8)
		if err := failedFetch(t, f, nil); err == nil || errors.Is(err, restore.ErrCorrupt) || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Fetch of a body that breaks: got %v, want a storage error (neither corrupt nor missing)", err)
		}
	})
	t.Run("encrypted", func(t *testing.T) {
		key := crypttest.NewKey(t)
		b := mem.New()
		src, _ := waltest.WriteFile(t, t.TempDir(), s.String(), raw)
		res, err := archive.Push(context.Background(), b, src, archive.Options{
			Compression: repository.LZ4, Recipients: crypttest.Recipients(t, key), Host: "db-1", Version: "test",
		})
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
		ids := key.Identities(t)
		_, dest := prepareDest(t, destCases[0])
		if err := fetch(b, dest, ids); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		assertDest(t, dest, raw)
		// A ciphertext byte changed in its middle: the decryption refuses
		// that chunk while blocks before it are being decoded.
		n := stored(t, b, res.Key)
		rewrite(t, b, res.Key, func(body []byte, _ map[string]string) []byte { body[n/2] ^= 0x01; return body })
		if err := failedFetch(t, b, ids); !errors.Is(err, restore.ErrCorrupt) {
			t.Fatalf("Fetch of a changed ciphertext: got %v, want ErrCorrupt", err)
		}
	})
	t.Run("longer than its recorded size", func(t *testing.T) {
		b, a := fresh(t)
		rewrite(t, b, a.key, func(body []byte, meta map[string]string) []byte {
			meta[repository.MetaRawSize] = fmt.Sprint(segSize / 2)
			return body
		})
		if err := failedFetch(t, b, nil); !errors.Is(err, restore.ErrCorrupt) {
			t.Fatalf("Fetch of a body longer than its raw-size: got %v, want ErrCorrupt", err)
		}
	})
}

// waitGoroutines fails unless the goroutines are back to at most n within
// a few seconds: what a call started has ended.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, %d before the call:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFetchMissingThoughShown: a file that is absent to every request but
// is still no end of the archive: its own key lists a version (the storage
// did not serve it), the last segment of a timeline before its switch
// (the timeline's partial comes after it), a history file beside its
// timeline's WAL. Each is a GapError, never "missing".
func TestFetchMissingThoughShown(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	pushSegment(t, inner, seg(1, 0, 3), repository.LZ4)
	pushSegment(t, inner, seg(1, 0, 4), repository.LZ4)
	push(t, inner, "000000010000000000000006.partial", segmentBytes(t, seg(1, 0, 6), 1), repository.LZ4)
	pushSegment(t, inner, seg(2, 0, 6), repository.LZ4)
	f := storagetest.NewFault(inner)
	// Segment 4 and 00000002.history are not served (404), though stored.
	f.Before(storagetest.OpGet, func(key string) bool {
		return strings.Contains(key, "000000010000000000000004") || strings.HasSuffix(key, "00000002.history")
	}, func(_ context.Context, key string) error { return storage.OpError("get", key, storage.ErrNotFound) })
	b := f.Versioned()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	for _, tc := range []struct{ name, why string }{
		{"000000010000000000000004", "its listing shows"},
		{"000000010000000000000005", "though the later 000000010000000000000006.partial"},
	} {
		_, err := restore.Fetch(t.Context(), b, tc.name, dest, restore.FetchOptions{Compression: repository.LZ4})
		var gap *restore.GapError
		if !errors.As(err, &gap) || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("Fetch(%s): %v; want a GapError saying %q", tc.name, err, tc.why)
		}
	}
	// 00000002.history was never pushed, but timeline 2 has WAL.
	_, err := restore.Fetch(t.Context(), b, "00000002.history", dest, restore.FetchOptions{Compression: repository.LZ4})
	var gap *restore.GapError
	if !errors.As(err, &gap) || !strings.Contains(err.Error(), "000000020000000000000006") {
		t.Errorf("Fetch(00000002.history) beside timeline 2's WAL: %v; want a GapError naming its WAL", err)
	}
	if _, err := restore.Fetch(t.Context(), b, "00000003.history", dest, restore.FetchOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Fetch(00000003.history), no timeline 3: %v; want ErrNotFound", err)
	}
}

// TestFetchVersionsUnlisted: a failed listing of an object's versions
// caches nothing in the prefetcher, fails a fetch while it lasts, and,
// refused for good, fails it in a repository under Object Lock and serves
// the current version elsewhere.
func TestFetchVersionsUnlisted(t *testing.T) {
	t.Parallel()
	for _, locked := range []bool{false, true} {
		inner := mem.New()
		s := seg(1, 0, 3)
		push(t, inner, s.String(), segmentBytes(t, s, 1), repository.LZ4)
		if locked { // the same repository, under Object Lock
			id, err := repository.LoadIdentity(t.Context(), inner)
			if err != nil {
				t.Fatal(err)
			}
			if err := inner.Delete(t.Context(), repository.IdentityKey); err != nil {
				t.Fatal(err)
			}
			if _, err := repository.EnsureIdentity(t.Context(), inner, id.WithLock(repository.LockPolicy{Mode: storage.Governance, Days: 1}), nil); err != nil {
				t.Fatal(err)
			}
		}
		f := storagetest.NewFault(inner)
		var listErr error
		f.Before(storagetest.OpVersions, storagetest.AnyKey, func(context.Context, string) error { return listErr })
		b := f.Versioned()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		listErr = storagetest.ErrConnReset
		if _, err := restore.Fetch(t.Context(), b, s.String(), dest, restore.FetchOptions{Compression: repository.LZ4}); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("locked %v: a listing that keeps failing: %v; want the fetch to fail", locked, err)
		}
		listErr = storage.Permanent(errors.New("AccessDenied"))
		_, err := restore.Fetch(t.Context(), b, s.String(), dest, restore.FetchOptions{Compression: repository.LZ4})
		if locked && (err == nil || !strings.Contains(err.Error(), "Object Lock")) || !locked && err != nil {
			t.Errorf("locked %v: a listing refused for good: %v", locked, err)
		}
	}
}

// listingBarrier is a versioned store that holds the Get and the version
// listing of key until both are in flight at once, or five seconds have
// passed (timedOut), and counts the listings of key.
type listingBarrier struct {
	*mem.Backend
	key      string
	mu       sync.Mutex
	arrived  int
	listings int
	timedOut bool
	both     chan struct{}
}

func (b *listingBarrier) hold(key string, listing bool) {
	if key != b.key {
		return
	}
	b.mu.Lock()
	if listing {
		b.listings++
	}
	b.arrived++
	if b.arrived == 2 {
		close(b.both)
	}
	b.mu.Unlock()
	select {
	case <-b.both:
	case <-time.After(5 * time.Second):
		b.mu.Lock()
		b.timedOut = true
		b.mu.Unlock()
	}
}

func (b *listingBarrier) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	b.hold(key, false)
	return b.Backend.Get(ctx, key)
}

func (b *listingBarrier) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	b.hold(key, true)
	return b.Backend.Versions(ctx, key)
}

// TestFetchOtherCodecListsBeside: a segment served from a codec's key
// other than the preferred one (a zstd repository restored with lz4
// preferred) has its versions listed beside its Get, not after it, and
// once.
func TestFetchOtherCodecListsBeside(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	a := pushSegment(t, inner, seg(1, 0, 3), repository.Zstd)
	b := &listingBarrier{Backend: inner, key: repository.WALKey(mustClassify(t, a.name), repository.Zstd), both: make(chan struct{})}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := restore.Fetch(t.Context(), b, a.name, dest, restore.FetchOptions{Compression: repository.LZ4}); err != nil {
		t.Fatalf("Fetch(%s) stored with zstd, lz4 preferred: %v", a.name, err)
	}
	assertDest(t, dest, a.raw)
	if b.timedOut || b.listings != 1 {
		t.Errorf("Fetch(%s) from %s: listing and Get not in flight at once: %v; listings: %d, want 1", a.name, b.key, b.timedOut, b.listings)
	}
}

// TestFetchEndOfArchiveBesideForeignFile: a file another tool left in a
// file:// repository's timeline folder (a note, an NFS .nfs file) does not
// stop the end-of-archive answer recovery asks for (explore22d F3: every
// recovery ended in FATAL after the whole timeout).
func TestFetchEndOfArchiveBesideForeignFile(t *testing.T) {
	t.Parallel()
	b, root := filetest.New(t)
	pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
	if err := os.WriteFile(filepath.Join(root, "wal", "00000001", "notes.txt"), []byte("moved segment 4 to /backup\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := restore.Fetch(t.Context(), b, seg(1, 0, 4).String(), filepath.Join(t.TempDir(), "RECOVERYXLOG"), restore.FetchOptions{Compression: repository.LZ4})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Fetch past the archive's end beside a foreign file: %v; want ErrNotFound", err)
	}
}

// TestFetchRemovesStaleTemps: a temporary file a killed wal-fetch left
// beside the destination (in pg_wal, where nothing else removes it) goes
// at the next fetch to that name once it is an hour old; a fresh one, and
// other files, stay (explore22b F4).
func TestFetchRemovesStaleTemps(t *testing.T) {
	t.Parallel()
	b := mem.New()
	a := pushSegment(t, b, seg(1, 0, 3), repository.LZ4)
	dir := t.TempDir()
	stale, fresh, other := filepath.Join(dir, ".RECOVERYXLOG.walvault-111"), filepath.Join(dir, ".RECOVERYXLOG.walvault-222"), filepath.Join(dir, "000000010000000000000002")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := restore.Fetch(t.Context(), b, a.name, filepath.Join(dir, "RECOVERYXLOG"), restore.FetchOptions{Compression: repository.LZ4}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v; want it removed", err)
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
}
