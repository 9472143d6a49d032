package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// TestUploadsAreTempFiles: the temp files a crash leaves are listed (under
// the prefix only) and removed; objects never are.
func TestUploadsAreTempFiles(t *testing.T) {
	root := t.TempDir()
	b := newTestBackend(t, root)
	ctx := context.Background()
	put(t, b, "backups/20261125T103000Z/base.tar.00000.lz4", "part", nil)
	for _, p := range []string{"backups/20261125T103000Z/.tmp-123", "wal/00000001/.tmp-456"} {
		path := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		var keys []string
		if err := b.ListUploads(ctx, prefix, func(u storage.Upload) error {
			if u.Started.IsZero() || time.Since(u.Started) > time.Hour {
				t.Errorf("%s: started %v, want its last write", u.Key, u.Started)
			}
			keys = append(keys, u.Key)
			return nil
		}); err != nil {
			t.Fatalf("ListUploads(%q): %v", prefix, err)
		}
		return keys
	}
	if got := strings.Join(list(""), " "); got != "backups/20261125T103000Z/.tmp-123 wal/00000001/.tmp-456" {
		t.Errorf(`ListUploads(""): got %q`, got)
	}
	if got := strings.Join(list("backups/"), " "); got != "backups/20261125T103000Z/.tmp-123" {
		t.Errorf(`ListUploads("backups/"): got %q`, got)
	}
	if err := b.AbortUpload(ctx, storage.Upload{Key: "backups/20261125T103000Z/base.tar.00000.lz4"}); err == nil {
		t.Error("AbortUpload of an object: got nil, want a refusal")
	}
	if err := b.AbortUpload(ctx, storage.Upload{Key: "backups/20261125T103000Z/.tmp-123"}); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	if err := b.AbortUpload(ctx, storage.Upload{Key: "backups/20261125T103000Z/.tmp-123"}); err != nil {
		t.Errorf("AbortUpload of a temp file already gone: got %v, want nil", err)
	}
	if got := strings.Join(list(""), " "); got != "wal/00000001/.tmp-456" {
		t.Errorf(`ListUploads("") after the abort: got %q`, got)
	}
	if _, err := b.Stat(ctx, "backups/20261125T103000Z/base.tar.00000.lz4"); err != nil {
		t.Errorf("the object beside the temp file: %v", err)
	}
}
