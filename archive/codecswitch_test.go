package archive_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// TestPushAcrossCodecSwitch: the compression setting changed between two
// pushes of one segment (PostgreSQL retries after a crash). The same file
// is already archived (exit 0, nothing stored under the new codec's key); a
// different one is a conflict naming both checksums, and nothing is stored
// either. Fetch reads the one copy whatever codec it prefers. Both with
// walvault.json read on every push and with the identity cached.
func TestPushAcrossCodecSwitch(t *testing.T) {
	t.Parallel()
	switches := []struct{ first, second repository.Compression }{
		{repository.LZ4, repository.Zstd},
		{repository.Zstd, repository.LZ4},
		{repository.Zstd, repository.None},
		{repository.None, repository.Zstd},
	}
	for _, sw := range switches {
		for _, cached := range []bool{false, true} {
			name := string(sw.first) + " then " + string(sw.second)
			if cached {
				name += ", identity cached"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := mem.New()
				walDir := t.TempDir()
				s := seg(1, 0, 5)
				options := func(c repository.Compression) archive.Options {
					if !cached {
						return opts(c)
					}
					clk := newClock()
					o := clk.opts(ttl)
					o.Compression = c
					return o
				}
				src, sum := writeSegment(t, walDir, s.String(), header(t, s), 1)
				first := mustPush(t, b, src, options(sw.first))
				if want := walKey(t, s.String(), sw.first); first.Key != want {
					t.Fatalf("first push: key %q, want %q", first.Key, want)
				}
				stored, info := object(t, b, first.Key)

				again, err := archive.Push(context.Background(), b, src, options(sw.second))
				want := archive.Result{File: first.File, Key: first.Key, RawSize: testSegSize, StoredSize: info.Size, SHA256: sum, AlreadyArchived: true}
				if err != nil || again != want {
					t.Fatalf("push of the same file in %s: got %+v, %v; want %+v", sw.second, again, err, want)
				}
				assertAbsent(t, b, walKey(t, s.String(), sw.second))

				otherDir := t.TempDir()
				other, otherSum := writeSegment(t, otherDir, s.String(), header(t, s), 2)
				_, err = archive.Push(context.Background(), b, other, options(sw.second))
				if !errors.Is(err, archive.ErrConflict) {
					t.Fatalf("push of a different file in %s: got %v, want ErrConflict", sw.second, err)
				}
				for _, want := range []string{sum, otherSum, "nothing was overwritten"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("conflict message %q lacks %q", err, want)
					}
				}
				assertAbsent(t, b, walKey(t, s.String(), sw.second))
				if after, _ := object(t, b, first.Key); !bytes.Equal(after, stored) {
					t.Errorf("%s changed", first.Key)
				}
				for _, pref := range repository.Compressions {
					dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
					if _, err := restore.Fetch(context.Background(), b, s.String(), dest, restore.FetchOptions{Compression: pref}); err != nil {
						t.Fatalf("Fetch preferring %s: %v", pref, err)
					}
					assertSameFile(t, dest, src)
				}
			})
		}
	}
}

// TestPushMixedCodecRepository: segments pushed in lz4, then zstd, then lz4
// again each keep their codec; all come back from wal-fetch, whatever the
// fetch prefers.
func TestPushMixedCodecRepository(t *testing.T) {
	t.Parallel()
	b := mem.New()
	dir := t.TempDir()
	codecs := []repository.Compression{repository.LZ4, repository.Zstd, repository.LZ4, repository.Zstd, repository.None}
	var paths []string
	for i, c := range codecs {
		s := seg(1, 0, uint32(i+1))
		p, _ := writeSegment(t, dir, s.String(), header(t, s), uint64(i+10))
		o := opts(c)
		if c == repository.Zstd {
			o.ZstdLevel = 19
		}
		res := mustPush(t, b, p, o)
		if want := walKey(t, s.String(), c); res.Key != want {
			t.Errorf("push %d in %s: key %q, want %q", i, c, res.Key, want)
		}
		if _, info := object(t, b, res.Key); info.Metadata[repository.MetaCompression] != string(c) {
			t.Errorf("metadata of %s: compression %q, want %q", res.Key, info.Metadata[repository.MetaCompression], c)
		}
		paths = append(paths, p)
	}
	for _, pref := range []repository.Compression{repository.LZ4, repository.Zstd} {
		for i, p := range paths {
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if _, err := restore.Fetch(context.Background(), b, filepath.Base(p), dest, restore.FetchOptions{Compression: pref}); err != nil {
				t.Fatalf("Fetch %d preferring %s: %v", i, pref, err)
			}
			assertSameFile(t, dest, p)
		}
	}
}

// statFailing fails Stat of one key with a storage error.
type statFailing struct {
	storage.Backend
	key string
}

func (s statFailing) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if key == s.key {
		return storage.ObjectInfo{}, errors.New("503 slow down")
	}
	return s.Backend.Stat(ctx, key)
}

// TestPushOtherCodecLookupFails: when whether another codec's key holds
// the segment cannot be told, nothing is stored and the push fails (a
// retry asks again), rather than risking a second, different copy.
func TestPushOtherCodecLookupFails(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 6)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	_, err := archive.Push(context.Background(), statFailing{b, walKey(t, s.String(), repository.Zstd)}, src, opts(repository.LZ4))
	if err == nil || !strings.Contains(err.Error(), "503 slow down") {
		t.Fatalf("Push with the zstd key's lookup failing: got %v, want the storage error", err)
	}
	assertAbsent(t, b, walKey(t, s.String(), repository.LZ4))
	if res := mustPush(t, b, src, opts(repository.LZ4)); res.AlreadyArchived {
		t.Errorf("retry: got %+v, want stored", res)
	}
}
