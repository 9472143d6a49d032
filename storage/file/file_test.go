package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newTestBackend(t, t.TempDir())
	}, storagetest.Options{})
}

// TestConformanceStacked runs the suite on the stack commands get
// (storage.Stack): the decorators keep the contract, and a directory
// stays unversioned through them.
func TestConformanceStacked(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b := storage.Stack(newTestBackend(t, t.TempDir()), storage.StackOptions{Counter: &storage.Counter{}, ReadHidden: true})
		if _, ok := storage.AsVersioned(b); ok {
			t.Errorf("storage.AsVersioned(stacked file backend): got true, want false")
		}
		return b
	}, storagetest.Options{LargeObjectSize: 16 << 20})
}

func newTestBackend(t *testing.T, root string) *Backend {
	t.Helper()
	b, err := New(root)
	if err != nil {
		t.Fatalf("New(%q): got %v, want nil", root, err)
	}
	return b
}

func put(t *testing.T, b *Backend, key, body string, md map[string]string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(body), storage.PutOptions{Size: int64(len(body)), Metadata: md}); err != nil {
		t.Fatalf("Put(%q): got %v, want nil", key, err)
	}
}

func TestNew(t *testing.T) {
	t.Run("missing root is an error, never created", func(t *testing.T) {
		// An unmounted disk must not look like a new, empty repository.
		root := filepath.Join(t.TempDir(), "a", "repo")
		if _, err := New(root); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("New(%q): got %v, want a 'does not exist' error", root, err)
		}
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Fatalf("Stat(%q) after New: got %v, want not exist", root, err)
		}
	})
	t.Run("location", func(t *testing.T) {
		root := t.TempDir()
		b := newTestBackend(t, root)
		if got, want := b.Location(), "file://"+root; got != want {
			t.Errorf("Location(): got %q, want %q", got, want)
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(root, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(root); err == nil {
			t.Errorf("New(%q) on a regular file: got nil, want an error", root)
		}
	})
	t.Run("empty root", func(t *testing.T) {
		if _, err := New(""); err == nil {
			t.Errorf(`New(""): got nil, want an error`)
		}
	})
}

// TestOnDiskFormat checks the format doc.go documents, byte for byte.
func TestOnDiskFormat(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	md := map[string]string{"sha256": "abc", "timeline": "1", "note": "a<b>&c"}
	put(t, b, "wal/00000001/000000010000000000000001.lz4", "BODY", md)

	raw, err := os.ReadFile(filepath.Join(root, "wal", "00000001", "000000010000000000000001.lz4"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("WALVAULT-OBJECT-1\n")) {
		t.Fatalf("object file: got prefix %q, want the magic line %q", raw[:min(len(raw), 18)], "WALVAULT-OBJECT-1\n")
	}
	n := binary.BigEndian.Uint32(raw[18:22])
	wantJSON := `{"note":"a<b>&c","sha256":"abc","timeline":"1"}`
	if got := string(raw[22 : 22+n]); got != wantJSON {
		t.Errorf("object file metadata: got %s, want %s", got, wantJSON)
	}
	var gotMD map[string]string
	if err := json.Unmarshal(raw[22:22+n], &gotMD); err != nil {
		t.Errorf("object file metadata: %v", err)
	}
	if got := string(raw[22+n:]); got != "BODY" {
		t.Errorf("object file body: got %q, want %q", got, "BODY")
	}
	info, err := b.Stat(context.Background(), "wal/00000001/000000010000000000000001.lz4")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 4 {
		t.Errorf("Stat Size: got %d, want 4 (file size %d less header %d)", info.Size, len(raw), 22+n)
	}
}

// TestMetadataSurvivesReopen: metadata is in the file, not in memory.
func TestMetadataSurvivesReopen(t *testing.T) {
	root := t.TempDir()
	md := map[string]string{"sha256": "9f86d0", "system-identifier": "7301234567890123456", "host": "db-1"}
	put(t, newTestBackend(t, root), "walvault.json", "{}", md)

	b := newTestBackend(t, root)
	info, err := b.Stat(context.Background(), "walvault.json")
	if err != nil {
		t.Fatalf("Stat after reopen: got %v, want nil", err)
	}
	if fmt.Sprint(info.Metadata) != fmt.Sprint(md) {
		t.Errorf("Stat after reopen: metadata: got %v, want %v", info.Metadata, md)
	}
	rc, ginfo, err := b.Get(context.Background(), "walvault.json")
	if err != nil {
		t.Fatalf("Get after reopen: got %v, want nil", err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	if string(body) != "{}" || fmt.Sprint(ginfo.Metadata) != fmt.Sprint(md) {
		t.Errorf("Get after reopen: got body %q metadata %v, want %q and %v", body, ginfo.Metadata, "{}", md)
	}
}

func TestStoredFileIsReadOnly(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	put(t, b, "wal/00000001.history", "1\t0/3000000\tno recovery target specified\n", nil)
	fi, err := os.Stat(filepath.Join(root, "wal", "00000001.history"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o444 {
		t.Errorf("stored file mode: got %v, want %v", got, os.FileMode(0o444))
	}
	// Replacing and deleting still work: they change the directory, not the file.
	put(t, b, "wal/00000001.history", "replaced", nil)
	if err := b.Delete(context.Background(), "wal/00000001.history"); err != nil {
		t.Errorf("Delete of a read-only object: got %v, want nil", err)
	}
}

// TestTempLeftoversIgnored: what a crash leaves behind (temp files, even a
// complete-looking one) is never listed, and temp names are not keys.
func TestTempLeftoversIgnored(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	put(t, b, "wal/00000001/000000010000000000000001.lz4", "segment", nil)
	leftovers := []string{
		filepath.Join(root, ".tmp-123456"),
		filepath.Join(root, "wal", "00000001", ".tmp-000000010000000000000002"),
		filepath.Join(root, "wal", ".tmp-dir", "x"),
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// A complete header and body: only the name says it is a temp file.
		if err := os.WriteFile(p, append([]byte(magic+"\x00\x00\x00\x02{}"), "partial"...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	}); err != nil {
		t.Fatalf(`List(""): got %v, want nil`, err)
	}
	if want := []string{"wal/00000001/000000010000000000000001.lz4"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf(`List("") with temp leftovers: got %q, want %q`, got, want)
	}
	for _, key := range []string{".tmp-123456", "wal/00000001/.tmp-000000010000000000000002", "wal/.tmp-dir/x"} {
		if _, err := b.Stat(context.Background(), key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q) of a temp name: got %v, want an invalid-key error", key, err)
		}
		if err := b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{}); err == nil {
			t.Errorf("Put(%q) of a temp name: got nil, want an invalid-key error", key)
		}
	}
}

// TestLostAndFoundIgnored: a repository at a filesystem's root has its
// lost+found, readable by root alone: listing passes it over (walvault
// never writes it), and lists a lost+found deeper down as any other key.
func TestLostAndFoundIgnored(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	put(t, b, "wal/00000001/000000010000000000000001.lz4", "segment", nil)
	put(t, b, "wal/lost+found/x", "x", nil)
	lf := filepath.Join(root, "lost+found")
	if err := os.Mkdir(lf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lf, "#1234"), []byte("orphan"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lf, 0); err != nil { // unreadable, as root's is to postgres
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(lf, 0o700) })
	var got []string
	if err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	}); err != nil {
		t.Fatalf(`List(""): got %v, want nil`, err)
	}
	if want := []string{"wal/00000001/000000010000000000000001.lz4", "wal/lost+found/x"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf(`List("") beside lost+found: got %q, want %q`, got, want)
	}
	// Nor do the incomplete uploads (temp files) verify and delete look for.
	if err := os.Chmod(lf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lf, ".tmp-123"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lf, 0); err != nil {
		t.Fatal(err)
	}
	err := b.ListUploads(context.Background(), "", func(u storage.Upload) error {
		t.Errorf("ListUploads: %s, want nothing of lost+found", u.Key)
		return nil
	})
	if err != nil {
		t.Errorf("ListUploads beside lost+found: %v", err)
	}
}

// TestPutLeavesNoTempFiles: neither success nor failure leaves temp files.
func TestPutLeavesNoTempFiles(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	ctx := context.Background()
	put(t, b, "a/b", "x", nil)
	_ = b.Put(ctx, "a/b", strings.NewReader("y"), storage.PutOptions{IfNotExists: true})                     // exists
	_ = b.Put(ctx, "a/c", iotestErrReader{}, storage.PutOptions{})                                           // reader fails
	_ = b.Put(ctx, "a/d", strings.NewReader("short"), storage.PutOptions{Size: 100})                         // size mismatch
	_ = b.Put(ctx, "a/e", strings.NewReader("x"), storage.PutOptions{Metadata: map[string]string{"A": "x"}}) // bad metadata
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestPutSizeMismatch(t *testing.T) {
	b := newTestBackend(t, t.TempDir())
	for _, size := range []int64{3, 10} {
		err := b.Put(context.Background(), "k", strings.NewReader("12345"), storage.PutOptions{Size: size})
		if err == nil || !strings.Contains(err.Error(), "PutOptions.Size") {
			t.Errorf("Put of 5 bytes with Size %d: got %v, want a size mismatch error", size, err)
		}
	}
	if _, err := b.Stat(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after failed Puts: got %v, want ErrNotFound", err)
	}
}

func TestMetadataValidation(t *testing.T) {
	b := newTestBackend(t, t.TempDir())
	for _, tc := range []struct {
		name    string
		md      map[string]string
		wantErr bool
	}{
		{"nil", nil, false},
		{"good", map[string]string{"sha256": "ab", "system-identifier": "1", "x": `!"~ `}, false},
		{"empty value", map[string]string{"a": ""}, false},
		{"upper-case key", map[string]string{"Sha256": "ab"}, true},
		{"underscore key", map[string]string{"sha_256": "ab"}, true},
		{"empty key", map[string]string{"": "ab"}, true},
		{"dot key", map[string]string{"a.b": "ab"}, true},
		{"newline value", map[string]string{"a": "x\ny"}, true},
		{"tab value", map[string]string{"a": "x\ty"}, true},
		{"non-ASCII value", map[string]string{"a": "é"}, true},
		{"DEL value", map[string]string{"a": "\x7f"}, true},
		{"too large", map[string]string{"a": strings.Repeat("x", maxMetadataLen)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "md/" + strings.ReplaceAll(tc.name, " ", "-")
			err := b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{Metadata: tc.md})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Put with metadata %q: got error %v, want error: %v", tc.md, err, tc.wantErr)
			}
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists) {
					t.Errorf("Put with metadata %q: got %v, want a plain validation error", tc.md, err)
				}
				if !storage.IsPermanent(err) {
					t.Errorf("Put with metadata %q: got %v, want a permanent error (no retry can fix it)", tc.md, err)
				}
				if _, serr := b.Stat(context.Background(), key); !errors.Is(serr, storage.ErrNotFound) {
					t.Errorf("Stat after refused Put: got %v, want ErrNotFound", serr)
				}
			}
		})
	}
}

