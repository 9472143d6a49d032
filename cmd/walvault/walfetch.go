package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
)

// fetchMemoryLimit is the Go heap's soft limit in a wal-fetch process: a
// fetch holds a few of a segment's 1 MiB blocks at once (read, decoded,
// hashed), and the download's buffers.
const fetchMemoryLimit = 64 << 20

// walFetchOptions are the settings wal-fetch reads.
type walFetchOptions struct {
	Config
	totalTimeout
	decryptSettings
	helperSetting
	Compression repository.Setting
	Prefetch    int // segments downloaded ahead (0: off)
	// DrillScratch turns the drill guard on (restore.DrillGuard): walvault
	// drill sets it on its server's restore_command.
	DrillScratch string
	// TablespaceGuard turns the restored server's tablespace guard on
	// (restore.RestoreGuard): walvault restore sets it on restore_command.
	TablespaceGuard bool
	// AcceptGap answers "missing" for a segment missing while later ones
	// are archived (restore --accept-gap writes it).
	AcceptGap bool
}

func (o *walFetchOptions) bind(b *binder) {
	bindCompression(b, &o.Compression)
	o.helperSetting.bind(b)
	o.decryptSettings.bind(b)
	b.add("prefetch", intIn("prefetch", &o.Prefetch, 0, 64))
	bindFetchTimeout(b, &o.Timeout, "deadline for the whole fetch, retries included: storage errors are retried until it, then the fetch exits 200 and recovery stops; long, so a storage outage shorter than it does not end a recovery")
}

func walFetchCommand() *cli.Command {
	var opts walFetchOptions
	return &cli.Command{
		Name:      "wal-fetch",
		Usage:     "restore one WAL file from the archive (restore_command)",
		ArgsUsage: "NAME DEST",
		Description: `Use it as PostgreSQL's restore_command:

   restore_command = 'GOTRACEBACK=crash walvault wal-fetch %f %p'

(GOTRACEBACK=crash: a Go runtime that fails as the process starts dies of
SIGABRT, which stops recovery, rather than exiting 2, "not in the archive",
which would end it; once running, wal-fetch sets it itself.)

It downloads NAME (%f), decompresses it, checks its size and sha256, and
writes it to DEST (%p) through a temporary file and a rename, so DEST is never
partial.

While PostgreSQL recovers, DEST is in the data directory's pg_wal (a directory
named pg_wal next to PG_VERSION); only then does wal-fetch download the next
--prefetch segments ahead into pg_wal/walvault/prefetch. Run by hand to any
other place, it fetches the one file and writes nothing else.

Exit codes, as PostgreSQL reads them:
   0    the file was restored
   1    the file is not in the archive: recovery moves on (this is how
        PostgreSQL learns it has replayed everything archived). A segment
        missing while later ones of its timeline are archived is not
        answered so (it would end recovery there and leave the later WAL
        out): it is asked for again until --timeout, then the fetch exits
        200, unless --accept-gap; on a standby it exits 1 at once
   200  no authoritative answer: the repository is unreachable, the object is
        corrupt, or the configuration is wrong. PostgreSQL stops recovery on
        any status above 125 rather than ending it early at the wrong point;
        fix the cause and start the server again to resume.

With --drill-scratch DIR, as walvault drill writes it, every segment is
checked before PostgreSQL may read it: one holding a record that creates or
drops a tablespace outside DIR, the drill's scratch directory, is refused
(exit 200), since replaying it would make the drill's server write at that
path, on the database host into production's own tablespace. With
--tablespace-guard, as walvault restore writes it, one that creates a
tablespace whose location holds another cluster's directory is refused (exit
200) for the same reason: no --tablespace-mapping moves a tablespace that
recovery creates.

Transient storage errors (refused or reset connections, timeouts, 5xx,
throttling) are retried with backoff until --timeout (default 10m), and only
then does wal-fetch exit 200. The default is long because failing is
expensive here: PostgreSQL does not retry, it stops recovery, so a storage
outage of a minute would end a recovery that ran for hours. It is still
finite: a repository that stays unreachable must be reported, not waited on
forever. wal-push, which PostgreSQL retries by itself, keeps a 2m default.`,
		Flags: settingFlags(&opts,
			&cli.BoolFlag{Name: "accept-gap", Usage: "answer missing (exit 1) for a segment missing while later ones of its timeline are archived, ending recovery at the gap (walvault restore --accept-gap writes it); without it such a segment is asked for again until --timeout, then the fetch exits 200", Destination: &opts.AcceptGap},
			&cli.StringFlag{Name: "drill-scratch", Usage: "a restore drill's scratch directory: refuse (exit 200) a segment that creates or drops a tablespace outside it (walvault drill sets it)", Destination: &opts.DrillScratch},
			&cli.BoolFlag{Name: "tablespace-guard", Usage: "refuse (exit 200) a segment that creates a tablespace whose location holds another cluster's tablespace directory (walvault restore sets it)", Destination: &opts.TablespaceGuard},
		),
		Action: func(c *cli.Context) error { return walFetch(c, &opts) },
	}
}

