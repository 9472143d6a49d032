package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

const overwrittenSeg = "000000010000000000000005"

// overwrite puts body over key without a condition, as an attacker with
// walvault's credentials can: a newer version in a versioned bucket.
func overwrite(t *testing.T, b storage.Backend, key string, body []byte, meta map[string]string) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Size: int64(len(body)), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

// forgedOver puts over key a version with walvault's metadata for raw but
// another body: it passes the metadata check and fails the checksum.
func forgedOver(t *testing.T, b storage.Backend, key string, raw []byte) {
	t.Helper()
	sum := sha256.Sum256(raw)
	overwrite(t, b, key, repotest.Compress(t, repository.LZ4, bytes.Repeat([]byte{'x'}, len(raw))), map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.Itoa(len(raw)),
		repository.MetaCompression: string(repository.LZ4),
	})
}

func fetchSeg(b storage.Backend, dest string, opts FetchOptions) (FetchResult, error) {
	opts.Compression = repository.LZ4
	return Fetch(context.Background(), b, overwrittenSeg, dest, opts)
}

// TestFetchOverwritten: a segment overwritten twice (a forged version, then
// garbage without metadata) is served from its genuine older version, with
// a warning naming the key and that version.
func TestFetchOverwritten(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, b, overwrittenSeg, raw)
	vs, err := b.Versions(context.Background(), key)
	if err != nil || len(vs) != 1 {
		t.Fatalf("Versions(%s): got %v, %v", key, vs, err)
	}
	genuine := vs[0].ID
	forgedOver(t, b, key, raw)
	overwrite(t, b, key, []byte("garbage"), nil)

	log, logs := testLogger()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	res, err := fetchSeg(b, dest, FetchOptions{Log: log})
	if err != nil {
		t.Fatalf("Fetch of an overwritten segment: got %v, want nil", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) || res.Key != key || res.RawSize != int64(len(raw)) {
		t.Errorf("Fetch of an overwritten segment: wrote %d bytes from %s (result %d bytes), want the %d genuine bytes from %s", len(got), res.Key, res.RawSize, len(raw), key)
	}
	wantLog(t, logs.String(), "level=WARN", "key="+key, "version="+genuine, "object overwritten", "not walvault's")
}

