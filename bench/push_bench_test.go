package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// BenchmarkWALPushOne is the no-backlog wal-push target in one run: one
// 16 MiB segment per call, against `lz4 -1` of the same segments to a
// local directory measured in the same run, on file://, loopback S3 over
// plain HTTP and loopback S3 over TLS (the setting).
//
//	baseline=lz4-1              lz4 -1 -q -f pg_wal/SEG OUT/SEG.lz4, one process per segment
//	walvault=file|s3|s3-tls     walvault wal-push pg_wal/SEG, one process per segment (as archive_command)
//	peer=pgbackrest-s3-tls      pgbackrest archive-push of the same segments, one process each, lz4, to
//	                            a bucket of the same TLS gateway (see setupPgBackRest)
//	helper=file|s3|s3-tls       the same calls, handed to a running `walvault wal-helper` (its CPU time
//	                            per call reported as helper-cpu-ms: cpu-ms is the calls' own)
//	resident=file|s3|s3-tls     archive.PushAhead of the same segments in this one long-lived process,
//	                            with wal-push's options (identity cache, push-ahead 4) and one backend
//	                            opened once: what a resident helper (a daemon archive_command hands
//	                            segments to, or an archive_library) would spend per segment, less
//	                            the hand-over itself (one local socket round trip)
//
// The difference between walvault=X and resident=X is what a process per
// segment costs: exec and Go start-up, configuration, opening the
// repository (AWS configuration, and a new TLS connection on S3), a cold
// heap, and exit. WALVAULT_BIN picks the binary of the walvault= rows, so
// two runs compare two builds; the resident= rows always run this tree.
func BenchmarkWALPushOne(b *testing.B) {
	e := setup(b)
	tls := setupTLS(b, e)
	repos := []*repo{e.repos["file"], e.repos["s3"], tls}
	names := map[*repo]string{repos[0]: "file", repos[1]: "s3", repos[2]: "s3-tls"}

	b.Run("baseline=lz4-1", func(b *testing.B) {
		dir, segs := e.segments(b, 2*b.N)
		out := e.outDir(b)
		execLoopCPU(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(dir, "lz4", "-1", "-q", "-f", "pg_wal/"+segs[i], filepath.Join(out, segs[i]+".lz4"))}
		}, nil)
	})
	for _, r := range repos {
		b.Run("walvault="+names[r], func(b *testing.B) {
			dir, segs := e.segments(b, 2*b.N)
			e.pruneAfter(b, r)
			execLoopCPU(b, e, func(i int) []*exec.Cmd {
				return []*exec.Cmd{e.walvault(r, dir, "wal-push", "pg_wal/"+segs[i])}
			}, pushed)
		})
	}
	b.Run("peer=pgbackrest-s3-tls", func(b *testing.B) {
		p := setupPgBackRest(b, e)
		dir, segs := e.segments(b, 2*b.N)
		execLoopCPU(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{p.cmd(dir, "archive-push", filepath.Join(dir, "pg_wal", segs[i]))}
		}, nil)
	})
	for _, r := range repos {
		b.Run("helper="+names[r], func(b *testing.B) {
			dir, segs := e.segments(b, 2*b.N)
			e.pruneAfter(b, r)
			helperLoop(b, e, e.walvault(r, dir).Env, dir, func() int { return 2 * b.N }, func() {
				execLoopCPU(b, e, func(i int) []*exec.Cmd {
					return []*exec.Cmd{e.walvault(r, dir, "wal-push", "pg_wal/"+segs[i])}
				}, pushed)
			})
		})
	}
	host, _ := os.Hostname()
	for _, r := range repos {
		b.Run("resident="+names[r], func(b *testing.B) {
			be := openResident(b, r)
			dir, segs := e.segments(b, b.N+1)
			e.pruneAfter(b, r)
			o := archive.AheadOptions{
				Options: archive.Options{
					Compression:      repository.LZ4,
					Host:             host,
					Version:          "bench",
					IdentityCacheTTL: archive.DefaultIdentityCacheTTL,
				},
				Concurrency: 4,
			}
			push := func(name string) {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				defer cancel()
				res, err := archive.PushAhead(ctx, be, filepath.Join(dir, "pg_wal", name), o)
				if err != nil {
					b.Fatalf("archive.PushAhead %s to %s: %v", name, r.url, err)
				}
				if res.AlreadyArchived {
					b.Fatalf("archive.PushAhead %s: already archived: the benchmark did not upload it", name)
				}
			}
			// A helper that has been running: connection open, identity
			// cached, heap grown.
			push(segs[b.N])
			b.SetBytes(segBytes)
			b.ReportAllocs()
			settle()
			before := cpuSelf()
			b.ResetTimer()
			for i := range b.N {
				push(segs[i])
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuSelf()-before)/1e6/float64(b.N), "cpu-ms")
		})
	}
}

