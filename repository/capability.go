package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walvault/walvault/storage"
)

// ProbeRetention is how long a probe object written under a lock policy is
// locked: long enough that no clock skew makes the retain-until date past
// before the delete is tried, short enough that few probes are ever locked.
const ProbeRetention = time.Hour

// Capability is one promise of the storage that walvault's guarantees
// rest on, as ProveCapabilities names it in its errors.
type Capability string

// The capabilities ProveCapabilities proves, in the order it proves them.
const (
	// CapWrite: a new object can be created (with retention, under a
	// lock policy).
	CapWrite Capability = "write"
	// CapReadBack: what was written reads back unchanged.
	CapReadBack Capability = "read back"
	// CapConditionalCreate: a conditional create (If-None-Match: *) of an
	// existing key is refused: never-overwrite rests on it.
	CapConditionalCreate Capability = "conditional create (If-None-Match: *)"
	// CapRetention: a new object written with retention comes back with
	// its retain-until date.
	CapRetention Capability = "Object Lock retention"
	// CapLockedDelete: a delete of a locked object is refused:
	// immutability rests on it.
	CapLockedDelete Capability = "Object Lock delete refusal"
)

// CapabilityError says which capability the storage failed to prove. Its
// message is one line naming the repository's location (never with
// secrets) and the capability.
type CapabilityError struct {
	Location   string
	Capability Capability
	Key        string // the probe object
	Err        error  // what the storage answered, if anything
	detail     string
}

func (e *CapabilityError) Error() string {
	msg := fmt.Sprintf("repository %s fails the capability probe, %s: %s", e.Location, e.Capability, e.detail)
	if e.Err != nil {
		msg += ": " + strings.ReplaceAll(e.Err.Error(), "\n", " ")
	}
	return msg
}

func (e *CapabilityError) Unwrap() error { return e.Err }

// CapabilityReport is what a passed probe left behind.
type CapabilityReport struct {
	Key string // the probe object's key
	// RetainUntil is the probe's retain-until date as the storage reported
	// it, zero without a lock policy.
	RetainUntil time.Time
	// DeleteErr is nil when the probe was deleted. Under a lock policy it
	// wraps storage.ErrLocked: the probe stays until RetainUntil. Without
	// one, a bucket's default retention (storage.ErrLocked) or a missing
	// delete permission may keep it too.
	DeleteErr error
}

// ProveCapabilities proves, with one tiny object p.Key() under
// ProbePrefix, that b honours what walvault's guarantees rest on: the
// probe is created with a conditional create and reads back unchanged; a
// second conditional create of it is refused (ErrExists) and changes
// nothing; and under a lock policy the probe, written locked for
// ProbeRetention in the policy's mode, comes back with its retain-until
// date, and its delete is refused (ErrLocked). A storage that silently
// overwrites, or ignores the lock, gives a *CapabilityError. The probe is
// deleted where the storage allows: a locked one stays until its
// retention ends.
//
// Callers run it before the first object of a new repository is written
// (EnsureProvenIdentity) and in `walvault check`; not on every push.
func ProveCapabilities(ctx context.Context, b storage.Backend, p Probe, lock LockPolicy) (CapabilityReport, error) {
	key := p.Key()
	rep := CapabilityReport{Key: key}
	fail := func(c Capability, err error, format string, args ...any) (CapabilityReport, error) {
		return rep, &CapabilityError{Location: b.Location(), Capability: c, Key: key, Err: err, detail: fmt.Sprintf(format, args...)}
	}
	var ret *storage.Retention
	if lock.Enabled() {
		ret = &storage.Retention{Mode: lock.Mode, Until: p.At.Add(ProbeRetention)}
	}
	first := []byte(fmt.Sprintf("walvault capability probe from %s at %s\n", p.Host, p.At.UTC().Format(time.RFC3339)))
	// The key is the probe's alone: "exists" means a retried request of
	// this very put landed, and the read back below proves it.
	if err := b.Put(ctx, key, bytes.NewReader(first), storage.PutOptions{IfNotExists: true, Size: int64(len(first)), Retention: ret}); err != nil && !errors.Is(err, storage.ErrExists) {
		if lock.Enabled() {
			return fail(CapWrite, err, "writing the probe %s locked in mode %s failed (lock-mode %s needs a bucket with Object Lock enabled, and credentials allowed s3:PutObjectRetention as well as s3:PutObject)", key, lock.Mode, strings.ToLower(string(lock.Mode)))
		}
		return fail(CapWrite, err, "writing the probe %s failed", key)
	}
	// Whatever fails from here, an unlocked probe is removed: on a
	// versioned bucket a silent overwrite left two versions, and each
	// delete removes the current one. The key is the probe's alone.
	cleanup := func() {
		for range 3 {
			if b.Delete(context.WithoutCancel(ctx), key) != nil {
				return
			}
		}
	}

	if err := readBack(ctx, b, key, first); err != nil {
		cleanup()
		return fail(CapReadBack, err, "the probe %s was written but does not read back as written", key)
	}
	second := []byte("walvault capability probe: this must never replace the first\n")
	switch err := b.Put(ctx, key, bytes.NewReader(second), storage.PutOptions{IfNotExists: true, Size: int64(len(second))}); {
	case err == nil:
		cleanup()
		return fail(CapConditionalCreate, nil, "a conditional create of the existing probe %s succeeded: the server silently overwrites, so never-overwrite would be false", key)
	case !errors.Is(err, storage.ErrExists):
		cleanup()
		return fail(CapConditionalCreate, err, "a conditional create of the existing probe %s was not refused as existing", key)
	}
	if err := readBack(ctx, b, key, first); err != nil {
		cleanup()
		return fail(CapConditionalCreate, err, "a refused conditional create of the probe %s changed it: the server overwrites while it reports a conflict", key)
	}

	if lock.Enabled() {
		info, err := b.Stat(ctx, key)
		switch {
		case err != nil:
			cleanup()
			return fail(CapRetention, err, "cannot read the retention of the probe %s", key)
		case info.RetainUntil.IsZero() || !info.RetainUntil.After(p.At):
			cleanup()
			return fail(CapRetention, nil, "the probe %s, written locked in mode %s until %s, comes back without retention: the server ignores the lock, so immutability would be false", key, lock.Mode, ret.Until.UTC().Format(time.RFC3339))
		}
		rep.RetainUntil = info.RetainUntil
	}
	rep.DeleteErr = b.Delete(ctx, key)
	if !lock.Enabled() {
		return rep, nil
	}
	switch err := rep.DeleteErr; {
	case err == nil:
		return fail(CapLockedDelete, nil, "the probe %s, locked until %s, was deleted: the server ignores the lock, so immutability would be false", key, rep.RetainUntil.UTC().Format(time.RFC3339))
	case !errors.Is(err, storage.ErrLocked):
		return fail(CapLockedDelete, err, "the delete of the probe %s, locked until %s, was not refused as locked", key, rep.RetainUntil.UTC().Format(time.RFC3339))
	}
	return rep, nil
}

