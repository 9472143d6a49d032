package restore

// Prefetch: after wal-fetch serves a segment, a detached helper downloads
// the next segments of the same timeline, several at once, into a cache
// under pg_wal, and a later wal-fetch for one of them is a verified rename
// instead of a download. The helper stays while recovery moves on (it
// follows the position wal-fetch notes after each segment) and exits once
// recovery stops asking for a while.
//
// Layout, beside restore_command's %p (which is pg_wal/RECOVERYXLOG):
//
//	pg_wal/walvault/prefetch/<TLI>/<segment>         verified copy
//	pg_wal/walvault/prefetch/<TLI>/<segment>.sha256  its record (see sumRecord), written after the copy
//	pg_wal/walvault/prefetch/<TLI>/.<segment>.busy   flock'd while the prefetcher downloads it
//	pg_wal/walvault/prefetch/<TLI>/.<anything>       in progress, never served
//	pg_wal/walvault/prefetch/position                the segment wal-fetch served last
//	pg_wal/walvault/prefetch.lock                    flock: one prefetcher at a time
//	pg_wal/walvault/prefetch.log                     the prefetcher's log
//
// Rules that keep it safe:
//   - A cached file is served only when its name (timeline included) is
//     exactly the requested one and it hashes to the sha256 and size in
//     its record, which were checked against the repository's metadata
//     when it was downloaded. Anything else is deleted and the file is
//     fetched from the repository as if there were no cache.
//   - A file absent from the cache is never "missing": only the
//     repository's authoritative answer (Fetch) makes wal-fetch exit 1.
//   - A wal-fetch for a segment being downloaded waits for that download
//     (at most PrefetchWait), through the segment's .busy lock: the kernel
//     drops the lock when the prefetcher exits or dies, so a crash never
//     leaves a wal-fetch waiting.
//   - The cache is scoped to one recovery: a request for a timeline
//     history file (PostgreSQL asks for them when recovery starts and when
//     it ends, to pick a timeline) clears it, and a prefetcher exits when
//     it sees it cleared; files of segments already passed, of older
//     timelines and older than PrefetchMaxAge are removed on every call.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// PrefetchMaxAge: a cached file older than this is removed whatever its
// name; no recovery waits that long between two segments and still
// benefits from the cache.
const PrefetchMaxAge = 10 * time.Minute

// PrefetchLifetime bounds one prefetcher process; the next wal-fetch
// starts a new one if recovery still goes on.
const PrefetchLifetime = 60 * time.Second

// PrefetchParallel is how many segments a prefetcher downloads at once:
// against a remote S3 endpoint the requests' latency overlaps; on a
// loopback endpoint sharing two cores more would only compete for them.
const PrefetchParallel = 4

// PrefetchIdle: a following prefetcher with nothing left to download exits
// when recovery has not moved on for this long (a paused or finished
// recovery, or the end of the archive for now).
const PrefetchIdle = 3 * time.Second

// PrefetchWait bounds how long wal-fetch waits for the prefetcher's
// download of the very segment it wants before downloading it itself
// (a 16 MiB segment takes well under a second when all is well).
const PrefetchWait = 5 * time.Second

// positionPoll is how often a following prefetcher looks at the position
// file: a stat and a 24-byte read, small next to a segment's replay.
const positionPoll = 10 * time.Millisecond

const (
	sumSuffix    = ".sha256"
	busySuffix   = ".busy"
	positionFile = "position"
)

// PrefetchDir returns the prefetch cache directory for a wal-fetch that
// writes to dest (restore_command's %p, a file directly in pg_wal).
func PrefetchDir(dest string) string {
	return filepath.Join(filepath.Dir(dest), "walvault", "prefetch")
}

// prefetchLockPath is outside dir, so clearing the cache never removes the
// lock a running prefetcher holds.
func prefetchLockPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "prefetch.lock")
}

// PrefetchLogPath is where a detached prefetcher writes its log.
func PrefetchLogPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "prefetch.log")
}

func timelineDir(dir string, tli wal.TimelineID) string {
	return filepath.Join(dir, fmt.Sprintf("%08X", uint32(tli)))
}