// execLoopCPU is execLoop that also reports cpu-ms: the user and system
// CPU time of the timed commands per iteration. Unlike seconds, it hardly
// changes with other load on the machine, and it shows what a parallel
// push spends that a single-threaded lz4 does not.
func execLoopCPU(b *testing.B, e *env, cmds func(i int) []*exec.Cmd, check func(out string) error) {
	b.Helper()
	var timed []*exec.Cmd
	execLoop(b, e, func(i int) []*exec.Cmd {
		c := cmds(i)
		if i < b.N {
			timed = append(timed, c...)
		}
		return c
	}, check)
	var cpu time.Duration
	for _, c := range timed {
		if c.ProcessState != nil {
			cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
	}
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms")
}

// cpuSelf is this process's user and system CPU time so far, in ns.
func cpuSelf() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// tlsRepo is the s3:// repository on a loopback Versity gateway over
// HTTPS, made by the first benchmark that needs it.
var tlsRepo struct {
	once sync.Once
	r    *repo
	gw   *testenv.S3Server // for a peer tool's bucket beside it
	// links are r reached through a link of each latency of latencyEnv,
	// by the link's element of a benchmark name ("rtt=40ms"); endpoints
	// are the links' https:// endpoints, for a peer tool.
	links     map[string]*repo
	endpoints map[string]string
	err       error
}

// setupTLS starts the TLS gateway (stopped after the last benchmark, like
// the shared setup's) and creates the repository with one untimed push.
func setupTLS(b *testing.B, e *env) *repo {
	b.Helper()
	tlsRepo.once.Do(func() {
		_, tlsRepo.err = shared.tb.do(func(tb testing.TB) *env {
			gw := testenv.StartVersityTLS(tb)
			const bucket = "walvault-bench-tls"
			gw.CreateBucket(tb, bucket, false)
			opts := open.Options{S3: open.S3Options{Endpoint: gw.Endpoint, Region: gw.Region, PathStyle: true, CABundle: gw.CAFile}}
			var r *repo
			withAWSEnv(gw.Env(), func() { r = e.newRepo(tb, "s3-tls", "s3://"+bucket+"/db1", gw.Env(), opts) })
			dir := tb.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "pg_wal"), 0o700); err != nil {
				tb.Fatalf("%v", err)
			}
			seg := e.real.String()
			if err := os.WriteFile(filepath.Join(dir, "pg_wal", seg), e.data, 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
			if _, out, err := e.probe(e.walvault(r, dir, "wal-push", "pg_wal/"+seg)); err != nil {
				tb.Fatalf("setup: wal-push %s to %s: %v\n%s", seg, r.url, err, out)
			}
			tlsRepo.r, tlsRepo.gw = r, gw
			tlsRepo.links, tlsRepo.endpoints = map[string]*repo{}, map[string]string{}
			for _, rtt := range latencies(tb) {
				endpoint := startTLSLink(tb, gw, rtt)
				linked := *r
				linked.name = "s3-tls/" + rttName(rtt)
				linked.env = append(gw.EnvThrough(endpoint), "WALVAULT_REPO="+r.url)
				tlsRepo.links[rttName(rtt)] = &linked
				tlsRepo.endpoints[rttName(rtt)] = endpoint
			}
			return nil
		})
	})
	if tlsRepo.err != nil {
		b.Fatalf("TLS gateway setup failed: %v", tlsRepo.err)
	}
	return tlsRepo.r
}

// openResident opens r in this process as cmd/walvault does, with r's
// credentials: the TLS gateway has keys of its own, and the SDK reads the
// credential chain when the backend is opened.
func openResident(b *testing.B, r *repo) storage.Backend {
	b.Helper()
	var be storage.Backend
	withAWSEnv(r.env, func() { be = openRepo(b, r) })
	return be
}

// withAWSEnv runs fn with the AWS_* variables of env set in this process,
// and puts the previous values back after it.
func withAWSEnv(env []string, fn func()) {
	type saved struct {
		val string
		had bool
	}
	old := map[string]saved{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "AWS_") {
			continue
		}
		if _, done := old[k]; !done {
			prev, had := os.LookupEnv(k)
			old[k] = saved{prev, had}
		}
		os.Setenv(k, v)
	}
	defer func() {
		for k, s := range old {
			if s.had {
				os.Setenv(k, s.val)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	fn()
}