// probeExpirySlack is how long after its lock ends a probe is left, for
// clocks that disagree.
const probeExpirySlack = 10 * time.Minute

// RemoveExpiredProbes deletes the probes earlier checks left locked (see
// ProveCapabilities) once their lock has ended: those written more than
// ProbeRetention (and some slack) before now. Without it every check under
// a lock policy would leave one object behind for good. A probe still
// locked (a bucket's default retention can outlast ProbeRetention) is
// left for a later run; other keys under ProbePrefix are never touched. It
// returns how many it deleted.
func RemoveExpiredProbes(ctx context.Context, b storage.Backend, now time.Time) (int, error) {
	var expired []string
	err := b.List(ctx, ProbePrefix, func(o storage.ObjectInfo) error {
		if p, ok := ParseProbeKey(o.Key); ok && now.Sub(p.At) > ProbeRetention+probeExpirySlack {
			expired = append(expired, o.Key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list the probes under %s: %w", ProbePrefix, err)
	}
	deleted := 0
	for _, key := range expired {
		switch err := b.Delete(ctx, key); {
		case err == nil:
			deleted++
		case errors.Is(err, storage.ErrLocked), errors.Is(err, storage.ErrNotFound):
		default:
			return deleted, fmt.Errorf("delete the expired probe %s: %w", key, err)
		}
	}
	return deleted, nil
}

// readBack reads key and compares it with want.
func readBack(ctx context.Context, b storage.Backend, key string, want []byte) error {
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read %q, want %q", got, want)
	}
	return nil
}

// EnsureProvenIdentity is EnsureIdentity for the writers of a repository
// (wal-push, wal-receive): when the repository has no identity yet, the
// storage must first pass ProveCapabilities under want's lock policy, and
// nothing is written there (but the probe) when it does not. An existing
// identity is returned without a probe: the hot path pays nothing.
//
// seen is when the writer last read walvault.json at this location (zero:
// never): a location it knew a repository at that now holds nothing is
// not a new repository but a gone one (a disk not mounted, so the
// directory under its mount point shows, or a deleted prefix), and is
// refused with a *GoneError.
func EnsureProvenIdentity(ctx context.Context, b storage.Backend, want Identity, ret *storage.Retention, seen time.Time) (Identity, error) {
	id, err := LoadIdentity(ctx, b)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return Identity{}, err
	}
	proof, err := checkClaim(ctx, b, want)
	if err != nil {
		return Identity{}, err
	}
	if proof == "" && !seen.IsZero() {
		return Identity{}, &GoneError{Location: b.Location(), Seen: seen}
	}
	// The server judges the probe's retention by its own clock: the probe
	// is dated by the real one, not by a caller's (test) clock.
	if _, err := ProveCapabilities(ctx, b, NewProbe(want.CreatedBy, time.Now()), want.Lock()); err != nil {
		return Identity{}, err
	}
	return createIdentity(ctx, b, want, ret, proof)
}

// GoneError: a location where a writer read walvault.json before now
// holds no repository at all.
type GoneError struct {
	Location string
	Seen     time.Time
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("%s holds no %s and no WAL or backups, though this server read its %s there at %s: the repository is gone from its location (a disk not mounted, so the directory under its mount point shows; a wrong mount; a deleted prefix). Nothing was written: mount the disk, or point the server at the repository",
		e.Location, IdentityKey, IdentityKey, e.Seen.UTC().Format(time.RFC3339))
}
