package repair

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
)

// markers plays a versioned bucket's delete markers over a file backend:
// hidden keys, and how Unhide answers for some of them.
type markers struct {
	storage.Backend
	hidden   map[string]bool
	refuse   map[string]error // Unhide fails with this error
	sticky   map[string]bool  // Unhide says yes, but the key stays hidden
	listErr  error            // for the second listing
	listings int
	unhides  []string
}

var _ storage.Versioned = (*markers)(nil)

func newMarkers(t *testing.T, keys ...string) *markers {
	t.Helper()
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &markers{Backend: b, hidden: map[string]bool{}, refuse: map[string]error{}, sticky: map[string]bool{}}
	for _, k := range keys {
		m.hidden[k] = true
	}
	return m
}

func (m *markers) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	if prefix == "backups/" { // the first of repository.ListHidden's prefixes
		m.listings++
		if m.listings > 1 && m.listErr != nil {
			return m.listErr
		}
	}
	var keys []string
	for k := range m.hidden {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(storage.HiddenObject{Key: k, VersionID: "v1", Size: 1}); err != nil {
			return err
		}
	}
	return nil
}

func (m *markers) GetHidden(context.Context, string) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, storage.ErrNotFound
}

func (m *markers) Unhide(ctx context.Context, key string) error {
	m.unhides = append(m.unhides, key)
	if err := m.refuse[key]; err != nil {
		return err
	}
	if !m.hidden[key] {
		return storage.ErrNotFound
	}
	if !m.sticky[key] {
		delete(m.hidden, key)
	}
	return nil
}

const (
	seg      = "wal/00000001/000000010000000000000003.lz4"
	manifest = "backups/20261125T020000Z/walvault-backup.json"
	identity = "walvault.json"
	foreign  = "other-tool/file" // not walvault's: never touched
)

func TestRunUnhidesWalvaultObjects(t *testing.T) {
	m := newMarkers(t, seg, manifest, identity, foreign)
	var progress []string
	rep, err := Run(context.Background(), m, Options{Progress: func(r Result) {
		if r.Outcome != Unhidden || r.Err != nil {
			t.Errorf("%s: got outcome %v, %v; want Unhidden", r.Object.Key, r.Outcome, r.Err)
		}
		progress = append(progress, r.Object.Key)
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := manifest + "," + seg + "," + identity
	if got := strings.Join(progress, ","); got != want {
		t.Errorf("progress: got %s, want %s", got, want)
	}
	if !rep.Versioned || len(rep.Hidden) != 3 || rep.Unhidden != 3 || rep.Failed != 0 || len(rep.Left) != 0 || !rep.Clean() {
		t.Errorf("report: got %+v, want 3 hidden, 3 unhidden, clean", rep)
	}
	if !m.hidden[foreign] || len(m.hidden) != 1 {
		t.Errorf("hidden after the run: got %v, want only %s (not walvault's)", m.hidden, foreign)
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	m := newMarkers(t, seg, manifest)
	rep, err := Run(context.Background(), m, Options{DryRun: true, Progress: func(r Result) { t.Errorf("progress in a dry run: %+v", r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hidden) != 2 || rep.Clean() || len(m.unhides) != 0 || m.listings != 1 {
		t.Errorf("dry run: report %+v, unhides %v, listings %d; want 2 hidden, not clean, nothing unhidden, one listing", rep, m.unhides, m.listings)
	}
	empty := newMarkers(t)
	if rep, err := Run(context.Background(), empty, Options{DryRun: true}); err != nil || !rep.Clean() || !rep.Versioned {
		t.Errorf("dry run with nothing hidden: got %+v, %v; want clean", rep, err)
	}
}

func TestRunReportsFailuresAndWhatIsLeft(t *testing.T) {
	m := newMarkers(t, seg, manifest, identity)
	denied := errors.New("access denied: s3:DeleteObjectVersion")
	m.refuse[manifest] = denied
	m.sticky[identity] = true
	m.refuse[seg] = storage.OpError("unhide", seg, storage.ErrNotFound) // its versions went meanwhile
	outcomes := map[string]Outcome{}
	rep, err := Run(context.Background(), m, Options{Progress: func(r Result) { outcomes[r.Object.Key] = r.Outcome }})
	if err != nil {
		t.Fatal(err)
	}
	if outcomes[manifest] != Failed || outcomes[seg] != Gone || outcomes[identity] != Unhidden {
		t.Errorf("outcomes: got %v", outcomes)
	}
	if rep.Unhidden != 1 || rep.Failed != 1 || rep.Clean() {
		t.Errorf("report: got %+v, want 1 unhidden, 1 failed, not clean", rep)
	}
	var left []string
	for _, h := range rep.Left {
		left = append(left, h.Key)
	}
	if got, want := strings.Join(left, ","), manifest+","+seg+","+identity; got != want {
		t.Errorf("left: got %s, want %s (the second listing's answer)", got, want)
	}
}

func TestRunErrors(t *testing.T) {
	m := newMarkers(t, seg)
	m.listErr = errors.New("connection reset")
	rep, err := Run(context.Background(), m, Options{})
	if err == nil || !strings.Contains(err.Error(), "checking the result failed") || !errors.Is(err, m.listErr) || rep.Unhidden != 1 {
		t.Errorf("second listing failing: got %+v, %v; want 1 unhidden and an error wrapping the listing's", rep, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m = newMarkers(t, seg, manifest)
	m.refuse[manifest] = context.Canceled
	cancel()
	if _, err := Run(ctx, m, Options{}); !errors.Is(err, context.Canceled) || len(m.unhides) != 1 {
		t.Errorf("cancelled: got %v after unhides %v; want context.Canceled after the first", err, m.unhides)
	}
}

func TestRunUnversionedStorage(t *testing.T) {
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), b, Options{})
	if err != nil || rep.Versioned || !rep.Clean() {
		t.Errorf("file storage: got %+v, %v; want not versioned, clean", rep, err)
	}
}
