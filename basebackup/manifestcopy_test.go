package basebackup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
)

// keptCopy writes body through a manifest copy of c and keeps it as
// backup id, as Push does once the backup is recorded.
func keptCopy(t *testing.T, c manifestCopies, id string, body []byte) {
	t.Helper()
	w := c.create()
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	w.keep(id)
}

// TestUploadEncryptedParentManifest: in an encrypted repository the parent's
// backup_manifest goes up from the plain copy kept when the parent was
// stored, and only when that copy has the size and keyed fingerprint the
// parent's record gives; a missing, changed or incomparable copy is an
// IncrementalImpossible refusal (so --fallback-full applies) and nothing
// reaches the server.
func TestUploadEncryptedParentManifest(t *testing.T) {
	t.Parallel()
	key := crypttest.NewKey(t)
	recipients := crypttest.Recipients(t, key)
	copies := newManifestCopies(t.TempDir(), "s3://bucket/db1", slog.New(slog.DiscardHandler))
	pgm := []byte(strings.Repeat(`{"PostgreSQL-Backup-Manifest-Version": 2}`, 5000))
	sum := sha256.Sum256(pgm)
	parent := repository.BackupManifest{ID: "20260101T000000Z", PGManifest: repository.BackupPart{
		Key: "backups/20260101T000000Z/backup_manifest", Compression: repository.LZ4, RawSize: int64(len(pgm)),
		Encryption: "age", Fingerprints: recipients.FingerprintsOf(sum[:]),
	}}
	keptCopy(t, copies, parent.ID, pgm)
	accept := func(string) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.CopyInResponse{}, pgtest.Complete("UPLOAD_MANIFEST"), pgtest.Ready()}
	}

	// The stored object is never read: the mem backend holds none.
	srv := &pgtest.Server{Answer: accept}
	if err := uploadParentManifest(t.Context(), srv, mem.New(), &parent, copies, recipients); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(srv.CopyIn, pgm) || srv.CopyDones != 1 || len(srv.CopyFails) != 0 {
		t.Fatalf("%d bytes sent (want %d), %d CopyDone, CopyFail %v", len(srv.CopyIn), len(pgm), srv.CopyDones, srv.CopyFails)
	}

	refused := func(t *testing.T, p repository.BackupManifest, c manifestCopies, r *crypt.Recipients, want string) {
		t.Helper()
		srv := &pgtest.Server{Answer: accept}
		err := uploadParentManifest(t.Context(), srv, mem.New(), &p, c, r)
		var no *IncrementalImpossible
		if !errors.As(err, &no) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an IncrementalImpossible refusal saying %q", err, want)
		}
		if len(srv.Queries) != 0 {
			t.Fatalf("the server was sent %v", srv.Queries)
		}
	}
	t.Run("no copy", func(t *testing.T) {
		other := parent
		other.ID = "20260102T000000Z"
		refused(t, other, copies, recipients, "has none")
	})
	t.Run("no cache directory", func(t *testing.T) {
		refused(t, parent, manifestCopies{}, recipients, "no cache directory")
	})
	t.Run("changed copy", func(t *testing.T) {
		changed := bytes.Clone(pgm)
		changed[100] ^= 1
		other := parent
		other.ID = "20260103T000000Z"
		keptCopy(t, copies, other.ID, changed)
		refused(t, other, copies, recipients, "is not the one stored")
	})
	t.Run("key not shared", func(t *testing.T) {
		refused(t, parent, copies, crypttest.Recipients(t, crypttest.NewKey(t)), "shares no key")
	})
}

// TestManifestCopiesKeepTheNewest: only the newest manifestCopiesKept copies
// of a repository stay, other repositories' are left alone, and a copy that
// cannot be written leaves nothing behind and does not fail.
func TestManifestCopiesKeepTheNewest(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	db1 := newManifestCopies(base, "s3://bucket/db1", slog.New(slog.DiscardHandler))
	db2 := newManifestCopies(base, "s3://bucket/db2", slog.New(slog.DiscardHandler))
	keptCopy(t, db2, "20250101T000000Z", []byte("db2"))
	var ids []string
	for day := 1; day <= manifestCopiesKept+2; day++ {
		id := fmt.Sprintf("202601%02dT000000Z", day)
		ids = append(ids, id)
		keptCopy(t, db1, id, []byte(id))
	}
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	var want []string
	for _, id := range ids[len(ids)-manifestCopiesKept:] {
		want = append(want, id+manifestCopySuffix)
	}
	if got := names(db1.dir); !slices.Equal(got, want) {
		t.Fatalf("db1's copies: %v, want %v", got, want)
	}
	if got := names(db2.dir); len(got) != 1 {
		t.Fatalf("db2's copies: %v, want its one", got)
	}

	// A cache directory that is a file: the copy fails, with a warning.
	var logged bytes.Buffer
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := newManifestCopies(blocked, "s3://bucket/db1", slog.New(slog.NewTextHandler(&logged, nil)))
	keptCopy(t, bad, ids[0], []byte("x"))
	if !strings.Contains(logged.String(), "could not keep a copy") {
		t.Fatalf("no warning for a copy that could not be written: %q", logged.String())
	}
}
