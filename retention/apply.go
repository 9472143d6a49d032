package retention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Options tune Apply and Preview.
type Options struct {
	// CallTimeout bounds each storage call; 0 means the context's own
	// deadline only.
	CallTimeout time.Duration
	// Log receives one line per backup and per WAL summary; nil discards.
	Log *slog.Logger
	// Progress shows Apply's deletions, objects done of the plan's
	// (nil: nothing).
	Progress *progress.Output

	task *progress.Task // Apply's, counted by deleteObject
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.Log
}

// call runs one storage call under CallTimeout.
func (o Options) call(ctx context.Context, fn func(context.Context) error) error {
	if o.CallTimeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	return fn(ctx)
}

// Outcome is what became of a backup the plan deletes.
type Outcome string

const (
	// Deleted: every object of the backup is gone.
	Deleted Outcome = "deleted"
	// PartlyDeleted: the manifest is gone (it is no longer a backup and
	// backup-list shows the rest as INCOMPLETE) but some objects are still
	// locked; a later delete removes them once their lock expires.
	PartlyDeleted Outcome = "partly-deleted"
	// KeptByLock: the manifest is still locked, so nothing was deleted and
	// the backup stays whole and restorable.
	KeptByLock Outcome = "kept-by-lock"
	// KeptByMark: the backup was marked keep after the plan was made.
	KeptByMark Outcome = "kept-by-mark"
	// KeptComplete: an INCOMPLETE folder got its manifest after the plan
	// was made (a backup-push finished): it is a backup now and stays.
	KeptComplete Outcome = "kept-complete"
	// KeptHidden: an INCOMPLETE folder's manifest is only hidden behind a
	// delete marker (a versioned bucket): it is a backup, kept; `walvault
	// repair` makes it visible again.
	KeptHidden Outcome = "kept-hidden"
)

// Locked is an object Delete refused because of its Object Lock.
type Locked struct {
	Key         string
	RetainUntil time.Time // zero when the storage did not say
}

// BackupResult is what Apply did to one backup.
type BackupResult struct {
	ID      string
	Outcome Outcome
	Deleted int   // objects removed (or found already gone)
	Bytes   int64 // stored bytes removed
	Locked  []Locked
}

// Tally is what Apply removed of WAL or of partials, in the plan's order.
type Tally struct {
	Deleted     int // objects removed (or found already gone)
	Bytes       int64
	First, Last string // segment names of the oldest and newest removed
	Locked      []Locked
}

// add counts one object deleteInWindows is done with: name (its segment)
// and size, whether it is gone, and the lock that kept it if any.
func (t *Tally) add(name string, size int64, gone bool, locked []Locked) {
	t.Locked = append(t.Locked, locked...)
	if !gone {
		return
	}
	t.Deleted++
	t.Bytes += size
	if t.First == "" {
		t.First = name
	}
	t.Last = name
}

// WALResult is what Apply did to the WAL.
type WALResult struct {
	Tally
	// Held counts WAL objects the plan would delete but that a backup
	// kept by its lock (or a new keep mark) still needs.
	Held int
	// LockedByPolicy counts the Locked objects not asked: written too
	// recently for the repository's lock to have ended (their RetainUntil
	// is then that estimate).
	LockedByPolicy int
}

// Report is the outcome of Apply.
type Report struct {
	Backups  []BackupResult
	WAL      WALResult
	Partials PartialResult
	// Aborted counts the incomplete uploads aborted.
	Aborted int
}