// TestFetchOverwrittenNoGenuine: when no version passes the checks, the
// fetch is corrupt as before, and dest is left as it was.
func TestFetchOverwrittenNoGenuine(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := repository.WALKey(waltest.FileName(t, overwrittenSeg), repository.LZ4)
	// Every version is bad: the oldest is a forged one.
	forgedOver(t, b, key, raw)
	overwrite(t, b, key, []byte("garbage"), nil)
	overwrite(t, b, key, []byte("more garbage"), nil)

	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if err := os.WriteFile(dest, []byte("before"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger()
	_, err := fetchSeg(b, dest, FetchOptions{Log: log})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no valid sha256/raw-size metadata") {
		t.Errorf("Fetch with no genuine version: got %v, want the current version's ErrCorrupt", err)
	}
	if got, _ := os.ReadFile(dest); string(got) != "before" {
		t.Errorf("Fetch with no genuine version: dest holds %q, want it untouched", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("Fetch with no genuine version: %d files left in dest's directory, want dest alone", len(ents))
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("Fetch with no genuine version: warned, want no warning:\n%s", logs)
	}
}

// TestFetchCorruptNotVersioned: a backend without versions answers a
// corrupt object with ErrCorrupt, as before, even when the storage under
// it keeps the genuine version.
func TestFetchCorruptNotVersioned(t *testing.T) {
	t.Parallel()
	inner := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, inner, overwrittenSeg, raw)
	overwrite(t, inner, key, []byte("garbage"), nil)
	b := storagetest.NewFault(inner) // not storage.Versioned, and no Unwrap
	if _, ok := storage.AsVersioned(b); ok {
		t.Fatal("AsVersioned(Fault): got true")
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := fetchSeg(b, dest, FetchOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Fetch of a corrupt segment without versions: got %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Fetch of a corrupt segment without versions: dest exists (%v), want nothing written", err)
	}
}

// TestFetchOverwrittenLookupFails: a transient failure to list or read the
// older versions is a storage error, not the corrupt verdict; a permanent
// refusal to list or read them leaves ErrCorrupt, with a warning.
func TestFetchOverwrittenLookupFails(t *testing.T) {
	t.Parallel()
	var lookupErr error
	var failing storagetest.Op
	inner := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, inner, overwrittenSeg, raw)
	overwrite(t, inner, key, []byte("garbage"), nil)
	f := storagetest.NewFault(inner)
	b := f.Versioned() // its Versions and GetVersion are inner's
	log, logs := testLogger()
	fetch := func() error {
		_, err := fetchSeg(b, filepath.Join(t.TempDir(), "x"), FetchOptions{Log: log})
		return err
	}
	for _, op := range []storagetest.Op{storagetest.OpVersions, storagetest.OpGetVersion} {
		f.Before(op, storagetest.AnyKey, func(context.Context, string) error {
			if op == failing {
				return lookupErr
			}
			return nil
		})
	}
	lookupErr = errors.New("read tcp 127.0.0.1:9000: connection reset by peer")
	for _, failing = range []storagetest.Op{storagetest.OpVersions, storagetest.OpGetVersion} {
		if err := fetch(); err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("Fetch when %s fails: got %v, want the storage error, neither ErrCorrupt nor ErrNotFound", failing, err)
		}
	}
	lookupErr = storage.Permanent(errors.New("AccessDenied"))
	for _, failing = range []storagetest.Op{storagetest.OpVersions, storagetest.OpGetVersion} {
		logs.Reset()
		if err := fetch(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Fetch when the storage refuses %s: got %v, want ErrCorrupt", failing, err)
		}
		wantLog(t, logs.String(), "level=WARN", "key="+key, "s3:ListBucketVersions", "s3:GetObjectVersion")
	}
}

// TestPrefetchLeavesOverwritten: the prefetcher's download of an
// overwritten segment fails as corrupt and writes nothing, so wal-fetch
// serves it, with its warning, rather than a silent cache hit.
func TestPrefetchLeavesOverwritten(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, b, overwrittenSeg, raw)
	overwrite(t, b, key, []byte("garbage"), nil)
	log, logs := testLogger()
	dest := filepath.Join(t.TempDir(), overwrittenSeg)
	if _, err := fetch(context.Background(), b, overwrittenSeg, dest, FetchOptions{Compression: repository.LZ4, Log: log}, true); !errors.Is(err, ErrCorrupt) {
		t.Errorf("prefetch of an overwritten segment: got %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prefetch of an overwritten segment: %s exists (%v), want nothing written", dest, err)
	}
	if logs.Len() != 0 {
		t.Errorf("prefetch of an overwritten segment logged:\n%s", logs)
	}
}