func busyPath(tdir, name string) string {
	return filepath.Join(tdir, "."+name+busySuffix)
}

// TakePrefetched hands name over to dest from the cache in dir when a
// verified copy is there, touching neither the configuration nor the
// repository: it is what wal-fetch tries first. The cache is tidied first
// (see TidyPrefetch). refused is set when a cached copy failed its check
// and was deleted; the caller logs it and fetches the file.
func TakePrefetched(dir, name, dest string) (res FetchResult, ok bool, refused error) {
	TidyPrefetch(dir, name, time.Now(), nil)
	res, ok, refused = takePrefetched(dir, name, dest)
	if ok {
		dropOlderTimelines(dir, name)
	}
	return res, ok, refused
}

// FetchCached is Fetch with the prefetch cache in dir in front of the
// repository. fromCache says the file was handed over from the cache. When
// the prefetcher is downloading name right now, FetchCached waits for it
// (at most opts.PrefetchWait) rather than download it a second time. A
// cached copy that does not verify is deleted with a warning and the file
// is fetched from b.
func FetchCached(ctx context.Context, b storage.Backend, name, dest, dir string, opts FetchOptions) (res FetchResult, fromCache bool, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refusedLog := func(err error) {
		if err != nil {
			log.Warn("prefetched file refused and deleted; fetching it from the repository", "segment", name, "error", err)
		}
	}
	res, ok, refused := TakePrefetched(dir, name, dest)
	refusedLog(refused)
	if ok {
		return res, true, nil
	}
	if file, err := wal.Classify(name); err == nil && file.Kind == wal.KindSegment {
		wait := opts.PrefetchWait
		if wait <= 0 {
			wait = PrefetchWait
		}
		// Look again even when nothing was in flight: the download may
		// have finished since the first look.
		start := time.Now()
		if !waitInFlight(ctx, busyPath(timelineDir(dir, file.Timeline), name), wait) {
			log.Warn("the prefetcher is still downloading this segment; downloading it here too", "segment", name, "waited", time.Since(start).Round(time.Millisecond))
		}
		res, ok, refused := takePrefetched(dir, name, dest)
		refusedLog(refused)
		if ok {
			dropOlderTimelines(dir, name)
			return res, true, nil
		}
	}
	res, err = Fetch(ctx, b, name, dest, opts)
	if err != nil {
		return FetchResult{}, false, err
	}
	dropOlderTimelines(dir, name)
	return res, false, nil
}

// takePrefetched hands the cached copy of name over to dest when there is
// one that verifies. The copy is first moved out of the cache (so nothing
// can change it while it is checked), then hashed, then renamed to dest.
func takePrefetched(dir, name, dest string) (FetchResult, bool, error) {
	file, err := wal.Classify(name)
	if err != nil || file.Kind != wal.KindSegment {
		return FetchResult{}, false, nil
	}
	cached := filepath.Join(timelineDir(dir, file.Timeline), name)
	// The record is written after the copy, so a record means the copy is
	// complete (or was tampered with, which the hash catches).
	want, ok := readSum(cached + sumSuffix)
	if !ok {
		return FetchResult{}, false, nil
	}
	os.Remove(cached + sumSuffix)
	// A fresh name, not one made by CreateTemp: renaming over an existing
	// file makes ext4 start writing the renamed file's 16 MiB to disk
	// (auto_da_alloc), which costs more than the rest of the hand-over.
	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".walvault-prefetch-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(rand.Uint64(), 36))
	served := false
	defer func() {
		if !served {
			os.Remove(tmp)
		}
	}()
	if err := os.Rename(cached, tmp); err != nil {
		return FetchResult{}, false, nil // not there: fetch it
	}
	f, err := os.Open(tmp)
	if err != nil {
		return FetchResult{}, false, nil
	}
	defer f.Close()
	if err := checkFile(f, want); err != nil {
		return FetchResult{}, false, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return FetchResult{}, false, nil
	}
	if err := os.Rename(tmp, dest); err != nil {
		return FetchResult{}, false, nil
	}
	served = true
	return FetchResult{Key: "prefetch:" + name, RawSize: want.size, StoredSize: want.size, SHA256: want.sha256}, true, nil
}

