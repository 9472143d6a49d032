package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

// The upload tests do not run in parallel: they look for leftover upload
// goroutines, which uploads elsewhere in the process would look like.

func TestUploadArchiveParts(t *testing.T) {
	const partSize = 1000
	tests := []struct {
		size      int
		wantParts []int64
	}{
		{0, []int64{0}},
		{1, []int64{1}},
		{partSize - 1, []int64{partSize - 1}},
		{partSize, []int64{partSize}},
		{partSize + 1, []int64{partSize, 1}},
		{3 * partSize, []int64{partSize, partSize, partSize}},
		{3*partSize + 17, []int64{partSize, partSize, partSize, 17}},
	}
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d bytes", c, tc.size), func(t *testing.T) {
				b := mem.New()
				var counted int64
				u := &uploader{b: b, id: "20261125T103000Z", compression: c, partSize: partSize,
					meta: map[string]string{"host": "db-1"}, counted: func(n int64) { counted += n }}
				in := randomBytes(tc.size)
				// One byte per Read, to cut parts from the smallest reads.
				parts, err := u.archive(t.Context(), "base.tar", iotest.OneByteReader(bytes.NewReader(in)))
				if err != nil {
					t.Fatalf("archive: got %v, want nil", err)
				}
				var sizes []int64
				var joined []byte
				for i, p := range parts {
					sizes = append(sizes, p.RawSize)
					if want := repository.BackupPartKey(u.id, "base.tar", i, c); p.Key != want || p.Compression != c {
						t.Errorf("part %d: key %q compression %s, want %q %s", i, p.Key, p.Compression, want, c)
					}
					joined = append(joined, readPart(t, b, p)...)
				}
				if fmt.Sprint(sizes) != fmt.Sprint(tc.wantParts) {
					t.Errorf("part sizes: got %v, want %v", sizes, tc.wantParts)
				}
				if !bytes.Equal(joined, in) {
					t.Errorf("parts joined: got %d bytes, want the %d bytes put in", len(joined), len(in))
				}
				if counted != int64(tc.size) {
					t.Errorf("counted: got %d, want %d", counted, tc.size)
				}
			})
		}
	}
}

// readPart checks a stored part against its record and returns its raw bytes.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readPart(t *testing.T, b storage.Backend, p repository.BackupPart) []byte {
	t.Helper()
	rc, info, err := b.Get(t.Context(), p.Key)
	if err != nil {
		t.Fatalf("Get(%s): %v", p.Key, err)
	}
	defer rc.Close()
	if info.Size != p.StoredSize {
		t.Errorf("%s: stored size %d, record says %d", p.Key, info.Size, p.StoredSize)
	}
	if info.Metadata["host"] != "db-1" {
		t.Errorf("%s: metadata %v, want host=db-1", p.Key, info.Metadata)
	}
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", p.Key, err)
	}
	// The record's sha256 is of the stored bytes; no raw one is kept.
	if h := sha256Hex(body); h != p.StoredSHA256 || p.SHA256 != "" {
		t.Errorf("%s: stored sha256 %s; record says %s (raw sha256 %q, want none)", p.Key, h, p.StoredSHA256, p.SHA256)
	}
	r, err := p.Compression.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", p.Key, err)
	}
	if int64(len(raw)) != p.RawSize {
		t.Errorf("%s: %d raw bytes; record says %d", p.Key, len(raw), p.RawSize)
	}
	return raw
}

func TestUploadRefusesStrangeArchiveNames(t *testing.T) {
	t.Parallel()
	u := &uploader{b: mem.New(), id: "20261125T103000Z", compression: repository.LZ4, partSize: 1000}
	for _, name := range []string{"", "../x.tar", "base.tar.gz", "0.tar", "a/b.tar", "pg_wal.tar", "16406"} {
		if _, err := u.archive(t.Context(), name, strings.NewReader("x")); err == nil {
			t.Errorf("archive(%q): got nil, want an error", name)
		}
	}
}