// Apply carries out plan, in an order that keeps the repository
// consistent if it stops at any point:
//
//  1. each deleted backup, oldest first: its keep marks are read again (a
//     backup marked keep since the plan was made stays), then walvault's
//     manifest goes first, so it stops being a backup at once; then its
//     parts and backup_manifest; its keep marks last. An INCOMPLETE folder
//     is first checked for a manifest that appeared since (a backup-push
//     that finished). A folder left without its manifest shows as
//     INCOMPLETE and the next delete removes the rest;
//  2. WAL, oldest first (deleteWindow at once, window after window),
//     only below the cutoff, which is lowered first to the start of any
//     backup step 1 had to keep;
//  3. wal-receive's partials, oldest first: superseded ones (their segment
//     is archived) always, the others only below that same cutoff. A stop
//     between a segment and its partial leaves a partial below the cutoff,
//     which the next delete removes;
//  4. the incomplete uploads PlanUploads found.
//
// Objects under Object Lock (Delete returns storage.ErrLocked) are skipped
// and reported with their retain-until date; a backup whose manifest is
// locked is kept whole. Objects already gone count as deleted. Any other
// error stops Apply, which returns it with the report so far.
func Apply(ctx context.Context, b storage.Backend, plan Plan, opts Options) (rep Report, err error) {
	log := opts.log()
	opts.task = showApply(plan, opts)
	defer func() { opts.task.Done(err == nil) }()
	cutoff := plan.WAL.Cutoff
	for _, bp := range plan.Backups {
		if !bp.Delete {
			continue
		}
		res, err := deleteBackup(ctx, b, bp, opts)
		rep.Backups = append(rep.Backups, res)
		if err != nil {
			return rep, err
		}
		switch res.Outcome {
		case KeptByLock, KeptByMark, KeptComplete, KeptHidden:
			log.Warn("backup kept", "backup_id", bp.ID, "outcome", res.Outcome)
			if bp.Manifest != nil {
				start, err := wal.ParseLSN(bp.Manifest.StartLSN)
				if err != nil {
					return rep, fmt.Errorf("backup %s: start_lsn: %w", bp.ID, err)
				}
				if start < cutoff {
					cutoff = start
				}
			} else {
				cutoff = 0 // its start is unknown here: keep all WAL this time
			}
		default:
			log.Info("backup deleted", "backup_id", bp.ID, "outcome", res.Outcome, "objects", res.Deleted, "bytes", res.Bytes)
		}
	}

	if err := deleteWAL(ctx, b, plan.WAL, cutoff, opts, &rep.WAL); err != nil {
		return rep, err
	}
	if len(plan.WAL.Delete) > 0 {
		log.Info("WAL deleted", "objects", rep.WAL.Deleted, "bytes", rep.WAL.Bytes, "first", rep.WAL.First, "last", rep.WAL.Last,
			"locked", len(rep.WAL.Locked), "held", rep.WAL.Held)
	}
	if rep.Partials, err = applyPartials(ctx, b, plan, cutoff, opts); err != nil {
		return rep, err
	}
	rep.Aborted, err = abortUploads(ctx, b, plan.Uploads, opts)
	return rep, err
}

// deleteWindow is how many objects Apply deletes at once: WAL, and a
// backup's parts. Each delete is a round trip or two (S3: HEAD, then
// DELETE of that version); a day of a busy cluster's WAL is thousands of
// segments, a large backup thousands of parts, and one at a time they took
// minutes over a distant link. Windows go in order, each finished before
// the next starts, so a delete that stops leaves at most one window's
// worth of holes, which the next delete removes.
const deleteWindow = 16

// deleteInWindows deletes the objects of items (key gives each one's key)
// deleteWindow at a time, window after window, and calls done for each of
// a window, in order, once the window has finished: whether it is gone
// and, if its lock kept it, the lock. The first failure (what says of
// what) stops it once its window has finished; done is called for the
// others of that window all the same.
func deleteInWindows[T any](ctx context.Context, b storage.Backend, items []T, key func(T) string, opts Options, what string, done func(i int, gone bool, locked []Locked)) error {
	type outcome struct {
		gone   bool
		locked []Locked
		err    error
	}
	for start := 0; start < len(items); start += deleteWindow {
		window := items[start:min(start+deleteWindow, len(items))]
		results := make([]outcome, len(window))
		var wg sync.WaitGroup
		for i, item := range window {
			wg.Go(func() {
				r, k := &results[i], key(item)
				r.gone, r.err = deleteNext(ctx, b, k, opts, &r.locked, what+" "+k)
			})
		}
		wg.Wait()
		var firstErr error
		for i, r := range results {
			if r.err != nil {
				if firstErr == nil {
					firstErr = r.err
				}
				continue
			}
			done(start+i, r.gone, r.locked)
		}
		if firstErr != nil {
			return firstErr
		}
	}
	return nil
}

// deleteWAL deletes the plan's WAL objects below cutoff, oldest first
// (deleteInWindows), and adds what it did to rep, in the plan's order.
func deleteWAL(ctx context.Context, b storage.Backend, plan WALPlan, cutoff wal.LSN, opts Options, rep *WALResult) error {
	var (
		below     []WALFile
		predicted []Locked
	)
	now := time.Now() // the real clock, like the listing's times
	for _, f := range plan.Delete {
		if uint64(f.Start)+uint64(plan.SegmentSize) > uint64(cutoff) {
			rep.Held++
			continue
		}
		if until, locked := plan.LockedByPolicy(f, now); locked {
			opts.task.Add(1) // done with: the lock keeps it
			predicted = append(predicted, Locked{Key: f.Key, RetainUntil: until})
			continue
		}
		below = append(below, f)
	}
	// The newest WAL, after what the deletes met locked.
	defer func() {
		rep.Locked = append(rep.Locked, predicted...)
		rep.LockedByPolicy += len(predicted)
	}()
	return deleteInWindows(ctx, b, below, func(f WALFile) string { return f.Key }, opts, "delete WAL", func(i int, gone bool, locked []Locked) {
		rep.add(below[i].Name.String(), below[i].Size, gone, locked)
	})
}

