package restore

// Prefetch: after wal-fetch serves a segment, a detached helper downloads
// the next segments of the same timeline into a cache under pg_wal, and a
// later wal-fetch for one of them is a verified rename instead of a
// download.
//
// Layout, beside restore_command's %p (which is pg_wal/RECOVERYXLOG):
//
//	pg_wal/walvault/prefetch/<TLI>/<segment>         verified copy
//	pg_wal/walvault/prefetch/<TLI>/<segment>.sha256  "<sha256> <size>"
//	pg_wal/walvault/prefetch/<TLI>/.<anything>       in progress, never served
//	pg_wal/walvault/prefetch.lock                    flock: one prefetcher at a time
//	pg_wal/walvault/prefetch.log                     the prefetcher's log
//
// Rules that keep it safe:
//   - A cached file is served only when its name (timeline included) is
//     exactly the requested one and it re-hashes to the recorded sha256 and
//     size, which were checked against the repository's metadata when it
//     was downloaded. Anything else is deleted and the file is fetched from
//     the repository as if there were no cache.
//   - A file absent from the cache is never "missing": only the
//     repository's authoritative answer (Fetch) makes wal-fetch exit 1.
//   - The cache is scoped to one recovery: a request for a timeline
//     history file (PostgreSQL asks for them when recovery starts and when
//     it ends, to pick a timeline) clears it; files of segments already
//     passed, of older timelines and older than PrefetchMaxAge are removed
//     on every call.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// PrefetchLifetime bounds one prefetcher process: it exits after its batch
// or after this long, whichever comes first.
const PrefetchLifetime = 60 * time.Second

const sumSuffix = ".sha256"

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

// FetchCached is Fetch with the prefetch cache in dir in front of the
// repository. fromCache says the file was handed over from the cache. The
// cache is tidied first (see TidyPrefetch); a cached copy that does not
// verify is deleted with a warning and the file is fetched from b.
func FetchCached(ctx context.Context, b storage.Backend, name, dest, dir string, opts FetchOptions) (res FetchResult, fromCache bool, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	TidyPrefetch(dir, name, time.Now(), log)
	if res, ok := takePrefetched(dir, name, dest, log); ok {
		dropOlderTimelines(dir, name)
		return res, true, nil
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
func takePrefetched(dir, name, dest string, log *slog.Logger) (FetchResult, bool) {
	file, err := wal.Classify(name)
	if err != nil || file.Kind != wal.KindSegment {
		return FetchResult{}, false
	}
	cached := filepath.Join(timelineDir(dir, file.Timeline), name)
	want, ok := readSum(cached + sumSuffix)
	if !ok {
		return FetchResult{}, false
	}
	os.Remove(cached + sumSuffix)
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".walvault-prefetch-*")
	if err != nil {
		log.Warn("cannot use the prefetch cache", "segment", name, "error", err)
		return FetchResult{}, false
	}
	tmp.Close()
	if err := os.Rename(cached, tmp.Name()); err != nil {
		os.Remove(tmp.Name())
		return FetchResult{}, false // not there (yet): fetch it
	}
	if err := checkFile(tmp.Name(), want); err != nil {
		os.Remove(tmp.Name())
		log.Warn("prefetched file refused and deleted; fetching it from the repository", "segment", name, "error", err)
		return FetchResult{}, false
	}
	if err := os.Chmod(tmp.Name(), 0o600); err == nil {
		err = os.Rename(tmp.Name(), dest)
		if err == nil {
			return FetchResult{Key: "prefetch:" + name, RawSize: want.RawSize, StoredSize: want.RawSize, SHA256: want.SHA256}, true
		}
	}
	os.Remove(tmp.Name())
	return FetchResult{}, false
}

// readSum reads a "<sha256> <size>" record.
func readSum(path string) (FetchResult, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FetchResult{}, false
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 || len(fields[0]) != sha256.Size*2 {
		return FetchResult{}, false
	}
	size, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || size <= 0 {
		return FetchResult{}, false
	}
	return FetchResult{SHA256: fields[0], RawSize: size}, true
}

// checkFile re-hashes path: it must be want.RawSize bytes with sha256
// want.SHA256.
func checkFile(path string, want FetchResult) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, want.RawSize+1))
	if err != nil {
		return err
	}
	if n != want.RawSize {
		return fmt.Errorf("%w: prefetched copy is %d bytes, expected %d", ErrCorrupt, n, want.RawSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%w: prefetched copy has sha256 %s, expected %s", ErrCorrupt, got, want.SHA256)
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
		if v, err := strconv.ParseUint(t.Name(), 16, 32); err == nil && wal.TimelineID(v) < file.Timeline {
			os.RemoveAll(filepath.Join(dir, t.Name()))
		}
	}
}

// entrySegment reads the segment a cache entry belongs to (the copy, its
// record or a temporary file of either).
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

// PrefetchWanted reports whether starting a prefetcher after serving name
// is worth it: name is a segment, no prefetcher is running, and one of the
// next count segments is not in the cache yet.
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

// PrefetchNext downloads the count segments that follow name on its
// timeline into the cache dir, each verified by Fetch, with its sha256 and
// size recorded beside it. It skips segments already cached and stops at
// the first one the repository does not have (the end of the archive for
// now) or at the first error. It returns how many it downloaded. At most
// one runs at a time (ErrPrefetchBusy).
func PrefetchNext(ctx context.Context, b storage.Backend, dir, name string, segSize uint32, count int, opts FetchOptions) (int, error) {
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
	// the cache meanwhile, writing into it fails and the batch stops.
	tdir := timelineDir(dir, s.Timeline)
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return 0, err
	}
	b = seeHidden(b, opts.Log)
	n := 0
	for range count {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if s, err = s.Next(segSize); err != nil {
			return n, nil
		}
		final := filepath.Join(tdir, s.String())
		if _, err := os.Stat(final + sumSuffix); err == nil {
			if _, err := os.Stat(final); err == nil {
				continue
			}
		}
		staging := filepath.Join(tdir, "."+s.String()+".part")
		res, err := Fetch(ctx, b, s.String(), staging, opts)
		if errors.Is(err, storage.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := writeSum(final+sumSuffix, res); err != nil {
			os.Remove(staging)
			return n, err
		}
		if err := os.Rename(staging, final); err != nil {
			os.Remove(staging)
			os.Remove(final + sumSuffix)
			return n, err
		}
		n++
	}
	return n, nil
}

// writeSum writes the record through a temporary file and a rename.
func writeSum(path string, res FetchResult) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(res.SHA256+" "+strconv.FormatInt(res.RawSize, 10)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