func TestRetentionRefused(t *testing.T) {
	b := newTestBackend(t, t.TempDir())
	err := b.Put(context.Background(), "k", strings.NewReader("x"), storage.PutOptions{
		Retention: &storage.Retention{Mode: storage.Compliance, Until: time.Now().Add(time.Hour)},
	})
	if !errors.Is(err, storage.ErrUnsupported) {
		t.Fatalf("Put with Retention: got %v, want ErrUnsupported", err)
	}
	for _, want := range []string{"s3://", "Object Lock", "cannot make objects immutable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Put with Retention: error %q does not say %q", err, want)
		}
	}
	if !storage.IsPermanent(err) {
		t.Errorf("IsPermanent(%v): got false, want true", err)
	}
}

// TestNotFoundIsAuthoritative: only a missing file is ErrNotFound. Anything
// else the backend cannot read is an error of another kind, so wal-fetch
// never ends a recovery early because of it.
func TestNotFoundIsAuthoritative(t *testing.T) {
	ctx := context.Background()
	notNotFound := func(t *testing.T, b *Backend, key string) {
		t.Helper()
		rc, _, err := b.Get(ctx, key)
		if rc != nil {
			rc.Close()
		}
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(%q): got error %v, want a non-nil error not matching ErrNotFound", key, err)
		}
		if _, err := b.Stat(ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q): got error %v, want a non-nil error not matching ErrNotFound", key, err)
		}
	}

	t.Run("permission denied", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// Permission bits do not stop root: run this case again as
			// nobody, in a copy of this test binary nobody can execute.
			runAsNobody(t, "^TestNotFoundIsAuthoritative$/^permission_denied$")
			return
		}
		root := t.TempDir()
		b := newTestBackend(t, root)
		put(t, b, "wal/00000001/000000010000000000000001.lz4", "x", nil)
		dir := filepath.Join(root, "wal", "00000001")
		if err := os.Chmod(dir, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o750) })
		for _, key := range []string{"wal/00000001/000000010000000000000001.lz4", "wal/00000001/000000010000000000000002.lz4"} {
			notNotFound(t, b, key)
			_, err := b.Stat(ctx, key)
			if !storage.IsPermanent(err) {
				t.Errorf("Stat(%q) permission denied: IsPermanent(%v) got false, want true", key, err)
			}
			if err := b.Delete(ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Delete(%q): got error %v, want a non-nil error not matching ErrNotFound", key, err)
			}
		}
		if err := b.List(ctx, "wal/", func(storage.ObjectInfo) error { return nil }); err == nil {
			t.Errorf(`List("wal/") over an unreadable directory: got nil, want an error`)
		}
	})

	t.Run("directory where an object is expected", func(t *testing.T) {
		b := newTestBackend(t, t.TempDir())
		put(t, b, "wal/00000001/000000010000000000000001.lz4", "x", nil)
		notNotFound(t, b, "wal/00000001")
		err := b.Delete(ctx, "wal/00000001")
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete of a directory: got %v, want a non-nil error not matching ErrNotFound", err)
		}
		if _, err := b.Stat(ctx, "wal/00000001/000000010000000000000001.lz4"); err != nil {
			t.Errorf("Stat of the object inside after Delete of its directory: got %v, want nil", err)
		}
	})

	t.Run("object where a directory is expected", func(t *testing.T) {
		b := newTestBackend(t, t.TempDir())
		put(t, b, "wal/00000001", "x", nil)
		notNotFound(t, b, "wal/00000001/000000010000000000000001.lz4")
	})

	t.Run("damaged object", func(t *testing.T) {
		root := t.TempDir()
		b := newTestBackend(t, root)
		for name, content := range map[string]string{
			"foreign":   "not an object at all",
			"truncated": magic + "\x00\x00",
			"short-md":  magic + "\x00\x00\x00\x10{}",
			"bad-json":  magic + "\x00\x00\x00\x02[]",
			"huge-md":   magic + "\xff\xff\xff\xff",
		} {
			if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o444); err != nil {
				t.Fatal(err)
			}
			notNotFound(t, b, name)
		}
		// Listed, as S3 lists a foreign object (its reader calls it a
		// stray; reading it fails), never left out: a damaged object is
		// not absent, and a listing that failed on a stray note would
		// stop every reader (explore22d F3).
		var listed []string
		err := b.List(ctx, "", func(oi storage.ObjectInfo) error {
			listed = append(listed, oi.Key)
			return nil
		})
		if want := []string{"bad-json", "foreign", "huge-md", "short-md", "truncated"}; err != nil || fmt.Sprint(listed) != fmt.Sprint(want) {
			t.Errorf(`List("") over foreign and damaged files: %q, %v; want %q listed`, listed, err, want)
		}
	})

	t.Run("name too long", func(t *testing.T) {
		// ENAMETOOLONG applies to root as well.
		b := newTestBackend(t, t.TempDir())
		notNotFound(t, b, strings.Repeat("x", 300))
	})

	t.Run("root removed", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "repo")
		mkdir(t, root)
		b := newTestBackend(t, root)
		put(t, b, "walvault.json", "{}", nil)
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		notNotFound(t, b, "walvault.json")
		if err := b.Delete(ctx, "walvault.json"); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete with the root removed: got %v, want a non-nil error not matching ErrNotFound", err)
		}
		if err := b.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err == nil {
			t.Errorf(`List("") with the root removed: got nil, want an error`)
		}
	})

	t.Run("root replaced", func(t *testing.T) {
		// An unmounted disk leaves an empty mount point in its place.
		root := filepath.Join(t.TempDir(), "repo")
		mkdir(t, root)
		b := newTestBackend(t, root)
		put(t, b, "walvault.json", "{}", nil)
		if err := os.Rename(root, root+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(root, 0o750); err != nil {
			t.Fatal(err)
		}
		notNotFound(t, b, "walvault.json")
		if err := b.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err == nil {
			t.Errorf(`List("") with the root replaced: got nil, want an error`)
		}
	})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, true},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, true},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EPERM}, true},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, true},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.EIO}, false},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}, false},
		{errors.New("other"), false},
	} {
		got := classify(tc.err)
		if storage.IsPermanent(got) != tc.want {
			t.Errorf("IsPermanent(classify(%v)): got %v, want %v", tc.err, !tc.want, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("classify(%v) lost the error: got %v", tc.err, got)
		}
	}
	if classify(nil) != nil {
		t.Errorf("classify(nil): got non-nil, want nil")
	}
}