func readSum(path string) (sumRecord, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sumRecord{}, false
	}
	return parseSumRecord(data)
}

// writeSum writes the record through a temporary file and a rename.
func writeSum(path string, res FetchResult) error {
	rec := sumRecord{sha256: res.SHA256, size: res.RawSize, checkpoints: res.checkpoints}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(rec.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// TidyPrefetch keeps the cache in dir scoped to the recovery asking for
// name: a timeline history file request (recovery starting or ending)
// clears it; otherwise files of segments before name on its timeline and
// files older than PrefetchMaxAge are removed. Failures are ignored: the
// cache is only ever an optimisation.
func TidyPrefetch(dir, name string, now time.Time, log *slog.Logger) {
	file, err := wal.Classify(name)
	if err != nil {
		return
	}
	if file.Kind == wal.KindTimelineHistory {
		if _, err := os.Stat(dir); err == nil {
			if err := os.RemoveAll(dir); err != nil && log != nil {
				log.Warn("cannot clear the prefetch cache", "dir", dir, "error", err)
			}
		}
		return
	}
	tlis, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, t := range tlis {
		if !t.IsDir() {
			continue
		}
		tdir := filepath.Join(dir, t.Name())
		entries, err := os.ReadDir(tdir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			passed := false
			if file.Kind == wal.KindSegment && t.Name() == fmt.Sprintf("%08X", uint32(file.Timeline)) {
				if s, ok := entrySegment(e.Name()); ok && before(s, file.Segment) {
					passed = true
				}
			}
			if !passed {
				info, err := e.Info()
				passed = err == nil && now.Sub(info.ModTime()) > PrefetchMaxAge
			}
			if passed {
				os.Remove(filepath.Join(tdir, e.Name()))
			}
		}
	}
}

// dropOlderTimelines removes the cache of timelines older than name's once
// name was served: recovery never goes back to an older timeline.
func dropOlderTimelines(dir, name string) {
	file, err := wal.Classify(name)
	if err != nil || file.Kind != wal.KindSegment {
		return
	}
	tlis, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, t := range tlis {
		if v, err := strconv.ParseUint(t.Name(), 16, 32); err == nil && t.IsDir() && wal.TimelineID(v) < file.Timeline {
			os.RemoveAll(filepath.Join(dir, t.Name()))
		}
	}
}

// entrySegment reads the segment a cache entry belongs to (the copy, its
// record, its busy lock or a temporary file of any of them).
func entrySegment(entry string) (wal.Segment, bool) {
	entry = strings.TrimPrefix(entry, ".")
	if len(entry) < 24 {
		return wal.Segment{}, false
	}
	s, err := wal.ParseSegmentName(entry[:24])
	return s, err == nil
}

func before(a, b wal.Segment) bool {
	return a.Log < b.Log || a.Log == b.Log && a.Seg < b.Seg
}

// NotePosition records name, just served, as recovery's position, for a
// running prefetcher to follow. It creates the cache directory: a segment
// served with prefetch on starts this recovery's cache.
func NotePosition(dir, name string) error {
	if _, err := wal.ParseSegmentName(name); err != nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Rewritten in place: a reader that catches it half-written sees no
	// valid name and looks again at its next poll.
	return os.WriteFile(filepath.Join(dir, positionFile), []byte(name+"\n"), 0o600)
}

// readPosition reads the position file; present is false when it is gone
// (the cache was cleared), ok false when it holds no valid name.
func readPosition(dir string) (s wal.Segment, present, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, positionFile))
	if err != nil {
		return wal.Segment{}, !errors.Is(err, os.ErrNotExist), false
	}
	s, err = wal.ParseSegmentName(strings.TrimSpace(string(data)))
	return s, true, err == nil
}