func walFetch(c *cli.Context, opts *walFetchOptions) error {
	if c.NArg() != 2 {
		return usagef("wal-fetch takes two arguments, the file name and the destination path (restore_command = 'walvault wal-fetch %%f %%p')")
	}
	start := time.Now()
	if helperOf(c) == nil {
		limitCallMemory(fetchMemoryLimit)
	}
	name, dest := c.Args().Get(0), c.Args().Get(1)
	// The prefetch cache only serves recovery (DEST in a data directory's
	// pg_wal): a fetch by hand elsewhere writes DEST and nothing else.
	var dir string
	var res restore.FetchResult
	var hit bool
	var refused error
	if restore.Recovering(dest) {
		// The prefetch cache comes first, before the configuration and the
		// repository: a hit needs neither (its record was checked against
		// the repository when it was downloaded), so it costs a rename and
		// a hash check. Whatever the prefetch setting: a cache left from
		// this recovery is still right, and tidying it keeps it scoped.
		dir = restore.PrefetchDir(dest)
		res, hit, refused = restore.TakePrefetched(dir, name, dest)
	}
	if hit {
		if err := guardDrill(opts, name, dest, nil); err != nil {
			return err
		}
		servedFromCache(c, opts, dir, name, res, start)
		return nil
	}
	err := inSession(c, opts, func(s *session) error {
		log := s.log
		defer startAutoHelper(c, opts.AutoHelper, opts.Config, log)
		if refused != nil {
			log.Warn("prefetched file refused and deleted; fetching it from the repository", "segment", name, "error", refused)
		}
		opts.warnMode(log)
		fetch := restore.FetchOptions{Compression: opts.Compression.Compression, Identities: opts.Identities, Log: log, PrefetchWait: min(restore.PrefetchWait, opts.Timeout/2), AcceptGap: opts.AcceptGap}
		// A standby asks again by itself, after trying to stream.
		res, fromCache, err := fetchRidingOut(s.ctx, s.b, name, dest, dir, fetch, !restore.InStandby(dest))
		if errors.Is(err, restore.ErrCorrupt) {
			return fmt.Errorf("%w; what to do: find another copy of %s (a standby's or the old primary's pg_wal, another repository), delete the damaged object and wal-push that copy in its place (walvault never overwrites one), then start the server again; or restore a backup taken after it. walvault verify --full lists every damaged object", err, name)
		}
		if err != nil {
			return err
		}
		if err := guardDrill(opts, name, dest, log); err != nil {
			return err
		}
		if fromCache {
			log.Info("restored from prefetch", "segment", name, "bytes", res.RawSize, "elapsed", time.Since(start).Round(time.Millisecond))
		} else {
			log.Info("restored", "segment", name, "key", res.Key, "bytes", res.RawSize, "ratio", ratio(res.StoredSize, res.RawSize), "elapsed", time.Since(start).Round(time.Millisecond))
		}
		if dir != "" {
			keepPrefetching(c, opts.Prefetch, log, dir, name, res.RawSize)
		}
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, restore.ErrDrillGuard) && !errors.Is(err, restore.ErrTablespaceGuard) && restore.InStandby(dest) {
		return standbyFailure{err}
	}
	return err
}

// guardDrill runs the tablespace guards on the segment just written to
// dest, when --tablespace-guard or --drill-scratch asks for one,
// whichever way the segment came (the
// repository, the prefetch cache, a partial). A refusal has removed dest
// and exits 200, so PostgreSQL stops recovery before the segment. log may
// be nil (a cache hit logs later, or not at all).
func guardDrill(opts *walFetchOptions, name, dest string, log *slog.Logger) error {
	if opts.TablespaceGuard {
		allowed, err := restore.RestoreGuard{}.Check(name, dest)
		if err != nil {
			return err
		}
		if log != nil {
			for _, r := range allowed {
				log.Info("tablespace guard let a tablespace record through: its location holds no other cluster's tablespace directory", "segment", name, "record", r.String())
			}
		}
	}
	if opts.DrillScratch == "" {
		return nil
	}
	allowed, err := restore.DrillGuard{Scratch: opts.DrillScratch}.Check(name, dest)
	if err != nil {
		return err
	}
	if log != nil {
		for _, r := range allowed {
			log.Info("drill guard let a tablespace record through: it stays inside the scratch directory", "segment", name, "record", r.String())
		}
	}
	return nil
}

// gapWarnEvery spaces the warnings of a gap ridden out.
const gapWarnEvery = time.Minute

// fetchRidingOut is restore.FetchCached, run again while the download
// breaks mid-body (a reset connection, a timeout: storage.StreamError) and
// the deadline leaves time. The retry decorator retries opening an object,
// and so rides out an outage at the start of a fetch; one that begins
// during the download must not end recovery either. A failed fetch writes
// nothing to dest, and corrupt bytes (a decoder or checksum error) are not
// a stream error, so they are never fetched again. dir "" means no
// prefetch cache. With rideOutGap, a segment missing while later ones are
// archived (restore.GapError) is asked for again too: a storage may not
// show an object for a moment, a push ahead may store a later segment
// first.
func fetchRidingOut(ctx context.Context, b storage.Backend, name, dest, dir string, opts restore.FetchOptions, rideOutGap bool) (restore.FetchResult, bool, error) {
	policy := storage.DefaultRetryPolicy
	delay := policy.BaseDelay
	var gapWarned time.Time // a gap is asked about every few seconds for up to --timeout: warned once a minute
	for attempt := 1; ; attempt++ {
		var res restore.FetchResult
		var fromCache bool
		var err error
		if dir == "" {
			res, err = restore.Fetch(ctx, b, name, dest, opts)
		} else {
			res, fromCache, err = restore.FetchCached(ctx, b, name, dest, dir, opts)
		}
		var gap *restore.GapError
		isGap := rideOutGap && errors.As(err, &gap)
		if err == nil || storage.StreamError(err) == nil && !isGap {
			return res, fromCache, err
		}
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) < delay+policy.MinAttemptTime || ctx.Err() != nil {
			// Out of time, or stopped (SIGTERM): no "fetching again".
			return res, fromCache, err
		}
		switch {
		case opts.Log == nil:
		case isGap && time.Since(gapWarned) >= gapWarnEvery:
			gapWarned = time.Now()
			opts.Log.Warn("not served, though the archive says it is there; asking again", "file", name, "why", gap.Error(), "attempt", attempt, "delay", delay)
		case isGap:
			opts.Log.Debug("not served, though the archive says it is there; asking again", "file", name, "attempt", attempt, "delay", delay)
		default:
			opts.Log.Warn("download broke; fetching again", "segment", name, "attempt", attempt, "delay", delay, "error", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fromCache, err
		case <-t.C:
		}
		delay = min(2*delay, policy.MaxDelay)
	}
}

// servedFromCache finishes a hit: the configuration is read only now, for
// the log line and the prefetcher, and the repository is not opened (the
// one exception to startSession). The segment is already in place, so
// nothing here may fail the call.
func servedFromCache(c *cli.Context, opts *walFetchOptions, dir, name string, res restore.FetchResult, start time.Time) {
	if err := resolve(c, opts); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "walvault: restored %s from the prefetch cache, but the configuration is invalid, so no more segments are prefetched: %v\n", name, err)
		return
	}
	noteLogFormat(c, opts.Config)
	log := newLogger(c.App.ErrWriter, opts.Config)
	log.Info("restored from prefetch", "segment", name, "bytes", res.RawSize, "elapsed", time.Since(start).Round(time.Millisecond))
	keepPrefetching(c, opts.Prefetch, log, dir, name, res.RawSize)
	startAutoHelper(c, opts.AutoHelper, opts.Config, log)
}

