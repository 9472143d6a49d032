package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// AheadOptions are wal-push's settings with push-ahead.
type AheadOptions struct {
	Options
	// Concurrency is how many of the files waiting as .ready in
	// archive_status are pushed ahead, in parallel, alongside the requested
	// one. 0 turns push-ahead off (and then only the check of an earlier
	// record remains).
	Concurrency int
	// Pipeline, in a process that stays up, lets pushes ahead outlive the
	// call (see Pipeline); nil in a process per call.
	Pipeline *Pipeline
}

// AheadResult says what PushAhead did.
type AheadResult struct {
	Result // the requested file
	// Skipped: an earlier wal-push had pushed the file ahead and the record
	// matched the file on disk, so nothing was uploaded.
	Skipped bool
	// Proof says how the skipped file was proven to be the one pushed:
	// ProofStat (it had settled before it was read, and its inode and
	// change time are unchanged) or ProofSHA256 (hashed again).
	Proof       string
	Ahead       []Result // files pushed ahead and recorded, in completion order
	AheadFailed int      // files whose push ahead failed (only logged)
	AheadBytes  int64    // raw bytes of Ahead
}

// statusDir is pg_wal/archive_status beside the WAL directory.
func statusDir(walDir string) string { return filepath.Join(walDir, "archive_status") }

// PushAhead archives the file at path like Push, and pushes up to
// opts.Concurrency of the files PostgreSQL will ask for next (those waiting
// as .ready in archive_status beside path) in parallel in the same run.
//
// Each file pushed ahead is recorded in pg_wal/walvault/pushed only after
// its upload succeeded. When PostgreSQL later asks for such a file, the
// record is trusted only if the repository is the same and the file on disk
// is provably the one read (pushRecord.check): then nothing is uploaded.
// Otherwise the file is pushed normally (an identical object is "already
// archived"; a different one is a conflict, as for any push).
//
// The error is the requested file's alone: failures of pushes ahead are
// logged and leave no record, so PostgreSQL's own call pushes those files
// later. archive_status is only read, never written. It returns after every
// push it started has finished, unless opts.Pipeline carries them on.
func PushAhead(ctx context.Context, b storage.Backend, path string, opts AheadOptions) (AheadResult, error) {
	opts.Options = opts.withDefaults()
	log := opts.Log
	path = filepath.Clean(path)
	name := filepath.Base(path)
	walDir := filepath.Dir(path)
	dir := pushedDir(walDir)
	var out AheadResult
	// pausedNow reads the pause file only when push-ahead is on.
	pausedNow := func() bool { return opts.Concurrency > 0 && aheadPaused(walDir) }
	pipe := opts.Pipeline
	var yield *aheadYield // cuts off what competes with the file asked for
	if pipe != nil {
		yield = yieldAtHalfTime(ctx, log, walDir, name, func() int { return pipe.cutOff(path) })
		defer yield.stop()
		// Being pushed ahead right now: its record decides, once written.
		if err := pipe.waitFor(ctx, path); err != nil {
			return out, err
		}
	}

	if rec, ok := readRecord(dir, name); ok {
		proof, why, err := rec.check(path, b.Location())
		// Decided: the record has served its purpose either way.
		if rerr := removeRecord(dir, name); rerr != nil {
			log.Warn("cannot remove push-ahead record", "segment", name, "err", rerr)
		}
		file, cerr := wal.Classify(name)
		switch {
		case err == nil && proof != "" && cerr == nil:
			if pipe != nil {
				// Keep the pipeline full: the next files start now.
				startAhead(ctx, b, walDir, dir, aheadCandidates(walDir, name, dir, opts, pausedNow()), opts, yield)
			}
			pruneRecords(dir, walDir, time.Now()) // file times are the real clock
			out.Result = Result{File: file, Key: rec.Key, RawSize: rec.Size, SHA256: rec.SHA256, AlreadyArchived: true}
			out.Skipped, out.Proof = true, proof
			return out, nil
		case err != nil:
			log.Warn("cannot check push-ahead record; pushing normally", "segment", name, "err", err)
		default:
			log.Info("push-ahead record does not match; pushing normally", "segment", name, "reason", why)
		}
	} else if hasRecord(dir, name) {
		removeRecord(dir, name) // unreadable: as good as none
	}

	paused := pausedNow()
	cands := aheadCandidates(walDir, name, dir, opts, paused)
	// pushAlone is the push of the requested file; during a pause, one
	// that took a small share of the call's time ends it (resumeAhead).
	pushAlone := func() (Result, error) {
		began := time.Now()
		res, err := Push(ctx, b, path, opts.Options)
		if err == nil && paused {
			resumeAhead(ctx, log, walDir, name, time.Since(began), opts.Concurrency)
		}
		return res, err
	}

	if pipe != nil {
		startAhead(ctx, b, walDir, dir, cands, opts, yield)
		res, err := pushAlone()
		pruneRecords(dir, walDir, time.Now())
		return AheadResult{Result: res}, err
	}
	start := time.Now()
	var (
		g       errgroup.Group
		mu      sync.Mutex
		running atomic.Int32
	)
	aheadCtx, cutAhead := context.WithCancel(ctx)
	defer cutAhead()
	yield = yieldAtHalfTime(ctx, log, walDir, name, func() int { cutAhead(); return int(running.Load()) })
	g.SetLimit(opts.Concurrency + 1) // never blocks: len(cands) <= Concurrency
	for _, c := range cands {
		running.Add(1)
		g.Go(func() error {
			r, err := pushAheadOne(aheadCtx, b, filepath.Join(walDir, c), dir, opts.Options)
			running.Add(-1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.AheadFailed++
				if !yield.fired() || aheadCtx.Err() == nil { // a cut-off is logged once
					log.Warn("push ahead failed; PostgreSQL's own call will push it", "segment", c, "err", err)
				}
				return nil
			}
			out.Ahead = append(out.Ahead, r)
			out.AheadBytes += r.RawSize
			return nil
		})
	}
	res, err := pushAlone()
	yield.stop() // durable (or failed): the pushes ahead may use the rest of the time
	g.Wait()     // drain: no upload outlives the command
	if len(cands) > 0 {
		log.Info("push-ahead summary", "pushed", len(out.Ahead), "failed", out.AheadFailed, "bytes", out.AheadBytes,
			"elapsed", time.Since(start).Round(time.Millisecond))
	}
	pruneRecords(dir, walDir, time.Now()) // file times are the real clock
	out.Result = res
	return out, err
}