func TestUploadFailures(t *testing.T) {
	diskFull := errors.New("no space left on device")
	streamBroke := errors.New("connection to PostgreSQL lost")
	in := randomBytes(5000)
	tests := []struct {
		name    string
		backend func(storage.Backend) storage.Backend
		src     io.Reader
		wantErr error
		wantMsg string
	}{
		{
			name: "storage fails midway through a part",
			backend: func(b storage.Backend) storage.Backend {
				f := storagetest.NewFault(b)
				f.FailPut(storagetest.Contains(".00001"), 10, diskFull)
				return f
			},
			src:     bytes.NewReader(in),
			wantErr: diskFull,
			wantMsg: "store backups/20261125T103000Z/base.tar.00001",
		},
		{
			name: "storage fails before reading",
			backend: func(b storage.Backend) storage.Backend {
				f := storagetest.NewFault(b)
				f.FailPut(storagetest.Contains(".00000"), 0, diskFull)
				return f
			},
			src:     bytes.NewReader(in),
			wantErr: diskFull,
		},
		{
			name: "storage claims success before the end",
			backend: func(b storage.Backend) storage.Backend {
				f := storagetest.NewFault(b)
				f.FailPut(storagetest.Contains(".00000"), 10, nil)
				return f
			},
			src:     bytes.NewReader(in),
			wantErr: errPutReturned,
		},
		{
			name:    "the stream breaks midway",
			backend: func(b storage.Backend) storage.Backend { return b },
			src:     io.MultiReader(bytes.NewReader(in[:1500]), iotest.ErrReader(streamBroke)),
			wantErr: streamBroke,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inner := mem.New()
			u := &uploader{b: tc.backend(inner), id: "20261125T103000Z", compression: repository.LZ4, partSize: 1000}
			parts, err := u.archive(t.Context(), "base.tar", tc.src)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("archive: got %v, %v; want an error wrapping %v", parts, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q: want it to contain %q", err, tc.wantMsg)
			}
			if g := ourGoroutines(); g != "" {
				t.Errorf("goroutines left running after a failed upload:\n%s", g)
			}
			// No partial object of a failed part is visible.
			_ = inner.List(t.Context(), "", func(oi storage.ObjectInfo) error {
				if oi.Size == 0 {
					t.Errorf("empty object %s left behind", oi.Key)
				}
				return nil
			})
		})
	}
}

// TestUploadGoroutineVisible checks the goroutine detector the leak checks
// rely on: a Put in flight shows, and is gone once the upload returns.
func TestUploadGoroutineVisible(t *testing.T) {
	// Every Put is held until release is closed.
	bb, release := storagetest.NewFault(mem.New()), make(chan struct{})
	bb.Before(storagetest.OpPut, storagetest.AnyKey, func(ctx context.Context, _ string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	u := &uploader{b: bb, id: "20261125T103000Z", compression: repository.LZ4, partSize: 1000}
	done := make(chan error, 1)
	go func() {
		_, err := u.archive(t.Context(), "base.tar", bytes.NewReader(randomBytes(10)))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for bb.Calls(storagetest.OpPut) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ourGoroutines() == "" {
		t.Errorf("no upload goroutine visible while a Put is in flight")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("archive: %v", err)
	}
}

func TestNewBackupID(t *testing.T) {
	t.Parallel()
	b := mem.New()
	now := time.Date(2026, 11, 25, 10, 30, 0, 500, time.UTC)
	clock := func() time.Time { return now }
	id, err := newBackupID(t.Context(), b, clock)
	if err != nil || id != "20261125T103000Z" {
		t.Fatalf("newBackupID in an empty repository: got %q, %v; want 20261125T103000Z", id, err)
	}
	if err := b.Put(t.Context(), repository.BackupPartKey(id, "base.tar", 0, repository.LZ4), strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err = newBackupID(t.Context(), b, clock)
	if err != nil || id != "20261125T103001Z" {
		t.Errorf("newBackupID with the second taken: got %q, %v; want 20261125T103001Z", id, err)
	}
}
