package archive_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal/waltest"
)

// TestPushRefusesUnmarkedFile: a file of a pg_wal that PostgreSQL has not
// marked .ready (nor archived: .done) may still be written, or be a
// recycled segment under a future name: refused, nothing stored. Marked,
// or outside a pg_wal, it is pushed.
func TestPushRefusesUnmarkedFile(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 2)
	for _, tc := range []struct {
		name   string
		pgWAL  bool
		mark   string
		pushed bool
	}{
		{"in pg_wal, unmarked", true, "", false},
		{"in pg_wal, .ready", true, ".ready", true},
		{"in pg_wal, .done", true, ".done", true},
		{"outside a pg_wal", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			dir := t.TempDir()
			if tc.pgWAL {
				if err := os.Mkdir(filepath.Join(dir, "archive_status"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			p, _ := waltest.WriteFile(t, dir, s.String(), waltest.SegmentBytes(t, header(t, s), testSegSize, 2))
			if tc.mark != "" {
				touch(t, filepath.Join(dir, "archive_status", s.String()+tc.mark))
			}
			_, err := archive.Push(context.Background(), b, p, opts(repository.LZ4))
			if tc.pushed {
				if err != nil {
					t.Fatalf("Push: %v", err)
				}
				return
			}
			if !errors.Is(err, archive.ErrNotMarked) || !strings.Contains(err.Error(), s.String()+".ready") {
				t.Fatalf("Push of an unmarked segment in pg_wal: got %v, want ErrNotMarked naming its .ready", err)
			}
			if got := keys(t, b); len(got) != 0 {
				t.Errorf("stored after a refused push: %q, want nothing", got)
			}
		})
	}
}

// TestPushRefusesMalformedHistory: a timeline history file PostgreSQL would
// not read as its name's is refused before anything is stored.
func TestPushRefusesMalformedHistory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, body, want string
	}{
		{"garbage", "00000009.history", "garbage\n", "decimal timeline"},
		{"empty", "00000002.history", "", "no parent timeline"},
		{"comments only", "00000002.history", "# nothing\n\n", "no parent timeline"},
		{"lists its own timeline", "00000002.history", "1\t0/3000000\tx\n2\t0/4000000\ty\n", "older than its own"},
		{"timelines not increasing", "00000004.history", "2\t0/3000000\tx\n1\t0/4000000\ty\n", "increasing"},
		{"PostgreSQL's", "00000003.history", "1\t0/3000000\tno recovery target specified\n\n2\t0/5000028\tbefore 2026-12-07 07:00:00+00\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			p, _ := writeHistory(t, t.TempDir(), tc.file, tc.body)
			_, err := archive.Push(context.Background(), b, p, opts(repository.LZ4))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Push of a well-formed history file: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("Push of %q as %s: got %v, want an error naming it and %q", tc.body, tc.file, err, tc.want)
			}
			if got := keys(t, b); len(got) != 0 {
				t.Errorf("stored after a refused push: %q, want nothing", got)
			}
		})
	}
}
