package repository_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

var governance1 = repository.LockPolicy{Mode: storage.Governance, Days: 1}

// conflictingOverwriter replaces the object and still answers ErrExists.
type conflictingOverwriter struct{ storage.Backend }

func (o conflictingOverwriter) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	_, err := o.Backend.Stat(ctx, key)
	existed := err == nil
	opts.IfNotExists = false
	if err := o.Backend.Put(ctx, key, r, opts); err != nil {
		return err
	}
	if existed {
		return storage.OpError("put", key, storage.ErrExists)
	}
	return nil
}

// lockPretender reports the retention it was given but enforces none: its
// deletes succeed.
type lockPretender struct {
	storage.Backend
	until map[string]time.Time
}

func (l lockPretender) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if opts.Retention != nil {
		l.until[key] = opts.Retention.Until
	}
	opts.Retention = nil
	return l.Backend.Put(ctx, key, r, opts)
}

func (l lockPretender) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := l.Backend.Stat(ctx, key)
	info.RetainUntil = l.until[key]
	return info, err
}

// allKeys lists every object of b.
func allKeys(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestProveCapabilitiesPasses(t *testing.T) {
	ctx := context.Background()
	t.Run("no lock, deleted", func(t *testing.T) {
		for name, b := range map[string]storage.Backend{"mem": mem.New(), "file": newBackend(t)} {
			rep, err := repository.ProveCapabilities(ctx, b, repository.NewProbe("db-1", time.Now()), repository.LockPolicy{})
			if err != nil || rep.DeleteErr != nil {
				t.Fatalf("%s: got %+v, %v; want a deleted probe, nil", name, rep, err)
			}
			if _, ok := repository.ParseProbeKey(rep.Key); !ok {
				t.Errorf("%s: probe key %q is not a probe key", name, rep.Key)
			}
			if left := allKeys(t, b); len(left) != 0 {
				t.Errorf("%s: left behind %v, want nothing", name, left)
			}
		}
	})
	t.Run("lock", func(t *testing.T) {
		b := storagetest.NewFault(mem.New())
		now := time.Now()
		rep, err := repository.ProveCapabilities(ctx, b, repository.NewProbe("db-1", now), governance1)
		if err != nil || !errors.Is(rep.DeleteErr, storage.ErrLocked) {
			t.Fatalf("got %+v, %v; want a probe whose delete was refused, nil", rep, err)
		}
		if !rep.RetainUntil.After(now) || rep.RetainUntil.Sub(now) > repository.ProbeRetention {
			t.Errorf("RetainUntil: got %s, want at most %s after %s", rep.RetainUntil, repository.ProbeRetention, now)
		}
		if left := allKeys(t, b); len(left) != 1 || left[0] != rep.Key || !strings.HasPrefix(left[0], repository.ProbePrefix) {
			t.Errorf("left behind %v, want only the locked probe %s", left, rep.Key)
		}
	})
}

func TestProveCapabilitiesRefuses(t *testing.T) {
	noObjectLock := storagetest.NewFault(mem.New())
	noObjectLock.Fail(storagetest.OpPut, storagetest.AnyKey, storage.ErrUnsupported)
	otherConflict := storagetest.NewFault(mem.New())
	otherConflict.FailNth(storagetest.OpPut, 2, errors.New("501 NotImplemented: If-None-Match"))
	deniedDelete := storagetest.NewFault(mem.New())
	deniedDelete.Fail(storagetest.OpDelete, storagetest.AnyKey, errors.New("403 AccessDenied"))
	for _, tc := range []struct {
		name string
		b    storage.Backend
		lock repository.LockPolicy
		want repository.Capability
		// clean: nothing at all is left in the repository.
		clean bool
	}{
		{"silent overwrite", storagetest.Overwriting{Backend: mem.New()}, repository.LockPolicy{}, repository.CapConditionalCreate, true},
		{"silent overwrite under lock", storagetest.Overwriting{Backend: mem.New()}, governance1, repository.CapConditionalCreate, false},
		{"overwrite reported as a conflict", conflictingOverwriter{mem.New()}, repository.LockPolicy{}, repository.CapConditionalCreate, true},
		{"conditional create not understood", otherConflict, repository.LockPolicy{}, repository.CapConditionalCreate, true},
		{"no Object Lock", noObjectLock, governance1, repository.CapWrite, true},
		{"retention ignored", storagetest.LockIgnoring{Backend: mem.New()}, governance1, repository.CapRetention, true},
		{"lock not enforced", lockPretender{mem.New(), map[string]time.Time{}}, governance1, repository.CapLockedDelete, true},
		{"delete refused, not as locked", deniedDelete, governance1, repository.CapLockedDelete, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := repository.ProveCapabilities(context.Background(), tc.b, repository.NewProbe("db-1", time.Now()), tc.lock)
			var refused *repository.CapabilityError
			if !errors.As(err, &refused) || refused.Capability != tc.want {
				t.Fatalf("got %v, want a *CapabilityError for %q", err, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.b.Location()) || !strings.Contains(msg, string(tc.want)) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line naming %s and %q", msg, tc.b.Location(), tc.want)
			}
			if left := allKeys(t, tc.b); tc.clean && len(left) != 0 {
				t.Errorf("left behind %v, want nothing", left)
			}
		})
	}
}