func deleteBackup(ctx context.Context, b storage.Backend, bp BackupPlan, opts Options) (BackupResult, error) {
	res := BackupResult{ID: bp.ID}
	var marks []repository.Mark
	err := opts.call(ctx, func(ctx context.Context) (err error) {
		marks, err = repository.LoadMarks(ctx, b, bp.ID)
		return err
	})
	if err != nil {
		return res, err
	}
	if repository.Kept(marks) {
		res.Outcome = KeptByMark
		return res, nil
	}
	manifestKey := repository.BackupManifestKey(bp.ID)
	if bp.Manifest == nil {
		err := opts.call(ctx, func(ctx context.Context) error {
			_, err := b.Stat(ctx, manifestKey)
			return err
		})
		switch {
		case err == nil:
			res.Outcome = KeptComplete
			return res, nil
		case !errors.Is(err, storage.ErrNotFound):
			return res, fmt.Errorf("backup %s: check for a manifest: %w", bp.ID, err)
		}
		hidden, err := manifestHidden(ctx, b, manifestKey, opts)
		if err != nil {
			return res, fmt.Errorf("backup %s: %w", bp.ID, err)
		}
		if hidden {
			res.Outcome = KeptHidden
			return res, nil
		}
	}
	// walvault's manifest alone first, then the parts and backup_manifest
	// in windows, then the keep marks one by one, in the order written.
	objs := bp.Objects
	count := func(oi storage.ObjectInfo) {
		res.Deleted++
		res.Bytes += oi.Size
	}
	if len(objs) > 0 && objs[0].Key == manifestKey {
		gone, err := deleteNext(ctx, b, manifestKey, opts, &res.Locked, "delete backup "+bp.ID)
		if err != nil {
			return res, err
		}
		if !gone {
			// Still a backup: its parts must stay.
			res.Outcome = KeptByLock
			return res, nil
		}
		count(objs[0])
		objs = objs[1:]
	}
	firstMark := len(objs)
	for firstMark > 0 {
		if _, isMark := repository.ParseMarkKey(objs[firstMark-1].Key); !isMark {
			break
		}
		firstMark--
	}
	parts, markObjs := objs[:firstMark], objs[firstMark:]
	err = deleteInWindows(ctx, b, parts, func(oi storage.ObjectInfo) string { return oi.Key }, opts, "delete backup "+bp.ID, func(i int, gone bool, locked []Locked) {
		res.Locked = append(res.Locked, locked...)
		if gone {
			count(parts[i])
		}
	})
	if err != nil {
		return res, err
	}
	for _, oi := range markObjs {
		gone, err := deleteNext(ctx, b, oi.Key, opts, &res.Locked, "delete backup "+bp.ID)
		if err != nil {
			return res, err
		}
		if gone {
			count(oi)
		}
	}
	res.Outcome = Deleted
	if len(res.Locked) > 0 {
		res.Outcome = PartlyDeleted
	}
	return res, nil
}

// manifestHidden reports whether a versioned bucket still holds key behind
// a delete marker. Storage that will not show old versions
// (repository.ErrVersionsRefused) counts as "not hidden", with a warning.
func manifestHidden(ctx context.Context, b storage.Backend, key string, opts Options) (bool, error) {
	var hidden bool
	err := opts.call(ctx, func(ctx context.Context) error {
		rc, _, err := repository.OpenHidden(ctx, b, key)
		if err == nil {
			hidden = true
			return rc.Close()
		}
		return err
	})
	switch {
	case err == nil || errors.Is(err, storage.ErrNotFound):
		return hidden, nil
	case errors.Is(err, repository.ErrVersionsRefused):
		opts.log().Warn("cannot tell whether a manifest is hidden behind a delete marker", "key", key, "err", err)
		return false, nil
	}
	return false, fmt.Errorf("look for a hidden %s: %w", key, err)
}

