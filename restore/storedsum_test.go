package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestRestoreBackupStoredSums: a part's recorded sha256 (of its stored
// bytes, or of its raw bytes in a backup written before stored sums) is
// checked before the restore succeeds. The flipped byte lies in the tar
// padding after a file's data, which the tar reader skips and no manifest
// covers, and its part decodes (none, or a valid lz4 frame of the flipped
// bytes): only the part's sum can find it. Nothing is left behind.
func TestRestoreBackupStoredSums(t *testing.T) {
	t.Parallel()
	entries := baseEntries()
	if entries[0].name != "backup_label" || len(entries[0].body)%512 == 0 {
		t.Fatalf("fixture starts with %s of %d bytes, want backup_label with padding after it", entries[0].name, len(entries[0].body))
	}
	padding := 512 + len(entries[0].body) // its first padding byte in base.tar
	for _, c := range []repository.Compression{repository.None, repository.LZ4} {
		for _, rawSums := range []bool{false, true} {
			for _, flip := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s raw sums %v flipped %v", c, rawSums, flip), func(t *testing.T) {
					t.Parallel()
					b := newFixtureRepo(t)
					f := fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: entries}}, rawSums: rawSums,
						compression: func(string, int) repository.Compression { return c }}
					if flip {
						f.tamper = func(a string, seq int, raw []byte) []byte {
							if seq == 0 {
								if raw[padding] != 0 {
									t.Fatalf("byte %d of base.tar is %#x, not padding", padding, raw[padding])
								}
								raw[padding] ^= 0x01
							}
							return raw
						}
					}
					m := storeFixture(t, b, f)
					part := m.Archives[0].Parts[0]
					if rawSums != (part.StoredSHA256 == "") || rawSums == (part.SHA256 == "") {
						t.Fatalf("fixture part %+v: want one sum, raw sums %v", part, rawSums)
					}
					opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
					_, err := RestoreBackup(context.Background(), b, opts)
					if !flip {
						if err != nil {
							t.Fatalf("RestoreBackup: %v", err)
						}
						if got := readFile(t, filepath.Join(opts.DataDir, "backup_label")); got != string(entries[0].body) {
							t.Errorf("backup_label restored as %q", got)
						}
						return
					}
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), part.Key) || !strings.Contains(err.Error(), "sha256") {
						t.Fatalf("RestoreBackup: got %v, want ErrCorrupt naming %s and its sha256", err, part.Key)
					}
					assertLeftAsBefore(t, opts.DataDir, false, 0)
				})
			}
		}
	}
}

// changeOnRefetch breaks the first body of every key after `after` bytes;
// later Gets return the object with change applied: an object that is
// not the one the broken download read.
type changeOnRefetch struct {
	storage.Backend
	after  int64
	change func([]byte) []byte
	mu     sync.Mutex
	seen   map[string]int
}

func (b *changeOnRefetch) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := b.Backend.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	b.mu.Lock()
	b.seen[key]++
	first := b.seen[key] == 1
	b.mu.Unlock()
	if first {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(io.LimitReader(rc, b.after), errReader{storagetest.ErrConnReset}), rc}, info, nil
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(b.change(body))), info, nil
}

// TestPartStreamRefetchOfChangedPart: a part read again after a broken
// download goes on with its stored sum where the broken body stopped,
// after proving that the bytes before are the same: a body that differs
// there, or ends before it, fails the part as corrupt, though the bytes
// after the break match the sum. Uncompressed, so no frame checksum finds
// it first.
func TestPartStreamRefetchOfChangedPart(t *testing.T) {
	const after = 100 << 10
	for name, change := range map[string]func([]byte) []byte{
		"changed before the break": func(b []byte) []byte { b[1000] ^= 0xFF; return b },
		"shorter than the break":   func(b []byte) []byte { return b[:after/2] },
	} {
		t.Run(name, func(t *testing.T) {
			b := newFixtureRepo(t)
			parts := []repository.BackupPart{repotest.PutPart(t, b, repository.BackupPartKey(partsTestID, "base.tar", 0, repository.None), repository.None, randomRaw(2*partChunk), nil)}
			s := newPartStream(t.Context(), &changeOnRefetch{Backend: b, after: after, change: change, seen: map[string]int{}}, partsTestID, parts)
			_, err := io.ReadAll(s)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), parts[0].Key) {
				t.Fatalf("read: %v; want ErrCorrupt naming %s", err, parts[0].Key)
			}
			s.Close()
			noFetchGoroutines(t)
		})
	}
}

// TestStoredCheckDrain: what the decoder left unread of a body counts in
// the sum, up to one byte past the limit.
func TestStoredCheckDrain(t *testing.T) {
	body := randomRaw(10000)
	c := &storedCheck{h: sha256.New()}
	r := c.reader(bytes.NewReader(body))
	if _, err := io.ReadFull(r, make([]byte, 100)); err != nil { // the decoder's share
		t.Fatal(err)
	}
	if err := c.drain(int64(len(body))); err != nil || c.n != int64(len(body)) {
		t.Fatalf("drain: %v, %d bytes hashed; want all %d", err, c.n, len(body))
	}
	if got, want := c.h.Sum(nil), sha256.Sum256(body); !bytes.Equal(got, want[:]) {
		t.Errorf("sum %x, want %x", got, want)
	}
	c = &storedCheck{h: sha256.New()}
	c.reader(bytes.NewReader(body))
	if c.drain(10); c.n != 11 {
		t.Errorf("drain(10) of a longer body hashed %d bytes, want 11", c.n)
	}
}

// TestPartStreamStoredBytesAfterFrame: bytes stored after the codec's
// frame count in the stored sum.
func TestPartStreamStoredBytesAfterFrame(t *testing.T) {
	b := newFixtureRepo(t)
	parts := storeParts(t, b, randomRaw(partChunk), partChunk, nil)
	p := &parts[0]
	rc, _, err := b.Get(t.Context(), p.Key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	// The same frame with a byte after it, under a key of its own, and
	// recorded with that size: only the sum differs.
	p.Key = repository.BackupPartKey(partsTestID, "base.tar", 1, repository.LZ4)
	b.Put(t.Context(), p.Key, bytes.NewReader(append(body, 0)), storage.PutOptions{})
	p.StoredSize++
	s := newPartStream(t.Context(), b, partsTestID, parts)
	defer s.Close()
	if _, err := io.ReadAll(s); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("read: %v; want ErrCorrupt for the sha256", err)
	}
}