// keepPrefetching tells a running prefetcher where recovery is, or starts
// one. A segment's size is the cluster's segment size; history files and
// partial segments start no prefetch.
func keepPrefetching(c *cli.Context, count int, log *slog.Logger, dir, name string, segSize int64) {
	if count == 0 || segSize <= 0 || segSize > 1<<30 {
		return
	}
	count = prefetchCount(count, segSize)
	// %p is relative to the data directory; the prefetcher gets an
	// absolute path.
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = restore.NotePosition(dir, name)
	}
	if err != nil {
		log.Warn("cannot note the recovery position for the WAL prefetcher; recovery goes on without it", "error", err)
		return
	}
	if restore.PrefetchWanted(dir, name, uint32(segSize), count) {
		if err := startPrefetcher(c, dir, name, uint32(segSize), count); err != nil {
			log.Warn("cannot start the WAL prefetcher; recovery goes on without it", "error", err)
		}
	}
}

// prefetchMaxBytes bounds what the prefetcher keeps in pg_wal: the
// segments it downloaded ahead sit there whole, however large a segment.
const prefetchMaxBytes = 256 << 20

// prefetchCount is how many segments of segSize bytes to keep ahead for
// the prefetch setting count: at most prefetchMaxBytes of them, at least
// one (8 of 16 MiB, 4 of 64 MiB, 1 of 1 GiB).
func prefetchCount(count int, segSize int64) int {
	return max(1, min(count, int(prefetchMaxBytes/segSize)))
}

