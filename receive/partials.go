package receive

import (
	"context"
	"errors"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// oldPartials is what wal-receive knows of the open segment's partials
// from one flush to the next. Under Object Lock an older partial cannot be
// deleted before its retention ends (lock_days after its write): asking
// at every flush cost a refused DELETE and a warning per older partial
// per flush, quadratic in the partials of a segment that stays open. So
// the segment is listed once, the partials stored since are added as they
// are, and each one remembers when a delete can succeed. Run keeps one
// across reconnections.
type oldPartials struct {
	seg    wal.Segment
	listed bool // known holds seg's listing and the partials stored since
	// known maps each partial of seg to the time before which its lock
	// refuses a delete (zero: not known to be locked).
	known map[string]time.Time
	told  bool // the line about locked partials was logged
}

// lockRecheck is the least wait before a partial refused as locked is
// asked again, when the end of its retention is past or unknown: the
// storage's clock may be behind ours (S3 accepts requests 15 minutes
// off), and a bucket's own default retention need not say when it ends.
const lockRecheck = time.Hour

// list makes known segment s's partials, keeping what was known of the
// locks of those still there.
func (o *oldPartials) list(ctx context.Context, b storage.Backend, s wal.Segment) error {
	parts, err := repository.ListPartials(ctx, b, s)
	if err != nil {
		return err
	}
	known := make(map[string]time.Time, len(parts)+1)
	for _, p := range parts {
		if o.listed && o.seg == s {
			known[p.Key] = o.known[p.Key]
		} else {
			known[p.Key] = time.Time{}
		}
	}
	o.seg, o.known, o.listed = s, known, true
	return nil
}

// deletePartials deletes segment s's partials older than keep, the one
// just stored (lockedUntil is when its lock ends, zero when unknown or
// none), or all of them when keep is "": the complete segment is stored.
// Those newer than keep stay too (a previous session's that got further,
// or another writer's): the newest partial of a segment is the one
// wal-fetch serves, and the only one anything reads. Failures are only
// logged: a leftover partial is harmless.
//
// A locked partial is asked again only once its retention has ended,
// while its segment is open. Once the segment is archived its locked
// partials are left to `walvault delete` (they are superseded), so that
// wal-receive need not remember days of them. One line, the first time,
// says so.
func (r *receiver) deletePartials(ctx context.Context, s wal.Segment, keep string, lockedUntil time.Time) {
	if r.old == nil {
		r.old = &oldPartials{}
	}
	o := r.old
	complete := keep == ""
	// Listed again once complete, for any other writer's partials.
	if complete || !o.listed || o.seg != s {
		if err := o.list(ctx, r.b, s); err != nil {
			r.log.Warn("could not list old partials", "segment", s.String(), "error", err)
			return
		}
	}
	if complete {
		defer func() { o.listed, o.known = false, nil }()
	} else if t, ok := o.known[keep]; !ok || lockedUntil.After(t) {
		o.known[keep] = lockedUntil
	}
	now := r.opts.Push.Now()
	waiting, until := 0, time.Time{}
	wait := func(t time.Time) {
		waiting++
		if t.After(until) {
			until = t
		}
	}
	for key, notBefore := range o.known {
		if !complete && key >= keep {
			continue
		}
		if now.Before(notBefore) {
			wait(notBefore)
			continue
		}
		err := r.b.Delete(ctx, key)
		switch {
		case err == nil, errors.Is(err, storage.ErrNotFound):
			delete(o.known, key)
		case errors.Is(err, storage.ErrLocked):
			o.known[key] = r.lockEnd(ctx, key, err, now)
			wait(o.known[key])
		default:
			// What refused this one (a missing permission, an outage)
			// likely refuses the others: they are asked next time.
			r.log.Warn("could not delete an old partial", "key", key, "error", err)
			return
		}
	}
	if waiting == 0 {
		return
	}
	if !o.told {
		o.told = true
		r.log.Info("older partials are under Object Lock: each is deleted once its retention ends, by wal-receive while its segment is open, by `walvault delete` once the segment is archived",
			"segment", s.String(), "waiting", waiting, "until", until.UTC().Format(time.RFC3339))
		return
	}
	if complete {
		r.log.Debug("locked partials of an archived segment left to `walvault delete`", "segment", s.String(), "partials", waiting, "until", until.UTC().Format(time.RFC3339))
	}
}

// lockEnd is when a partial whose delete was refused as locked may be
// asked again: when its retention ends, as the refusal says, or else the
// object (Stat), or else the lock policy from its write; but no sooner
// than lockRecheck from now.
func (r *receiver) lockEnd(ctx context.Context, key string, refusal error, now time.Time) time.Time {
	until, ok := storage.LockedUntil(refusal)
	if !ok {
		if info, err := r.b.Stat(ctx, key); err == nil {
			until = info.RetainUntil
			if lock := r.opts.Push.Lock; until.IsZero() && lock.Enabled() && !info.ModTime.IsZero() {
				until = info.ModTime.Add(time.Duration(lock.Days) * 24 * time.Hour)
			}
		}
	}
	if until.After(now) {
		return until
	}
	return now.Add(lockRecheck)
}
