package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/wal"
)

// ---------------------------------------------------------------------------
// wal-push with a backlog of .ready files

// aheadConcurrency is wal-push's default upload-concurrency, the push-ahead
// rows' setting.
const aheadConcurrency = 8

// BenchmarkWALPushBacklog pushes a backlog of b.N segments waiting as
// .ready in pg_wal/archive_status, the way PostgreSQL's archiver works
// through it: one `walvault wal-push pg_wal/NAME` per segment, oldest first,
// and .ready renamed to .done after each success. With upload-concurrency
// aheadConcurrency (the default) a call also pushes up to that many of the
// next .ready segments in parallel, and the later calls for them only check
// their record; with 0 every call uploads its own segment alone (the serial
// case). ns/op is per segment, so the ratio of the two is the segments/s
// speed-up. lz4 -1 runs through the same loop as a baseline.
func BenchmarkWALPushBacklog(b *testing.B) {
	e := setup(b)
	b.Run("baseline=lz4-1", func(b *testing.B) {
		dir, names := e.backlog(b, b.N)
		out := e.outDir(b)
		backlogLoop(b, dir, names, func(name string) *exec.Cmd {
			return command(dir, "lz4", "-1", "-q", "-f", "pg_wal/"+name, filepath.Join(out, name+".lz4"))
		})
	})
	for _, rn := range e.s3Names {
		for _, conc := range []int{0, aheadConcurrency} {
			b.Run(fmt.Sprintf("walvault=%s/upload-concurrency=%d", rn, conc), func(b *testing.B) {
				backlogPush(b, e, e.repos[rn], conc, false)
			})
		}
		b.Run(fmt.Sprintf("helper=%s/upload-concurrency=%d", rn, aheadConcurrency), func(b *testing.B) {
			backlogPush(b, e, e.repos[rn], aheadConcurrency, true)
		})
	}
	// Over TLS through each link, beside pgBackRest's asynchronous push
	// (which speaks only HTTPS to S3).
	for _, rtt := range latencies(b) {
		link := rttName(rtt)
		b.Run(fmt.Sprintf("helper=s3-tls/%s/upload-concurrency=%d", link, aheadConcurrency), func(b *testing.B) {
			setupTLS(b, e)
			backlogPush(b, e, tlsRepo.links[link], aheadConcurrency, true)
		})
		b.Run("peer=pgbackrest-s3-tls/"+link, func(b *testing.B) {
			backlogPeer(b, e, setupPgBackRest(b, e).async[link])
		})
	}
}

// backlogPeer is one run of BenchmarkWALPushBacklog/peer=...: pgBackRest's
// asynchronous archive-push of a backlog, a call per segment as the
// archiver makes them. pg1-path is the backlog's directory: the push reads
// its pg_wal/archive_status (and pgBackRestData gives it a pg_control).
func backlogPeer(b *testing.B, e *env, t pgBackRestTool) {
	dir, names := e.backlog(b, b.N)
	e.pgBackRestData(b, dir)
	// Spool and locks of this run's own: its background process may
	// outlive the last call by a moment, and must not serve the next run.
	spool, err := os.MkdirTemp(e.disk, "pgbackrest-spool-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(spool)
	backlogLoop(b, dir, names, func(name string) *exec.Cmd {
		return t.cmd(dir, "--pg1-path="+dir, "--spool-path="+spool, "--lock-path="+spool, "archive-push", filepath.Join(dir, "pg_wal", name))
	})
	// Every segment must be in pgBackRest's repository.
	stored := map[string]bool{}
	client := tlsRepo.gw.Client(b)
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(pgBackRestBucket), Prefix: aws.String(pgBackRestPath + "/archive/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatalf("list pgBackRest's archive: %v", err)
		}
		for _, o := range page.Contents {
			name, _, _ := strings.Cut(path.Base(aws.ToString(o.Key)), "-")
			stored[name] = true
		}
	}
	for _, name := range names {
		if !stored[name] {
			b.Fatalf("%s is not in pgBackRest's archive after the backlog was pushed", name)
		}
	}
}

