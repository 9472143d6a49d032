package restore

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// manifestAfterPart answers a Get of backup_manifest only once a Get of
// one of base.tar's parts has begun, or after a while, noting then that
// the restore asked for the manifest alone.
type manifestAfterPart struct {
	storage.Backend
	manifestKey string
	partAsked   chan struct{} // closed by the first part Get
	alone       bool          // backup_manifest waited for no part Get
}

func (b *manifestAfterPart) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	switch {
	case strings.Contains(key, "/"+baseArchive+"."):
		select {
		case <-b.partAsked:
		default:
			close(b.partAsked)
		}
	case key == b.manifestKey:
		select {
		case <-b.partAsked:
		case <-time.After(2 * time.Second):
			b.alone = true
		}
	}
	return b.Backend.Get(ctx, key)
}

// TestRestoreFetchesPartsBesideManifest: over a network each request in
// series costs a round trip, so base.tar's first part is asked for while
// backup_manifest is fetched, not after; the restore is still checked
// against the manifest (the fixture test's checks hold).
func TestRestoreFetchesPartsBesideManifest(t *testing.T) {
	t.Parallel()
	mb := newFixtureRepo(t)
	m := storeFixture(t, mb, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	b := &manifestAfterPart{Backend: mb, manifestKey: m.PGManifest.Key, partAsked: make(chan struct{})}
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Target = Target{Immediate: true}
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	if b.alone {
		t.Errorf("backup_manifest was fetched before any part of %s was asked for: one round trip more in series than needed", baseArchive)
	}
	if !strings.Contains(res.Verified, "checked by walvault as the files were written") || res.Bytes != m.RawBytes {
		t.Errorf("restored %d bytes (want %d), verified %q: want the manifest check", res.Bytes, m.RawBytes, res.Verified)
	}
}