// startPrefetcher re-runs this binary as the hidden wal-prefetch command,
// detached, with the settings given on this command line that wal-prefetch
// reads (the environment is inherited).
func startPrefetcher(c *cli.Context, dir, name string, segSize uint32, count int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"wal-prefetch"}, forwardedSettings(c, &walPrefetchOptions{})...)
	args = append(args, "--dir="+dir, "--segment-size="+strconv.FormatUint(uint64(segSize), 10), "--count="+strconv.Itoa(count), name)
	return restore.StartDetached(exe, args, restore.PrefetchLogPath(dir))
}

// walPrefetchOptions are the settings and flags of wal-prefetch.
type walPrefetchOptions struct {
	Config
	decryptSettings
	Compression repository.Setting
	Dir         string
	SegmentSize uint
	Count       int
}

func (o *walPrefetchOptions) bind(b *binder) {
	bindCompression(b, &o.Compression)
	o.decryptSettings.bind(b)
}

// deadline: the prefetcher lives at most this long.
func (o *walPrefetchOptions) deadline() time.Duration { return restore.PrefetchLifetime }

// walPrefetchCommand is started by wal-fetch, never by hand: it downloads
// the segments after NAME into the prefetch cache, several at once, keeps
// doing so as wal-fetch notes recovery's position, and exits when recovery
// ends or stops asking for a while.
func walPrefetchCommand() *cli.Command {
	var opts walPrefetchOptions
	return &cli.Command{
		Name:      "wal-prefetch",
		Hidden:    true,
		Usage:     "download the WAL segments after NAME into wal-fetch's prefetch cache (started by wal-fetch)",
		ArgsUsage: "NAME",
		Flags: settingFlags(&opts,
			&cli.StringFlag{Name: "dir", Usage: "the prefetch cache (required)", Destination: &opts.Dir},
			&cli.UintFlag{Name: "segment-size", Usage: "the cluster's WAL segment size (required)", Destination: &opts.SegmentSize},
			&cli.IntFlag{Name: "count", Usage: "segments to keep ahead (required)", Destination: &opts.Count},
		),
		Action: repoAction(&opts, walPrefetch),
	}
}

func (o *walPrefetchOptions) precheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("wal-prefetch takes one argument, the segment just served")
	}
	if o.Dir == "" || o.SegmentSize == 0 || o.Count <= 0 {
		return usagef("wal-prefetch needs --dir, --segment-size and --count (wal-fetch starts it with them)")
	}
	return nil
}

func walPrefetch(c *cli.Context, opts *walPrefetchOptions, s *session) error {
	log := s.log
	start := time.Now()
	name := c.Args().Get(0)
	n, err := restore.Prefetch(s.ctx, s.b, opts.Dir, name, uint32(opts.SegmentSize), opts.Count,
		restore.PrefetchOptions{Fetch: restore.FetchOptions{Compression: opts.Compression.Compression, Identities: opts.Identities, Log: log}, Follow: true})
	if errors.Is(err, restore.ErrPrefetchBusy) {
		return nil
	}
	log.Info("prefetched", "after", name, "segments", n, "elapsed", time.Since(start).Round(time.Millisecond))
	return err
}
