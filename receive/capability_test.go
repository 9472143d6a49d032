package receive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// TestReceiveRefusesIncapableStorage: the first wal-receive into a new
// repository on a storage that silently overwrites stops with the
// capability probe's error, and writes neither an identity nor WAL there.
func TestReceiveRefusesIncapableStorage(t *testing.T) {
	b := storagetest.Overwriting{Backend: newBackend(t)}
	opts := testOptions(t)
	opts.MaxLag = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := 3 * seg
	srv := primary().server()
	srv.Msgs = concat(stream(1, start, start+300_000), []pgproto3.BackendMessage{until(func() bool { return ctx.Err() != nil })})
	err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}})
	var refused *repository.CapabilityError
	if !errors.As(err, &refused) || refused.Capability != repository.CapConditionalCreate {
		t.Fatalf("run: got %v, want the capability probe's refusal of the conditional create", err)
	}
	var left []string
	if err := b.List(t.Context(), "", func(oi storage.ObjectInfo) error { left = append(left, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the repository holds %v after the refusal, want nothing", left)
	}
}

// TestReceiveRefusesAGoneRepository: a receiver whose spool directory
// recorded walvault.json at a location that now holds nothing (a file://
// repository at a mount point, its disk not mounted: the empty directory
// under it shows) refuses to start a new repository there, and writes
// nothing; a repository it never saw is created as before.
func TestReceiveRefusesAGoneRepository(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	opts.MaxLag = time.Millisecond
	receiveOnce := func(from, to wal.LSN) error {
		b, err := file.New(mnt) // a receiver started afresh
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		srv := primary().server(stream(1, from, to)...)
		srv.Msgs = append(srv.Msgs, until(func() bool { return ctx.Err() != nil }))
		cancelWhen(srv, to, cancel) // all of it durable
		return runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}})
	}
	if err := receiveOnce(3*seg, 3*seg+4096); err != nil {
		t.Fatalf("the first receiver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.SpoolDir, "repository-seen.json")); err != nil {
		t.Fatalf("the first receiver's record: %v", err)
	}
	if err := os.Rename(mnt, mnt+".disk"); err != nil { // umount
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	err := receiveOnce(3*seg, 3*seg+8192) // from the segment start, as a restarted receiver asks, and further
	if !errors.As(err, new(*repository.GoneError)) || !strings.Contains(err.Error(), "repository-seen.json") {
		ents, _ := os.ReadDir(mnt)
		t.Fatalf("a receiver restarted with the disk unmounted: %v (%d entries); want the repository gone, naming the spool directory's record", err, len(ents))
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Errorf("the directory under the mount point holds %d entries, want none", len(ents))
	}
}
