package receive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
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