// aheadCandidates are the files to push ahead of the call for name: the
// next opts.Concurrency .ready ones without a record, less those a
// Pipeline has in flight (which count towards the number); none while
// pushing ahead is paused (aheadPaused, which the caller read).
func aheadCandidates(walDir, name, dir string, opts AheadOptions, paused bool) []string {
	if opts.Concurrency <= 0 || paused {
		return nil
	}
	cands := nextReady(walDir, name, dir, opts.Concurrency)
	if pipe := opts.Pipeline; pipe != nil {
		// In flight, or done since nextReady looked: a push ahead writes
		// its record before it leaves the flight, so this order misses
		// neither.
		cands = slices.DeleteFunc(cands, func(c string) bool {
			return pipe.busy(filepath.Join(walDir, c)) || hasRecord(dir, c)
		})
	}
	if len(cands) > 0 {
		if _, err := ensurePushedDir(walDir); err != nil {
			opts.Log.Warn("push-ahead off for this call", "err", err)
			return nil
		}
	}
	return cands
}

// startAhead starts the pushes ahead of cands in opts.Pipeline, each with
// as long as the call (ctx) had left when it started them, and logging to the
// Pipeline's logger (the call returns before they end); none once the
// call's yield has cut pushes ahead off.
func startAhead(ctx context.Context, b storage.Backend, walDir, dir string, cands []string, opts AheadOptions, yield *aheadYield) {
	if yield.fired() {
		return // the call's own file needs the link
	}
	pipe := opts.Pipeline
	ahead := opts.Options
	ahead.Log = pipe.log
	timeout := time.Duration(0)
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	for _, c := range cands {
		path := filepath.Join(walDir, c)
		pipe.start(path, func(ctx context.Context) { // the Pipeline's, not the call's
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if _, err := pushAheadOne(ctx, b, path, dir, ahead); err != nil {
				if errors.Is(ctx.Err(), context.Canceled) { // cut off, or the helper stops
					pipe.log.Info("push ahead cut off; PostgreSQL's own call will push it", "segment", c)
				} else {
					pipe.log.Warn("push ahead failed; PostgreSQL's own call will push it", "segment", c, "err", err)
				}
			}
		})
	}
}

