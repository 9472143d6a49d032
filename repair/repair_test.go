package repair

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// markers is a versioned bucket in memory whose keys are hidden behind
// delete markers, with faults injected where a test asks (storagetest.Fault).
type markers struct {
	*storagetest.VersionedFault
}

func newMarkers(t *testing.T, keys ...string) *markers {
	t.Helper()
	b := mem.New()
	for _, k := range keys {
		if err := b.Put(context.Background(), k, strings.NewReader("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := storagetest.NewFault(b)
	f.Hide(keys...)
	return &markers{f.Versioned()}
}

// refuse makes Unhide of key fail with err.
func (m *markers) refuse(key string, err error) {
	m.Fail(storagetest.OpUnhide, storagetest.Key(key), err)
}

// sticky makes key hidden again by the second listing: Unhide said yes,
// but the marker stayed.
func (m *markers) sticky(key string) {
	var n atomic.Int64
	m.Before(storagetest.OpListHidden, storagetest.Key(repository.BackupsPrefix), func(context.Context, string) error {
		if n.Add(1) > 1 {
			m.Hide(key)
		}
		return nil
	})
}

// failSecondListing makes the second listing of hidden objects fail with err.
func (m *markers) failSecondListing(err error) {
	var n atomic.Int64
	m.Before(storagetest.OpListHidden, storagetest.Key(repository.BackupsPrefix), func(context.Context, string) error {
		if n.Add(1) > 1 {
			return err
		}
		return nil
	})
}

// listings counts the listings of hidden objects (each lists several
// prefixes, the first of them backups/).
func (m *markers) listings() int {
	n := 0
	for _, p := range m.Returned(storagetest.OpListHidden) {
		if p == repository.BackupsPrefix {
			n++
		}
	}
	return n
}

// unhides lists the keys Unhide was called for, in order.
func (m *markers) unhides() []string { return m.Returned(storagetest.OpUnhide) }

// hidden lists the keys hidden now.
func (m *markers) hidden(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := m.ListHidden(context.Background(), "", func(h storage.HiddenObject) error {
		out[h.Key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
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
	if hidden := m.hidden(t); !hidden[foreign] || len(hidden) != 1 {
		t.Errorf("hidden after the run: got %v, want only %s (not walvault's)", hidden, foreign)
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	m := newMarkers(t, seg, manifest)
	rep, err := Run(context.Background(), m, Options{DryRun: true, Progress: func(r Result) { t.Errorf("progress in a dry run: %+v", r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hidden) != 2 || rep.Clean() || len(m.unhides()) != 0 || m.listings() != 1 {
		t.Errorf("dry run: report %+v, unhides %v, listings %d; want 2 hidden, not clean, nothing unhidden, one listing", rep, m.unhides(), m.listings())
	}
	empty := newMarkers(t)
	if rep, err := Run(context.Background(), empty, Options{DryRun: true}); err != nil || !rep.Clean() || !rep.Versioned {
		t.Errorf("dry run with nothing hidden: got %+v, %v; want clean", rep, err)
	}
}

func TestRunReportsFailuresAndWhatIsLeft(t *testing.T) {
	m := newMarkers(t, seg, manifest, identity)
	denied := errors.New("access denied: s3:DeleteObjectVersion")
	m.refuse(manifest, denied)
	m.sticky(identity)
	m.refuse(seg, storage.ErrNotFound) // its versions went meanwhile
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
	listErr := errors.New("connection reset")
	m.failSecondListing(listErr)
	rep, err := Run(context.Background(), m, Options{})
	if err == nil || !strings.Contains(err.Error(), "checking the result failed") || !errors.Is(err, listErr) || rep.Unhidden != 1 {
		t.Errorf("second listing failing: got %+v, %v; want 1 unhidden and an error wrapping the listing's", rep, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m = newMarkers(t, seg, manifest)
	m.Before(storagetest.OpUnhide, storagetest.Key(manifest), func(context.Context, string) error {
		cancel() // ctx ends during the first Unhide
		return context.Canceled
	})
	if _, err := Run(ctx, m, Options{}); !errors.Is(err, context.Canceled) || len(m.unhides()) != 1 {
		t.Errorf("cancelled: got %v after unhides %v; want context.Canceled after the first", err, m.unhides())
	}
}

func TestRunUnversionedStorage(t *testing.T) {
	b, _ := filetest.New(t)
	rep, err := Run(context.Background(), b, Options{})
	if err != nil || rep.Versioned || !rep.Clean() {
		t.Errorf("file storage: got %+v, %v; want not versioned, clean", rep, err)
	}
}