// deleteObject deletes key. A locked object is not an error: it returns
// it, with its retain-until date when Stat says. Gone already is success.
// deleteNext is one step of Apply's deletions: nothing once ctx is done
// (its error is returned as is), a failure wrapped as "what: ...", and an
// object its lock keeps added to locked. It reports whether key is gone.
func deleteNext(ctx context.Context, b storage.Backend, key string, opts Options, locked *[]Locked, what string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l, err := deleteObject(ctx, b, key, opts)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if l != nil {
		*locked = append(*locked, *l)
		return false, nil
	}
	return true, nil
}

func deleteObject(ctx context.Context, b storage.Backend, key string, opts Options) (*Locked, error) {
	err := opts.call(ctx, func(ctx context.Context) error { return b.Delete(ctx, key) })
	if err == nil {
		err = deleteResurfaced(ctx, b, key, opts)
	}
	switch {
	case err == nil, errors.Is(err, storage.ErrNotFound):
		opts.log().Debug("deleted", "key", key)
		opts.task.Add(1)
		return nil, nil
	case errors.Is(err, storage.ErrLocked):
		opts.task.Add(1) // done with: the lock keeps it
		l := &Locked{Key: key}
		if until, ok := storage.LockedUntil(err); ok {
			l.RetainUntil = until
			return l, nil
		}
		_ = opts.call(ctx, func(ctx context.Context) error {
			info, err := b.Stat(ctx, key)
			if err == nil {
				l.RetainUntil = info.RetainUntil
			}
			return err
		})
		return l, nil
	}
	return nil, err
}

// maxResurfaced bounds the older versions of one key deleteResurfaced
// deletes: a key rewritten more often than that is left for the next run.
const maxResurfaced = 16

// deleteResurfaced deletes the older versions of key that its delete made
// current, in a versioned bucket: Delete removes the current version only,
// and a key uploaded twice (a sync tool, an attacker) would come back
// visible while the run said it was deleted. A Stat (one HEAD) says
// whether one did; an older version under a lock is ErrLocked, as any.
func deleteResurfaced(ctx context.Context, b storage.Backend, key string, opts Options) error {
	if _, ok := storage.AsVersioned(b); !ok {
		return nil
	}
	for range maxResurfaced {
		err := opts.call(ctx, func(ctx context.Context) error {
			_, err := b.Stat(ctx, key)
			return err
		})
		if err != nil {
			return err // ErrNotFound: gone
		}
		if err := opts.call(ctx, func(ctx context.Context) error { return b.Delete(ctx, key) }); err != nil {
			return err
		}
	}
	return nil
}

// Preview looks up, for a dry run, which backups the plan deletes still
// have a locked manifest (one Stat each), and sets their LockedUntil:
// Apply would keep them. Backends that do not report locks leave it zero.
func Preview(ctx context.Context, b storage.Backend, plan *Plan, opts Options) error {
	for i := range plan.Backups {
		bp := &plan.Backups[i]
		if !bp.Delete || bp.Manifest == nil {
			continue
		}
		var info storage.ObjectInfo
		err := opts.call(ctx, func(ctx context.Context) (err error) {
			info, err = b.Stat(ctx, repository.BackupManifestKey(bp.ID))
			return err
		})
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("backup %s: %w", bp.ID, err)
		}
		if info.RetainUntil.After(plan.Now) {
			bp.LockedUntil = info.RetainUntil
		}
	}
	return nil
}

// KeepLocked plans the WAL and partials again as Apply will delete them,
// after Preview: a backup whose manifest is locked is kept, and so is the
// WAL it needs, so a dry run's WAL line and totals are what --confirm
// deletes. (Apply itself holds that WAL back as it goes.) An incremental
// its lock keeps keeps its whole chain, as one the policy keeps does: a
// full backup, whose lock ends first, is not deleted from under the
// incrementals that still build on it.
func KeepLocked(plan *Plan) error {
	if plan.inv == nil {
		return nil
	}
	effective := *plan
	effective.Backups = slices.Clone(plan.Backups)
	locked := false
	for i := range effective.Backups {
		if bp := &effective.Backups[i]; bp.Delete && !bp.LockedUntil.IsZero() {
			bp.Delete, locked = false, true
		}
	}
	if !locked {
		return nil
	}
	keepAncestors(*plan.inv, effective.Backups)
	for i := range plan.Backups {
		if bp, eff := &plan.Backups[i], effective.Backups[i]; bp.Delete && bp.LockedUntil.IsZero() && !eff.Delete {
			bp.Delete, bp.Reason, bp.Objects, bp.Bytes = false, eff.Reason, nil, 0
		}
	}
	w, err := planWAL(*plan.inv, effective)
	if err != nil {
		return err
	}
	plan.WAL, plan.Partials = w, planPartials(*plan.inv, w)
	return nil
}