// pushAheadOne pushes one file and records it once it is durable.
func pushAheadOne(ctx context.Context, b storage.Backend, path, dir string, opts Options) (Result, error) {
	name := filepath.Base(path)
	start := time.Now() // the real clock, like the file times it is compared with
	before, err := os.Stat(path)
	if err != nil {
		return Result{}, err
	}
	r, err := Push(ctx, b, path, opts)
	if err != nil {
		return Result{}, err
	}
	// The record says what was pushed. The sha256 is of the bytes read for
	// the upload; the later call hashes the file again unless it had
	// settled before this read (pushRecord.check), so a change at any time
	// (even one that keeps size and mtime) is caught. A change seen already
	// here is simply not recorded.
	after, err := os.Stat(path)
	if err != nil {
		return Result{}, err
	}
	beforeID, okBefore := identityOf(before)
	afterID, okAfter := identityOf(after)
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || r.RawSize != after.Size() || beforeID != afterID {
		return Result{}, fmt.Errorf("%s changed while it was pushed ahead: not recorded", name)
	}
	rec := pushRecord{SHA256: r.SHA256, Size: r.RawSize, MTime: after.ModTime().UnixNano(), Repository: b.Location(), Key: r.Key}
	if okBefore && okAfter {
		rec.Dev, rec.Inode, rec.CTime, rec.ReadAt = afterID.Dev, afterID.Inode, afterID.CTime, start.UnixNano()
	}
	if err := writeRecord(dir, name, rec); err != nil {
		return Result{}, err
	}
	msg := "pushed ahead"
	if r.AlreadyArchived {
		msg = "pushed ahead (already archived with the same content)"
	}
	opts.Log.Info(msg, "segment", name, "key", r.Key, "bytes", r.RawSize, "elapsed", time.Since(start).Round(time.Millisecond))
	return r, nil
}

// nextReady returns up to limit files, other than requested, that wait as
// .ready in archive_status, exist in walDir and have no record yet, in the
// order PostgreSQL archives them: timeline history files first, then by name
// (which is WAL order within a timeline).
func nextReady(walDir, requested, recordDir string, limit int) []string {
	entries, err := os.ReadDir(statusDir(walDir))
	if err != nil {
		return nil
	}
	type cand struct {
		name     string
		history  bool
		timeline wal.TimelineID
	}
	// A timeline's history file goes first (PostgreSQL archives history
	// files before anything else): while it waits, or is the one asked
	// for, no file of that timeline is pushed ahead. Its push may fail
	// for good (another server took the timeline ID, as a promotion while
	// the repository was unreachable can), and this server's WAL of that
	// timeline would then mix with the other's.
	pendingHistory := map[wal.TimelineID]bool{}
	if f, err := wal.Classify(requested); err == nil && f.Kind == wal.KindTimelineHistory {
		pendingHistory[f.Timeline] = true
	}
	var cs []cand
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || n == requested {
			continue
		}
		f, err := wal.Classify(n)
		if err != nil {
			continue
		}
		if f.Kind == wal.KindTimelineHistory {
			pendingHistory[f.Timeline] = true
		}
		if hasRecord(recordDir, n) {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(walDir, n)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		cs = append(cs, cand{n, f.Kind == wal.KindTimelineHistory, f.Timeline})
	}
	cs = slices.DeleteFunc(cs, func(c cand) bool { return !c.history && pendingHistory[c.timeline] })
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].history != cs[j].history {
			return cs[i].history
		}
		return cs[i].name < cs[j].name
	})
	if len(cs) > limit {
		cs = cs[:limit]
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names
}