// backlogPush is one run of BenchmarkWALPushBacklog/walvault=...: wal-push
// of a backlog into r with the given upload concurrency, each call handed
// to a wal-helper when helper is set.
func backlogPush(b *testing.B, e *env, r *repo, conc int, helper bool) {
	dir, names := e.backlog(b, b.N)
	e.pruneAfter(b, r)
	call := func(name string) *exec.Cmd {
		cmd := e.walvault(r, dir, "wal-push", "pg_wal/"+name)
		cmd.Env = append(cmd.Env, fmt.Sprintf("WALVAULT_UPLOAD_CONCURRENCY=%d", conc))
		return cmd
	}
	loop := func() { backlogLoop(b, dir, names, call) }
	if helper {
		helperLoop(b, e, call(names[0]).Env, dir, func() int { return len(names) }, loop)
	} else {
		loop()
	}
	// Every segment must be in the repository, whoever pushed it.
	for _, name := range names {
		seg, err := wal.ParseSegmentName(name)
		if err != nil {
			b.Fatal(err)
		}
		key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, repository.LZ4)
		if _, err := r.backend.Stat(context.Background(), key); err != nil {
			b.Fatalf("%s is not in %s after the backlog was pushed: %v", name, r.url, err)
		}
	}
}

// backlog is segments with an archive_status/NAME.ready for each.
func (e *env) backlog(b *testing.B, n int) (string, []string) {
	b.Helper()
	dir, names := e.segments(b, n)
	status := filepath.Join(dir, "pg_wal", "archive_status")
	if err := os.Mkdir(status, 0o700); err != nil {
		b.Fatal(err)
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(status, name+".ready"), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// A backlog is WAL that waited: the files are older than the margin
	// after which a pushed-ahead file is trusted on its inode and change
	// time, as they are when archiving has fallen behind.
	time.Sleep(archive.SettledMargin)
	return dir, names
}

// backlogLoop times cmd(name) for every name in order, renaming its .ready
// to .done after each success as PostgreSQL's archiver does.
func backlogLoop(b *testing.B, dir string, names []string, cmd func(name string) *exec.Cmd) {
	b.Helper()
	status := filepath.Join(dir, "pg_wal", "archive_status")
	b.SetBytes(segBytes)
	settle()
	b.ResetTimer()
	busy, self := hostBusy(), selfCPU()
	for _, name := range names {
		c := cmd(name)
		if _, out, err := runCmd(c); err != nil {
			b.Fatalf("%v (in %s): %v\n%s", c.Args, c.Dir, err, out)
		}
		if err := os.Rename(filepath.Join(status, name+".ready"), filepath.Join(status, name+".done")); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportHostCPU(b, busy, len(names))
	reportLinkCPU(b, self, len(names))
}

// reportHostCPU reports the machine's busy CPU time per segment since busy
// (the S3 gateway and any other load included) as host-cpu-ms.
func reportHostCPU(b *testing.B, busy time.Duration, n int) {
	if now := hostBusy(); busy > 0 && now > busy && n > 0 {
		b.ReportMetric(float64(now-busy)/float64(time.Millisecond)/float64(n), "host-cpu-ms")
	}
}

// reportLinkCPU reports, for a run through a link, this process's CPU time
// per segment since self as link-cpu-ms: the proxy's work, which takes
// its share of the same cores.
func reportLinkCPU(b *testing.B, self time.Duration, n int) {
	if strings.Contains(b.Name(), "/rtt=") && n > 0 {
		b.ReportMetric(float64(selfCPU()-self)/float64(time.Millisecond)/float64(n), "link-cpu-ms")
	}
}

// ---------------------------------------------------------------------------
// wal-fetch during recovery

// BenchmarkWALFetchRecovery fetches b.N consecutive segments the way
// PostgreSQL's startup process does during archive recovery: one
// restore_command process per segment, `walvault wal-fetch NAME
// pg_wal/RECOVERYXLOG` run in the data directory, RECOVERYXLOG removed
// before each call, and the fetched file moved aside after it (here
// renamed to pg_wal/NAME, so every result can be checked afterwards). The
// calls come back to back, with no replay time in between (the worst case
// for prefetch, which then has only the other calls' time to work in), or
// with replayGap between them, untimed (/replay=50ms), as when PostgreSQL
// replays each segment before asking for the next. prefetch=8 lets every
// call start the background prefetcher; prefetch=0 downloads every segment
// in the call. Host CPU time is not stopped with the timer:
// host-cpu-ms counts the prefetcher's work in the gaps too. The baseline is `cp` of the same
// segments from a local directory.
func BenchmarkWALFetchRecovery(b *testing.B) {
	e := setup(b)
	b.Run("baseline=cp", func(b *testing.B) {
		src, names := e.segments(b, b.N)
		recoveryLoop(b, e, names, func(pgdata, name string) *exec.Cmd {
			return command(pgdata, "cp", filepath.Join(src, "pg_wal", name), "pg_wal/RECOVERYXLOG")
		}, filepath.Join(src, "pg_wal"), 0, false, nil)
	})
	type variant struct {
		repo     string
		prefetch int
		replay   time.Duration
		helper   bool // every call handed to a wal-helper
	}
	variants := []variant{{"s3", 0, 0, false}, {"s3", 8, 0, false}, {"s3", 0, replayGap, false}, {"s3", 8, replayGap, false},
		{"s3", 8, 0, true}, {"s3", 8, replayGap, true},
		// Over TLS, beside the peer's row below.
		{"s3-tls", 8, 0, false}, {"s3-tls", 8, 0, true}, {"s3-tls", 8, replayGap, false}, {"s3-tls", 8, replayGap, true}}
	// Through a link: back to back only, the worst case for prefetch.
	for _, rn := range e.s3Names[1:] {
		variants = append(variants, variant{rn, 0, 0, false}, variant{rn, 8, 0, false})
	}
	for _, v := range variants {
		n := v.prefetch
		name := fmt.Sprintf("walvault=%s/prefetch=%d", v.repo, n)
		if v.helper {
			name = fmt.Sprintf("helper=%s/prefetch=%d", v.repo, n)
		}
		if v.replay > 0 {
			name += fmt.Sprintf("/replay=%v", v.replay)
		}
		b.Run(name, func(b *testing.B) {
			r := e.repos[v.repo]
			if v.repo == "s3-tls" {
				r = setupTLS(b, e)
			}
			src, names := e.segments(b, b.N)
			e.pruneAfter(b, r)
			be := openResident(b, r) // the TLS gateway has keys of its own
			host, _ := os.Hostname()
			var g errgroup.Group
			g.SetLimit(4)
			for _, name := range names {
				g.Go(func() error {
					ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
					defer cancel()
					_, err := archive.Push(ctx, be, filepath.Join(src, "pg_wal", name), archive.Options{Compression: repository.LZ4, Host: host, Version: "bench"})
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatalf("setup: pushing the segments to fetch: %v", err)
			}
			callEnv := append(e.walvault(r, "").Env, fmt.Sprintf("WALVAULT_PREFETCH=%d", n))
			var helperEnv []string
			if v.helper {
				helperEnv = callEnv
			}
			recoveryLoop(b, e, names, func(pgdata, name string) *exec.Cmd {
				cmd := e.walvault(r, pgdata, "wal-fetch", name, "pg_wal/RECOVERYXLOG")
				cmd.Env = callEnv
				return cmd
			}, filepath.Join(src, "pg_wal"), v.replay, n > 0, helperEnv)
		})
	}
	// pgBackRest's asynchronous archive-get: a process of its own keeps a
	// queue of the segments after the one asked for (archive-get-queue-max,
	// 128 MiB at its default: 8 segments, as prefetch=8), process-max of
	// them downloading at once (4, as walvault's prefetcher).
	for _, replay := range []time.Duration{0, replayGap} {
		name := "peer=pgbackrest-s3-tls/async"
		if replay > 0 {
			name += fmt.Sprintf("/replay=%v", replay)
		}
		b.Run(name, func(b *testing.B) { pgBackRestRecovery(b, e, replay) })
	}
}

// pgBackRestRecovery is BenchmarkWALFetchRecovery's peer row: b.N
// segments pushed with pgbackrest archive-push (untimed), then fetched
// with its asynchronous archive-get.
func pgBackRestRecovery(b *testing.B, e *env, replay time.Duration) {
	p := setupPgBackRest(b, e)
	src, names := e.segments(b, b.N)
	var g errgroup.Group
	g.SetLimit(4)
	for _, name := range names {
		g.Go(func() error { return p.archivePush(filepath.Join(src, "pg_wal", name)) })
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("setup: %v", err)
	}
	spool := e.outDir(b)
	recoveryLoop(b, e, names, func(pgdata, name string) *exec.Cmd {
		return p.cmd(pgdata, "--pg1-path="+pgdata, "--archive-async", "--spool-path="+spool, "--process-max=4",
			"archive-get", name, filepath.Join(pgdata, "pg_wal", "RECOVERYXLOG"))
	}, filepath.Join(src, "pg_wal"), replay, false, nil)
	waitPgBackRestAsync(b)
}

// waitPgBackRestAsync waits (untimed) for pgBackRest's asynchronous
// archive-get process to end, so that the next run does not find its lock
// taken.
func waitPgBackRestAsync(b *testing.B) {
	deadline := time.Now().Add(time.Minute)
	for pgBackRestAsyncRunning() {
		if time.Now().After(deadline) {
			b.Fatalf("pgBackRest's asynchronous archive-get still runs after a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgBackRestAsyncRunning reports whether a process's command line names
// pgBackRest's asynchronous archive-get (it runs as "archive-get:async").
func pgBackRestAsyncRunning() bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if data, err := os.ReadFile(c); err == nil && bytes.Contains(data, []byte("archive-get:async")) {
			return true
		}
	}
	return false
}

// replayGap stands for PostgreSQL replaying a segment between two
// restore_command calls (untimed): a pgbench segment takes tens of
// milliseconds to replay here. Only the calls themselves are timed.
const replayGap = 50 * time.Millisecond

// recoveryLoop times cmd(pgdata, name) for each name in a fresh data
// directory on disk, with the timer stopped for replay between calls, then checks every fetched file against srcWAL/NAME and
// waits for a background prefetcher to finish (untimed). With prefetching,
// at least one call must have been served from the prefetch cache. With
// helperEnv, a wal-helper with that environment serves the data directory
// and must have run every call.
func recoveryLoop(b *testing.B, e *env, names []string, cmd func(pgdata, name string) *exec.Cmd, srcWAL string, replay time.Duration, prefetching bool, helperEnv []string) {
	b.Helper()
	pgdata := e.outDir(b)
	pgwal := filepath.Join(pgdata, "pg_wal")
	if err := os.Mkdir(pgwal, 0o700); err != nil {
		b.Fatal(err)
	}
	// wal-fetch prefetches only into a data directory (restore.Recovering:
	// pg_wal beside PG_VERSION).
	if err := os.WriteFile(filepath.Join(pgdata, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	e.pgBackRestData(b, pgdata) // the peer's pg1-path: global/pg_control
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	var helper *walHelper
	if helperEnv != nil {
		helper = startWALHelper(b, e.bin, pgdata, helperEnv)
	}
	b.SetBytes(segBytes)
	settle()
	b.ResetTimer()
	busy, self := hostBusy(), selfCPU()
	hits := 0
	for _, name := range names {
		if err := os.Remove(dest); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		c := cmd(pgdata, name)
		_, out, err := runCmd(c)
		if err != nil {
			b.Fatalf("%v (in %s): %v\n%s", c.Args, c.Dir, err, out)
		}
		if strings.Contains(out, "restored from prefetch") {
			hits++
		}
		if err := os.Rename(dest, filepath.Join(pgwal, name)); err != nil {
			b.Fatal(err)
		}
		if replay > 0 {
			b.StopTimer()
			time.Sleep(replay)
			b.StartTimer()
		}
	}
	b.StopTimer()
	waitPrefetcher(b, restore.PrefetchDir(dest))
	reportHostCPU(b, busy, len(names)) // the prefetcher's leftover work included
	reportLinkCPU(b, self, len(names))
	b.ReportMetric(100*float64(hits)/float64(len(names)), "%from-prefetch")
	if helper != nil {
		helper.checkRan(b, len(names))
	}
	if prefetching && hits == 0 && len(names) > 1 {
		b.Fatalf("prefetch was on, yet none of %d calls was served from the prefetch cache", len(names))
	}
	for _, name := range names {
		got, err1 := os.ReadFile(filepath.Join(pgwal, name))
		want, err2 := os.ReadFile(filepath.Join(srcWAL, name))
		if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
			b.Fatalf("fetched %s differs from the pushed segment (%v, %v)", name, err1, err2)
		}
	}
}

// waitPrefetcher waits until no prefetcher holds the lock beside the
// prefetch directory dir (at most restore.PrefetchLifetime), so none runs
// into the next benchmark.
func waitPrefetcher(b *testing.B, dir string) {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(dir), "prefetch.lock"), os.O_RDWR, 0)
	if err != nil {
		return // no prefetcher ever ran
	}
	defer f.Close()
	deadline := time.Now().Add(restore.PrefetchLifetime + 5*time.Second)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			b.Errorf("a prefetcher still holds %s after %v", f.Name(), restore.PrefetchLifetime)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