// TestFetchAnotherSegmentsObject: another segment's object copied over a
// key, metadata and all, passes the sha256 check; its header names the
// other segment, and PostgreSQL would take the wrong page address for the
// end of WAL and end recovery there. It is corrupt: the genuine older
// version is served when the bucket keeps it, and otherwise nothing is
// written.
func TestFetchAnotherSegmentsObject(t *testing.T) {
	t.Parallel()
	copyOver := func(t *testing.T, b storage.Backend, from, to string) {
		rc, info, err := b.Get(context.Background(), from)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		overwrite(t, b, to, body, info.Metadata)
	}
	const other = "000000010000000000000004"
	t.Run("versioned", func(t *testing.T) {
		t.Parallel()
		b := newFixtureRepo(t)
		raw := segmentRaw(t, overwrittenSeg)
		key := putWAL(t, b, overwrittenSeg, raw)
		copyOver(t, b, putWAL(t, b, other, segmentRaw(t, other)), key)
		log, logs := testLogger()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		if _, err := fetchSeg(b, dest, FetchOptions{Log: log}); err != nil {
			t.Fatalf("Fetch: %v, want the genuine older version", err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) {
			t.Errorf("Fetch wrote %d bytes, want segment %s's own", len(got), overwrittenSeg)
		}
		wantLog(t, logs.String(), "level=WARN", "object overwritten", "versions=2")
	})
	t.Run("no older version", func(t *testing.T) {
		t.Parallel()
		inner := newFixtureRepo(t)
		key := repository.WALKey(waltest.FileName(t, overwrittenSeg), repository.LZ4)
		copyOver(t, inner, putWAL(t, inner, other, segmentRaw(t, other)), key)
		b := storagetest.NewFault(inner) // no versions to fall back on
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		_, err := fetchSeg(b, dest, FetchOptions{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "header page address 0/400000, file name says 0/500000") {
			t.Errorf("Fetch: %v; want ErrCorrupt naming the header's page address", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dest exists (%v), want nothing written", err)
		}
	})
}

// TestFetchShadowedByAValidVersion: a newer version put over a segment
// whose own content and metadata pass every check (another recording of
// the segment: what an attacker with the host's credentials can put over a
// locked original to end a recovery early) is not served: walvault writes
// each WAL file once, so the oldest version is its own, and that is served,
// with a warning. The prefetcher leaves such a key to wal-fetch.
func TestFetchShadowedByAValidVersion(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, b, overwrittenSeg, raw)
	s, err := wal.ParseSegmentName(overwrittenSeg)
	if err != nil {
		t.Fatal(err)
	}
	forged := waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}.Segment(t, s, 99)
	sum := sha256.Sum256(forged)
	overwrite(t, b, key, repotest.Compress(t, repository.LZ4, forged), map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.Itoa(len(forged)),
		repository.MetaCompression: string(repository.LZ4),
	})
	if _, err := fetch(context.Background(), b, overwrittenSeg, filepath.Join(t.TempDir(), overwrittenSeg), FetchOptions{Compression: repository.LZ4}, true); !errors.Is(err, ErrCorrupt) {
		t.Errorf("prefetch of a key with two versions: %v; want it left to wal-fetch", err)
	}
	log, logs := testLogger()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := fetchSeg(b, dest, FetchOptions{Log: log}); err != nil {
		t.Fatalf("Fetch of a segment shadowed by a valid version: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) {
		t.Fatal("Fetch served the newer version, not walvault's own")
	}
	wantLog(t, logs.String(), "level=WARN", "object overwritten", "key="+key, "versions=2")
}

// TestFetchTwoCodecCopies: a segment stored under a second codec's key
// (put beside walvault's by someone else: wal-push stores each file
// once, under one key) is not served in place of walvault's older copy,
// even when the restore prefers that codec.
func TestFetchTwoCodecCopies(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	putWAL(t, b, overwrittenSeg, raw) // lz4
	s, err := wal.ParseSegmentName(overwrittenSeg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a later LastModified
	forged := waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}.Segment(t, s, 99)
	zkey := repository.WALKey(waltest.FileName(t, overwrittenSeg), repository.Zstd)
	repotest.PutWAL(t, b, zkey, repository.Zstd, forged, nil)
	log, logs := testLogger()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := Fetch(context.Background(), b, overwrittenSeg, dest, FetchOptions{Compression: repository.Zstd, Log: log}); err != nil {
		t.Fatalf("Fetch preferring zstd: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) {
		t.Fatal("Fetch served the copy under the second codec's key, not walvault's")
	}
	wantLog(t, logs.String(), "level=WARN", "two codecs' keys", "other="+zkey)
}

// TestFetchTwoCodecCopiesAfterOverwrite: a copy put beside walvault's
// under another codec's key, followed by a new version put over
// walvault's key (so its current version is the newest of all), is not
// served: the keys are ordered by when each was first written (its oldest
// version), and walvault's key then serves its own oldest version
// (explore22a F6: the forged copy ended a restore early).
func TestFetchTwoCodecCopiesAfterOverwrite(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, overwrittenSeg)
	key := putWAL(t, b, overwrittenSeg, raw) // lz4
	s, err := wal.ParseSegmentName(overwrittenSeg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // later LastModifieds
	forged := waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}.Segment(t, s, 99)
	zkey := repository.WALKey(waltest.FileName(t, overwrittenSeg), repository.Zstd)
	repotest.PutWAL(t, b, zkey, repository.Zstd, forged, nil)
	time.Sleep(10 * time.Millisecond)
	sum := sha256.Sum256(forged)
	overwrite(t, b, key, repotest.Compress(t, repository.LZ4, forged), map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.Itoa(len(forged)),
		repository.MetaCompression: string(repository.LZ4),
	})
	for _, preferred := range []repository.Compression{repository.LZ4, repository.Zstd} {
		log, logs := testLogger()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		if _, err := Fetch(context.Background(), b, overwrittenSeg, dest, FetchOptions{Compression: preferred, Log: log}); err != nil {
			t.Fatalf("Fetch preferring %s: %v", preferred, err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) {
			t.Errorf("Fetch preferring %s served a forged copy, not walvault's first", preferred)
		}
		wantLog(t, logs.String(), "level=WARN", "two codecs' keys", "served="+key)
	}
}

// TestFetchOtherCodecLookupFails: when asking whether another codec's key
// holds the file fails, the fetch fails (the copy found may be the one
// put beside walvault's), and nothing is written.
func TestFetchOtherCodecLookupFails(t *testing.T) {
	t.Parallel()
	inner := newFixtureRepo(t)
	putWAL(t, inner, overwrittenSeg, segmentRaw(t, overwrittenSeg))
	f := storagetest.NewFault(inner)
	f.Before(storagetest.OpStat, storagetest.Contains(overwrittenSeg+".zst"), func(context.Context, string) error { return storagetest.ErrConnReset })
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := Fetch(context.Background(), f.Versioned(), overwrittenSeg, dest, FetchOptions{Compression: repository.LZ4}); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Fetch with the other codec's key unanswered: %v; want a failure", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("dest after a failed fetch: %v; want nothing written", err)
	}
}