// aheadYield cuts off the pushes ahead that compete with the file a call
// is for once half of the call's time has passed. On a link too slow to
// carry them all within the deadline they would otherwise fail together
// with the file PostgreSQL asked for, and again on every retry: archiving
// would never move. What is cut off leaves no record; PostgreSQL's own
// calls push those files.
type aheadYield struct {
	timer *time.Timer
	done  atomic.Bool

	mu      sync.Mutex // held while it cuts off, so stop waits for that
	stopped bool
}

// yieldAtHalfTime arms an aheadYield for a call on file name in walDir:
// cut cancels what competes and says how many it cancelled. Without a
// deadline it never fires.
func yieldAtHalfTime(ctx context.Context, log *slog.Logger, walDir, name string, cut func() int) *aheadYield {
	y := &aheadYield{}
	deadline, ok := ctx.Deadline()
	if !ok {
		return y
	}
	y.timer = time.AfterFunc(time.Until(deadline)/2, func() {
		y.mu.Lock()
		defer y.mu.Unlock()
		if y.stopped {
			return
		}
		y.done.Store(true)
		if n := cut(); n > 0 {
			pauseAhead(walDir)
			log.Warn("pushes ahead cut off halfway through the call's time, unfinished (the storage failing, as the errors logged say, or a link too slow to carry them), so that the file asked for has the link to itself; they leave no record and PostgreSQL's own calls push them, one at a time for the next "+aheadPause.String()+" or until the link is fast again (if the link is slow, not failing: lower upload-concurrency or raise the timeout)",
				"segment", name, "cut_off", n)
		}
	})
	return y
}

// aheadPause is how long after a cut-off no call pushes ahead, unless one
// finds the link fast again (resumeAhead): on a link
// that could not carry the file asked for and its pushes ahead in time,
// one file at a time is the fastest, and pushing ahead again would make
// each call wait half its time before its own file has the link.
const aheadPause = 10 * time.Minute

// pausedFile (in pg_wal/walvault) is touched at each cut-off.
const pausedFile = "ahead-paused"

func pauseAhead(walDir string) {
	p := filepath.Join(walDir, stateDirName, pausedFile)
	if err := os.WriteFile(p, nil, 0o600); err == nil {
		now := time.Now()
		os.Chtimes(p, now, now) // an existing empty file keeps its time otherwise
	}
}

// aheadPaused says whether a cut-off happened within aheadPause.
func aheadPaused(walDir string) bool {
	_, paused := AheadPausedUntil(walDir)
	return paused
}

// AheadPausedUntil says until when calls for the WAL directory walDir push
// no file ahead after a cut-off (PushAhead), unless one finds the link
// fast again first; false when no such pause is in force.
func AheadPausedUntil(walDir string) (time.Time, bool) {
	fi, err := os.Stat(filepath.Join(walDir, stateDirName, pausedFile))
	if err != nil {
		return time.Time{}, false
	}
	until := fi.ModTime().Add(aheadPause)
	return until, time.Now().Before(until)
}

// resumeAhead ends a pause before aheadPause once the link is fast again:
// the call's own file, pushed alone, took so little of the time the call
// had left before it (took plus what remains to ctx's deadline) that,
// sharing the link with concurrency pushes ahead, it would still be
// durable within half of the halfway cut-off. Without a deadline there is
// no cut-off, and nothing to judge by.
func resumeAhead(ctx context.Context, log *slog.Logger, walDir, name string, took time.Duration, concurrency int) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return
	}
	callTime := time.Until(deadline) + took
	if took*time.Duration(4*(concurrency+1)) > callTime {
		return
	}
	if err := os.Remove(filepath.Join(walDir, stateDirName, pausedFile)); err != nil {
		return // gone already: another call ended the pause
	}
	log.Info("pushing ahead again: the link carried the file asked for in a small share of the call's time", "segment", name,
		"elapsed", took.Round(time.Millisecond), "timeout", callTime.Round(time.Second))
}

// stop disarms y once the call's own file is done. A cut-off under way
// ends before it returns: it logs to the call's logger.
func (y *aheadYield) stop() {
	if y == nil || y.timer == nil {
		return
	}
	y.timer.Stop()
	y.mu.Lock()
	y.stopped = true
	y.mu.Unlock()
}

// fired says whether y has cut the pushes ahead off.
func (y *aheadYield) fired() bool { return y != nil && y.done.Load() }