// TestLinkFallback exercises the link(2) path used where renameat2 is
// missing: atomic no-replace, temp removed on success, kept on conflict.
func TestLinkFallback(t *testing.T) {
	dir := t.TempDir()
	tmp1, tmp2, target := filepath.Join(dir, ".tmp-1"), filepath.Join(dir, ".tmp-2"), filepath.Join(dir, "obj")
	for _, p := range []string{tmp1, tmp2} {
		if err := os.WriteFile(p, []byte(p), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := linkThenRemove(tmp1, target); err != nil {
		t.Fatalf("linkThenRemove to a free name: got %v, want nil", err)
	}
	if _, err := os.Stat(tmp1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp after linkThenRemove: got %v, want it removed", err)
	}
	if err := linkThenRemove(tmp2, target); !errors.Is(err, os.ErrExist) {
		t.Errorf("linkThenRemove to a taken name: got %v, want os.ErrExist", err)
	}
	if got, _ := os.ReadFile(target); string(got) != tmp1 {
		t.Errorf("target after the conflict: got %q, want %q", got, tmp1)
	}
}

// TestConcurrentPutsNewDirectories: many Puts creating the same new
// directories at once all succeed.
func TestConcurrentPutsNewDirectories(t *testing.T) {
	b := newTestBackend(t, t.TempDir())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("backups/b%d/parts/x/%03d", i%4, i)
			errs <- b.Put(context.Background(), key, strings.NewReader(key), storage.PutOptions{IfNotExists: true})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: got %v, want nil", err)
		}
	}
	n := 0
	if err := b.List(context.Background(), "backups/", func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 64 {
		t.Errorf(`List("backups/"): got %d objects, want 64`, n)
	}
}

// TestListFollowsSymlinks: a directory moved elsewhere and linked back stays
// listed, as Get still reads through the link; a dangling link is an error,
// never "not found" or "nothing here".
func TestListFollowsSymlinks(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	b := newTestBackend(t, root)
	put(t, b, "wal/00000001/000000010000000000000001.lz4", "one", nil)
	put(t, b, "wal/00000001/000000010000000000000002.lz4", "two", nil)
	moved := filepath.Join(elsewhere, "00000001")
	if err := os.Rename(filepath.Join(root, "wal", "00000001"), moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, filepath.Join(root, "wal", "00000001")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "missing"), filepath.Join(root, "wal", "dangling")); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := b.List(context.Background(), "wal/0", func(oi storage.ObjectInfo) error {
		got = append(got, fmt.Sprintf("%s:%d", oi.Key, oi.Size))
		return nil
	}); err != nil {
		t.Fatalf(`List("wal/0"): got %v, want nil`, err)
	}
	want := []string{"wal/00000001/000000010000000000000001.lz4:3", "wal/00000001/000000010000000000000002.lz4:3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf(`List("wal/0") through a symlinked directory: got %q, want %q`, got, want)
	}
	// A listing that would cover the dangling link fails rather than
	// report what may lie behind it as absent.
	for _, prefix := range []string{"", "wal/", "wal/dang", "wal/dangling/0"} {
		err := b.List(context.Background(), prefix, func(storage.ObjectInfo) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "missing target") {
			t.Errorf("List(%q) over a dangling symlink: got %v, want an error naming the link", prefix, err)
		}
	}
	// Only an authoritative look says "not found": behind a dangling link
	// may be a disk that is not mounted.
	for _, key := range []string{"wal/dangling", "wal/dangling/000000010000000000000001.lz4"} {
		if _, err := b.Stat(context.Background(), key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q) through a dangling symlink: got %v, want a non-nil error not matching ErrNotFound", key, err)
		}
	}
	// A live link to a directory with the file missing is plainly not found.
	if _, err := b.Stat(context.Background(), "wal/00000001/000000010000000000000003.lz4"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat of a missing key in a symlinked directory: got %v, want ErrNotFound", err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// runAsNobody runs the tests matching pattern in a copy of this test binary
// as uid/gid 65534, with env added to the environment, and fails t with their
// output if they fail or run none.
func runAsNobody(t *testing.T, pattern string, env ...string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "walvault-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "file.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", pattern, "-test.v")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TMPDIR="+os.TempDir(), "HOME="+dir), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("%s as nobody: %v\n%s", pattern, err, out)
	}
}

// TestBadHeaderIsPermanent: a file without a walvault object header (a
// bucket downloaded with aws s3 sync, bit rot) is a permanent answer, so
// the retry decorator gives it at once instead of asking again until the
// deadline (explore23d F8: 10 minutes per segment under restore_command).
func TestBadHeaderIsPermanent(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	if err := os.MkdirAll(filepath.Join(root, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "wal", "seg.lz4"), []byte("plain lz4 frame, no header"), 0o400); err != nil {
		t.Fatal(err)
	}
	stacked := storage.WithRetry(b, storage.DefaultRetryPolicy, nil)
	start := time.Now()
	for name, op := range map[string]func() error{
		"Stat": func() error { _, err := stacked.Stat(t.Context(), "wal/seg.lz4"); return err },
		"Get":  func() error { _, _, err := stacked.Get(t.Context(), "wal/seg.lz4"); return err },
	} {
		err := op()
		if !storage.IsPermanent(err) || !strings.Contains(err.Error(), "bad header") || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s of a file without a header: %v; want a permanent bad-header error, not not-found", name, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the answers took %v: retried", d)
	}
}