// TestPrefetchLeavesTwoCodecCopies: the prefetcher caches nothing of a
// segment stored under two codecs' keys, also when walvault's copy is
// hidden behind a delete marker (where the prefetcher does not look):
// wal-fetch serves it, the older copy, with its warning in PostgreSQL's
// log.
func TestPrefetchLeavesTwoCodecCopies(t *testing.T) {
	t.Parallel()
	for _, hidden := range []bool{false, true} {
		b := newFixtureRepo(t)
		raw := segmentRaw(t, overwrittenSeg)
		key := putWAL(t, b, overwrittenSeg, raw) // lz4, walvault's
		s, err := wal.ParseSegmentName(overwrittenSeg)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		forged := waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}.Segment(t, s, 99)
		repotest.PutWAL(t, b, repository.WALKey(waltest.FileName(t, overwrittenSeg), repository.Zstd), repository.Zstd, forged, nil)
		if hidden {
			hide(t, b, key) // a delete marker over walvault's copy
		}
		dest := filepath.Join(t.TempDir(), overwrittenSeg)
		if _, err := fetch(context.Background(), b, overwrittenSeg, dest, FetchOptions{Compression: repository.LZ4}, true); !errors.Is(err, ErrCorrupt) {
			t.Errorf("hidden %v: prefetch of a segment under two codecs' keys: %v; want it left to wal-fetch", hidden, err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("hidden %v: the prefetcher wrote %s", hidden, dest)
		}
		log, logs := testLogger()
		wdest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		if _, err := Fetch(context.Background(), b, overwrittenSeg, wdest, FetchOptions{Compression: repository.LZ4, Log: log}); err != nil {
			t.Fatalf("hidden %v: wal-fetch: %v", hidden, err)
		}
		if got, _ := os.ReadFile(wdest); !bytes.Equal(got, raw) {
			t.Fatalf("hidden %v: wal-fetch served the second copy\n%s", hidden, logs)
		}
	}
}