// PrefetchWanted reports whether starting a prefetcher after serving name
// is worth it: name is a segment, no prefetcher is running (a running one
// follows NotePosition), and one of the next count segments is not in the
// cache yet.
func PrefetchWanted(dir, name string, segSize uint32, count int) bool {
	s, err := wal.ParseSegmentName(name)
	if err != nil || count <= 0 || wal.ValidateSegmentSize(segSize) != nil {
		return false
	}
	if prefetchBusy(prefetchLockPath(dir)) {
		return false
	}
	tdir := timelineDir(dir, s.Timeline)
	for range count {
		if s, err = s.Next(segSize); err != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(tdir, s.String()+sumSuffix)); err != nil {
			return true
		}
	}
	return false
}

// ErrPrefetchBusy: another prefetcher holds the lock.
var ErrPrefetchBusy = errors.New("another prefetcher is running")

// PrefetchOptions are a prefetcher's settings.
type PrefetchOptions struct {
	Fetch FetchOptions
	// Parallel is how many segments are downloaded at once (0:
	// PrefetchParallel).
	Parallel int
	// Follow keeps the prefetcher going as recovery moves on: it reads
	// the position file (NotePosition) and keeps the count segments after
	// it cached, until the cache is cleared, recovery switches timeline,
	// or Idle passes with nothing to do. Without it, one batch.
	Follow bool
	// Idle: see Follow (0: PrefetchIdle).
	Idle time.Duration
}

// PrefetchNext downloads the count segments that follow name on its
// timeline into the cache dir, several at once, each verified by Fetch,
// with its record written beside it. It skips segments already cached and
// stops at the first one the repository does not have (the end of the
// archive for now) or at the first error. It returns how many it
// downloaded. At most one prefetcher runs at a time (ErrPrefetchBusy).
func PrefetchNext(ctx context.Context, b storage.Backend, dir, name string, segSize uint32, count int, opts FetchOptions) (int, error) {
	return Prefetch(ctx, b, dir, name, segSize, count, PrefetchOptions{Fetch: opts})
}

// Prefetch is PrefetchNext with options; with Follow it keeps going as
// recovery moves on.
func Prefetch(ctx context.Context, b storage.Backend, dir, name string, segSize uint32, count int, opts PrefetchOptions) (int, error) {
	s, err := wal.ParseSegmentName(name)
	if err != nil {
		return 0, err
	}
	if err := wal.ValidateSegmentSize(segSize); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return 0, err
	}
	unlock, err := lockPrefetch(prefetchLockPath(dir))
	if err != nil {
		return 0, err
	}
	defer unlock()
	// The timeline directory is made once, here: when a wal-fetch clears
	// the cache meanwhile, writing into it fails and the prefetcher stops.
	tdir := timelineDir(dir, s.Timeline)
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return 0, err
	}
	// Downloads see neither partials nor files hidden behind a delete
	// marker (fetch's forPrefetch): wal-fetch itself serves those, with
	// what it must log, which a cache hit would not.
	if h, ok := b.(*storage.HiddenReader); ok {
		b = h.Unwrap()
	}
	p := &prefetcher{
		b: b, dir: dir, tdir: tdir, segSize: segSize, count: count,
		parallel: opts.Parallel, follow: opts.Follow, idle: opts.Idle, fetch: opts.Fetch,
	}
	if p.parallel <= 0 {
		p.parallel = PrefetchParallel
	}
	if p.idle <= 0 {
		p.idle = PrefetchIdle
	}
	return p.run(ctx, s)
}

type prefetcher struct {
	b         storage.Backend
	dir, tdir string
	segSize   uint32
	count     int
	parallel  int
	follow    bool
	idle      time.Duration
	fetch     FetchOptions
}

type download struct {
	cancel context.CancelFunc
	passed bool // recovery went past it: cancelled, not an error
}

type downloaded struct {
	s   wal.Segment
	err error
}