// TestEnsureProvenIdentity: a refused probe leaves no identity (and, where
// the storage lets the probe go, nothing at all); a passed one creates it;
// an existing identity is returned without a probe.
func TestEnsureProvenIdentity(t *testing.T) {
	ctx := context.Background()
	want := repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "db-1", time.Now()).WithLock(governance1)
	ret := governance1.Retention(time.Now())
	for name, b := range map[string]storage.Backend{
		"overwrite":    storagetest.Overwriting{Backend: mem.New()},
		"ignores lock": storagetest.LockIgnoring{Backend: mem.New()},
		"unenforced":   lockPretender{mem.New(), map[string]time.Time{}},
		"no Object Lock": func() storage.Backend {
			f := storagetest.NewFault(mem.New())
			f.Fail(storagetest.OpPut, storagetest.AnyKey, storage.ErrUnsupported)
			return f
		}(),
	} {
		got, err := repository.EnsureProvenIdentity(ctx, b, want, ret, time.Time{})
		var refused *repository.CapabilityError
		if !errors.As(err, &refused) {
			t.Errorf("%s: got %+v, %v; want a *CapabilityError", name, got, err)
		}
		if _, err := b.Stat(ctx, repository.IdentityKey); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: Stat(%s) after a refused probe: got %v, want ErrNotFound", name, repository.IdentityKey, err)
		}
		if name != "overwrite" { // its probe is locked and stays
			if left := allKeys(t, b); len(left) != 0 {
				t.Errorf("%s: left behind %v, want nothing", name, left)
			}
		}
	}

	b := storagetest.NewFault(mem.New())
	got, err := repository.EnsureProvenIdentity(ctx, b, want, ret, time.Time{})
	if err != nil || got.SystemID != want.SystemID {
		t.Fatalf("honest storage: got %+v, %v; want the new identity", got, err)
	}
	if o, ok := b.PutOptions(repository.IdentityKey); !ok || o.Retention == nil || *o.Retention != *ret {
		t.Errorf("%s written with %+v, want retention %+v", repository.IdentityKey, o.Retention, ret)
	}
	puts := b.Calls(storagetest.OpPut)
	if _, err := repository.EnsureProvenIdentity(ctx, b, want, ret, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(storagetest.OpPut); n != puts {
		t.Errorf("puts by EnsureProvenIdentity of an existing repository: got %d, want none", n-puts)
	}
}

// TestRemoveExpiredProbes: probes whose lock has ended go, a recent one,
// one still locked and any other key under check/ stay.
func TestRemoveExpiredProbes(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	b := storagetest.NewFault(mem.New())
	put := func(key string) {
		t.Helper()
		if err := b.Put(ctx, key, strings.NewReader("probe"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	old := repository.NewProbe("db1", now.Add(-3*time.Hour)).Key()
	oldLocked := repository.NewProbe("db2", now.Add(-2*time.Hour)).Key()
	recent := repository.NewProbe("db1", now.Add(-30*time.Minute)).Key()
	other := repository.ProbePrefix + "notes.txt"
	for _, k := range []string{old, oldLocked, recent, other} {
		put(k)
	}
	b.Lock(oldLocked)
	n, err := repository.RemoveExpiredProbes(ctx, b, now)
	if err != nil || n != 1 {
		t.Fatalf("RemoveExpiredProbes = %d, %v; want 1 deleted", n, err)
	}
	for key, want := range map[string]bool{old: false, oldLocked: true, recent: true, other: true} {
		_, err := b.Stat(ctx, key)
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v (%v)", key, got, want, err)
		}
	}
}