// run keeps the count segments after pos cached: it starts downloads (at
// most p.parallel at once) for the window's missing segments in order and,
// when following, moves the window with the position file.
func (p *prefetcher) run(ctx context.Context, pos wal.Segment) (n int, err error) {
	ctx, cancelAll := context.WithCancel(ctx)
	inflight := map[wal.Segment]*download{}
	results := make(chan downloaded)
	defer func() {
		// Every download ends before the lock is released, so that the
		// next prefetcher never meets this one's files half-written.
		cancelAll()
		for range inflight {
			<-results
		}
	}()
	var (
		end      wal.Segment // the first segment the repository lacks
		haveEnd  bool
		firstErr error
		lastMove = time.Now()
		changed  = true // look for work only after a change, not on every poll
	)
	var tick <-chan time.Time
	if p.follow {
		t := time.NewTicker(positionPoll)
		defer t.Stop()
		tick = t.C
	}
	for {
		// Start what the window lacks, lowest first: recovery wants those
		// soonest.
		s := pos
		for i := 0; changed && i < p.count && firstErr == nil && len(inflight) < p.parallel; i++ {
			next, err := s.Next(p.segSize)
			if err != nil || haveEnd && !before(next, end) {
				break
			}
			s = next
			if inflight[s] != nil || p.cached(s) {
				continue
			}
			dctx, cancel := context.WithCancel(ctx)
			inflight[s] = &download{cancel: cancel}
			go func(s wal.Segment) {
				err := p.download(dctx, s)
				cancel()
				results <- downloaded{s, err}
			}(s)
		}
		changed = false
		if len(inflight) == 0 && (firstErr != nil || !p.follow) {
			return n, firstErr
		}
		select {
		case r := <-results:
			changed = true
			d := inflight[r.s]
			delete(inflight, r.s)
			switch {
			case r.err == nil:
				n++
				lastMove = time.Now()
				if !before(pos, r.s) { // recovery got there first
					p.remove(r.s)
				}
			case d.passed:
			case errors.Is(r.err, storage.ErrNotFound):
				if !haveEnd || before(r.s, end) {
					end, haveEnd = r.s, true
				}
			case firstErr == nil:
				firstErr = r.err
				if _, err := os.Stat(p.tdir); err != nil && p.follow {
					firstErr = nil // the cache was cleared: recovery is over
					return n, nil
				}
				for _, d := range inflight {
					d.cancel()
				}
			}
		case <-tick:
			at, present, ok := readPosition(p.dir)
			switch {
			case !present:
				return n, nil // cleared: recovery started again or ended
			case !ok:
			case at.Timeline != pos.Timeline:
				return n, nil // the next wal-fetch starts one for the new timeline
			case before(pos, at):
				pos, haveEnd, lastMove, changed = at, false, time.Now(), true
				for s, d := range inflight {
					if !before(pos, s) {
						d.passed = true
						d.cancel()
					}
				}
			}
			if len(inflight) == 0 && time.Since(lastMove) > p.idle {
				return n, nil
			}
		case <-ctx.Done():
			if p.follow {
				return n, nil // its lifetime is up: the next wal-fetch starts another
			}
			return n, ctx.Err()
		}
	}
}

// cached reports whether s's copy and record are in the cache.
func (p *prefetcher) cached(s wal.Segment) bool {
	final := filepath.Join(p.tdir, s.String())
	if _, err := os.Stat(final + sumSuffix); err != nil {
		return false
	}
	_, err := os.Stat(final)
	return err == nil
}

func (p *prefetcher) remove(s wal.Segment) {
	final := filepath.Join(p.tdir, s.String())
	os.Remove(final + sumSuffix)
	os.Remove(final)
}

// download fetches s into the cache under its busy lock: the copy first
// (complete, through Fetch's temporary file and rename), then the record
// that makes it servable, then the lock goes.
func (p *prefetcher) download(ctx context.Context, s wal.Segment) error {
	final := filepath.Join(p.tdir, s.String())
	unlock, err := markInFlight(busyPath(p.tdir, s.String()))
	if err != nil {
		return err
	}
	defer unlock()
	res, err := fetch(ctx, p.b, s.String(), final, p.fetch, true)
	if err != nil {
		return err
	}
	if err := writeSum(final+sumSuffix, res); err != nil {
		os.Remove(final)
		return err
	}
	return nil
}
