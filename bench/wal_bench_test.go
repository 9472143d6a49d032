package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
	"github.com/walvault/walvault/wal"
)

// segBytes is what every benchmark moves per operation: one WAL segment.
const segBytes = 16 << 20

// opTimeout bounds one in-process push or fetch, like walvault's --timeout.
const opTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	code := m.Run()
	// The servers and directories of the shared setup live across all
	// benchmarks; they go when the last one has run.
	shared.tb.runCleanups()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Shared setup

// shared is the setup every benchmark uses, made by the first one that runs.
var shared struct {
	once sync.Once
	tb   suiteTB
	env  *env
	err  error
}

// env is what the benchmarks work with.
type env struct {
	bin     string      // walvault binary
	maxrss  string      // the bench/internal/maxrss helper
	segSize uint32      // 16 MiB
	real    wal.Segment // name of the real segment taken from pg_wal
	data    []byte      // its bytes
	noise   []byte      // its first page header followed by random bytes: lz4 cannot shrink it
	lz4Body []byte      // data in walvault's lz4 encoding (for the Put stages)
	// pgControl is global/pg_control of the cluster that wrote real: a
	// peer tool checks segments against it (see setupPgBackRest).
	pgControl []byte

	spool string // root for source segments (tmpfs when there is one)
	disk  string // root for outputs on disk: repositories, baseline outputs, fetched files
	plain string // disk copy of the real segment (fetch baseline)
	lz4   string // lz4 -1 of it (fetch baseline)

	repos map[string]*repo // "file", "s3", and "s3/rtt=D" for each latency of latencyEnv
	// s3Names are the S3 repositories: "s3" on loopback, then one per
	// latency of latencyEnv, the same bucket reached through a link.
	s3Names []string

	mu   sync.Mutex
	next wal.Segment // the next fresh segment name
}

// repo is one repository under benchmark.
type repo struct {
	name    string
	url     string
	env     []string        // environment of a walvault process: WALVAULT_REPO, AWS_*, ...
	opts    open.Options    // for opening it in this process
	backend storage.Backend // for setup and pruning
}

// setup returns the shared environment, making it on first use. A failed
// setup fails every benchmark that needs it, with the same message.
func setup(b *testing.B) *env {
	b.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.env, shared.err = shared.tb.do(newEnv)
		if shared.err == nil {
			shared.tb.Logf("ready in %v", time.Since(start).Round(time.Second))
		}
	})
	if shared.err != nil {
		b.Fatalf("benchmark setup failed: %v", shared.err)
	}
	return shared.env
}

func newEnv(tb testing.TB) *env {
	e := &env{bin: testenv.BuildWalvault(tb), repos: map[string]*repo{}}
	e.maxrss = buildMaxRSS(tb)
	for _, prog := range []string{"cp", "lz4", "sync"} {
		if _, err := exec.LookPath(prog); err != nil {
			tb.Fatalf("%s is not on PATH (Debian: apt-get install -y coreutils lz4): %v", prog, err)
		}
	}
	e.real, e.data, e.segSize, e.pgControl = realSegment(tb)
	e.noise = bytes.Clone(e.data)
	rng := rand.NewChaCha8([32]byte{'w', 'a', 'l', 'v', 'a', 'u', 'l', 't'})
	rng.Read(e.noise[wal.HeaderSize:])
	next, err := e.real.Next(e.segSize)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	e.next = next

	e.disk = tb.TempDir()
	e.spool = e.disk
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "walvault-bench-")
		if err == nil {
			tb.Cleanup(func() { os.RemoveAll(dir) })
			e.spool = dir
		}
	}
	e.plain = filepath.Join(e.disk, e.real.String())
	if err := os.WriteFile(e.plain, e.data, 0o600); err != nil {
		tb.Fatalf("%v", err)
	}
	e.lz4 = e.plain + ".lz4"
	if out, err := exec.Command("lz4", "-1", "-q", "-f", e.plain, e.lz4).CombinedOutput(); err != nil {
		tb.Fatalf("lz4 -1 %s: %v\n%s", e.plain, err, out)
	}
	var zbuf bytes.Buffer
	zw, err := repository.LZ4.NewWriter(&zbuf)
	if err == nil {
		_, err = zw.Write(e.data)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		tb.Fatalf("lz4 in process: %v", err)
	}
	e.lz4Body = zbuf.Bytes()

	// file:// on disk, like an archive directory would be.
	dir := filepath.Join(e.disk, "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatalf("%v", err)
	}
	e.repos["file"] = e.newRepo(tb, "file", "file://"+dir, nil, open.Options{})

	// s3:// on a loopback Versity gateway, plain http.
	gw := testenv.StartVersity(tb)
	const bucket = "walvault-bench"
	gw.CreateBucket(tb, bucket, false)
	for _, kv := range gw.Env() {
		// The backends opened in this process read the AWS chain too.
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			tb.Setenv(k, v)
		}
	}
	e.repos["s3"] = e.newRepo(tb, "s3", "s3://"+bucket+"/db1", gw.Env(),
		open.Options{S3: open.S3Options{Endpoint: gw.Endpoint, Region: gw.Region, PathStyle: true}})
	e.s3Names = []string{"s3"}
	for _, rtt := range latencies(tb) {
		// The walvault processes go through the link; this process's own
		// setup and pruning reach the same bucket directly.
		link := startLink(tb, gw.Endpoint, rtt)
		name := latencyRepoName(rtt)
		r := *e.repos["s3"]
		r.name = name
		r.env = append(gw.EnvThrough(link.Endpoint()), "WALVAULT_REPO="+r.url)
		e.repos[name] = &r
		e.s3Names = append(e.s3Names, name)
	}

	// The real segment goes into both repositories the way PostgreSQL
	// would put it there (this also creates walvault.json, so the timed
	// pushes see an existing repository), and must come back identical:
	// it is what the fetch benchmarks fetch.
	for _, name := range []string{"file", "s3"} {
		r := e.repos[name]
		pgwal := filepath.Join(tb.TempDir(), "pg_wal")
		if err := os.Mkdir(pgwal, 0o700); err != nil {
			tb.Fatalf("%v", err)
		}
		if err := os.WriteFile(filepath.Join(pgwal, e.real.String()), e.data, 0o600); err != nil {
			tb.Fatalf("%v", err)
		}
		if _, out, err := e.probe(e.walvault(r, filepath.Dir(pgwal), "wal-push", "pg_wal/"+e.real.String())); err != nil {
			tb.Fatalf("setup: wal-push %s to %s: %v\n%s", e.real, r.url, err, out)
		}
		dest := filepath.Join(filepath.Dir(pgwal), "RECOVERYXLOG")
		if _, out, err := e.probe(e.walvault(r, "/", "wal-fetch", e.real.String(), dest)); err != nil {
			tb.Fatalf("setup: wal-fetch %s from %s: %v\n%s", e.real, r.url, err, out)
		}
		if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, e.data) {
			tb.Fatalf("setup: wal-fetch %s from %s did not return the pushed segment (err %v)", e.real, r.url, err)
		}
		info, err := r.backend.Stat(context.Background(), e.realKey())
		if err != nil {
			tb.Fatalf("setup: stat %s in %s: %v", e.realKey(), r.url, err)
		}
		tb.Logf("%s: %s stored as %d bytes", r.url, e.realKey(), info.Size)
	}
	fi, err := os.Stat(e.lz4)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Logf("segment %s: %d bytes; lz4 -1: %d bytes (%.1f%%); walvault lz4: %d bytes; spool %s, outputs %s",
		e.real, len(e.data), fi.Size(), 100*float64(fi.Size())/float64(len(e.data)), len(e.lz4Body), e.spool, e.disk)
	floor, _, err := e.probe(exec.Command("true"))
	if err != nil {
		tb.Fatalf("maxrss true: %v", err)
	}
	direct, _, _ := runCmd(exec.Command("true"))
	tb.Logf("peak RSS of `true`: %.1f MiB through the maxrss helper (the floor of every peak-RSS-MiB), %.1f MiB exec'd from this process (why the helper)",
		float64(floor)/1024, float64(direct)/1024)
	return e
}

// buildMaxRSS builds bench/internal/maxrss into a temporary directory.
func buildMaxRSS(tb testing.TB) string {
	root, err := testenv.ModuleRoot()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	out := filepath.Join(tb.TempDir(), "maxrss")
	cmd := exec.Command("go", "build", "-o", out, "./bench/internal/maxrss")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./bench/internal/maxrss: %v\n%s", err, b)
	}
	return out
}

func (e *env) newRepo(tb testing.TB, name, url string, extraEnv []string, opts open.Options) *repo {
	b, err := open.Open(context.Background(), url, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", url, err)
	}
	tb.Cleanup(func() { b.Close() })
	return &repo{name: name, url: url, env: append(extraEnv, "WALVAULT_REPO="+url), opts: opts, backend: b}
}

// realKey is the real segment's object key.
func (e *env) realKey() string {
	return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: e.real.Timeline, Segment: e.real}, repository.LZ4)
}

// realSegment starts PostgreSQL 15 (archiving off), lets pgbench write WAL
// and returns a copy of one full segment written by the pgbench run: not
// the first one (which the initialisation wrote into too) and not the
// last, and the cluster's pg_control.
func realSegment(tb testing.TB) (seg wal.Segment, data []byte, segSize uint32, pgControl []byte) {
	pg := testenv.StartPostgres(tb, testenv.PostgresOptions{})
	segSize = uint32(pg.WalSegSize)
	if segSize != segBytes {
		tb.Fatalf("PostgreSQL WAL segments are %d bytes, want %d", segSize, segBytes)
	}
	current := func() (wal.Segment, wal.LSN) {
		name := pg.SQL(tb, "SELECT pg_walfile_name(pg_current_wal_lsn())")
		seg, err := wal.ParseSegmentName(name)
		if err != nil {
			tb.Fatalf("pg_walfile_name: %v", err)
		}
		lsn, err := seg.StartLSN(segSize)
		if err != nil {
			tb.Fatalf("%v", err)
		}
		return seg, lsn
	}

	pg.Pgbench(tb, "-i", "-s", "10", "-q")
	// After a checkpoint the first change to each page is logged as a full
	// page image, as on any server that checkpoints every few minutes: the
	// segment then holds the usual mix of records and page images.
	pg.SQL(tb, "CHECKPOINT")
	first, firstLSN := current()
	for try := 1; ; try++ {
		pg.Pgbench(tb, "-n", "-c", "4", "-j", "2", "-T", "4")
		if _, lsn := current(); lsn >= firstLSN+2*wal.LSN(segSize) {
			break
		}
		if try == 15 {
			tb.Fatalf("pgbench wrote less than two WAL segments in %d runs", try)
		}
	}
	last := pg.SwitchWAL(tb) // completes the segment being written
	pick, err := first.Next(segSize)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	data, err = os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", pick.String()))
	if err != nil {
		tb.Fatalf("copy segment %s: %v", pick, err)
	}
	pg.Stop(tb) // nothing timed involves PostgreSQL
	if pgControl, err = os.ReadFile(filepath.Join(pg.DataDir, "global", "pg_control")); err != nil {
		tb.Fatalf("%v", err)
	}

	hdr, err := wal.ReadHeader(bytes.NewReader(data))
	if err == nil {
		err = hdr.Check(pick)
	}
	if err == nil && len(data) != int(hdr.SegmentSize) {
		err = fmt.Errorf("%d bytes, header says %d", len(data), hdr.SegmentSize)
	}
	if err != nil {
		tb.Fatalf("segment %s copied from pg_wal: %v", pick, err)
	}
	tb.Logf("pgbench wrote WAL from %s to %s; using %s", first, last, pick)
	return pick, data, segSize, pgControl
}

// fresh returns a segment name never used before in this test binary.
func (e *env) fresh(b *testing.B) wal.Segment {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.next
	next, err := s.Next(e.segSize)
	if err != nil {
		b.Fatalf("%v", err)
	}
	e.next = next
	return s
}

// segments writes n copies of the real segment under fresh names into a
// new directory, as DIR/pg_wal/NAME, and returns DIR and the names. Each
// copy's first page header carries its own name's start LSN (xlp_pageaddr,
// the only header walvault checks). Everything is removed when the
// benchmark run ends.
func (e *env) segments(b *testing.B, n int) (string, []string) {
	b.Helper()
	return e.segmentsOf(b, e.data, n)
}

// segmentsOf is segments with other contents than the real segment's.
func (e *env) segmentsOf(b *testing.B, data []byte, n int) (string, []string) {
	b.Helper()
	dir, err := os.MkdirTemp(e.spool, "pgdata-")
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	pgwal := filepath.Join(dir, "pg_wal")
	if err := os.Mkdir(pgwal, 0o700); err != nil {
		b.Fatalf("%v", err)
	}
	buf := bytes.Clone(data)
	names := make([]string, n)
	for i := range names {
		seg := e.fresh(b)
		lsn, err := seg.StartLSN(e.segSize)
		if err != nil {
			b.Fatalf("%v", err)
		}
		binary.LittleEndian.PutUint64(buf[8:16], uint64(lsn)) // xlp_pageaddr
		hdr, err := wal.ReadHeader(bytes.NewReader(buf))
		if err == nil {
			err = hdr.Check(seg)
		}
		if err != nil {
			b.Fatalf("patched segment %s: %v", seg, err)
		}
		names[i] = seg.String()
		if err := os.WriteFile(filepath.Join(pgwal, names[i]), buf, 0o600); err != nil {
			b.Fatalf("%v", err)
		}
	}
	return dir, names
}

// outDir is a new directory on disk for a run's outputs, removed when the
// run ends.
func (e *env) outDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp(e.disk, "out-")
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// pruneAfter deletes, when the run ends, every WAL object in r but the real
// segment, so repositories do not grow from run to run.
func (e *env) pruneAfter(b *testing.B, r *repo) {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		keep := e.realKey()
		var keys []string
		err := r.backend.List(ctx, repository.WALPrefix, func(o storage.ObjectInfo) error {
			if o.Key != keep {
				keys = append(keys, o.Key)
			}
			return nil
		})
		for _, k := range keys {
			if err != nil {
				break
			}
			err = r.backend.Delete(ctx, k)
		}
		if err != nil {
			b.Errorf("pruning %s: %v", r.url, err)
		}
	})
}

// openRepo opens r in this process the way cmd/walvault does (open.Stacked:
// the backend under the decorator stack), for the in-process benchmarks.
func openRepo(b *testing.B, r *repo) storage.Backend {
	b.Helper()
	opts := r.opts
	opts.Stack.Log = slog.New(slog.DiscardHandler)
	be, err := open.Stacked(context.Background(), r.url, opts)
	if err != nil {
		b.Fatalf("open %s: %v", r.url, err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// ---------------------------------------------------------------------------
// Processes

// walvault returns a command running the walvault binary as the current
// user in dir, with r's settings on top of an environment without any
// WALVAULT_* or AWS_* of our own.
func (e *env) walvault(r *repo, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALVAULT_") && !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, r.env...)
	return cmd
}

// runCmd runs cmd and returns the ru_maxrss of the child in KiB (which
// Linux inflates to at least this process's own peak RSS, see
// bench/internal/maxrss), its combined output, and its error.
func runCmd(cmd *exec.Cmd) (int64, string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	return rss, out.String(), err
}

// probe runs cmd through the maxrss helper and returns the peak RSS of
// cmd's process alone in KiB, its combined output, and its error.
func (e *env) probe(cmd *exec.Cmd) (int64, string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, "", err
	}
	defer pr.Close()
	wrapped := exec.Command(e.maxrss, append([]string{cmd.Path}, cmd.Args...)...)
	wrapped.Dir, wrapped.Env = cmd.Dir, cmd.Env
	wrapped.ExtraFiles = []*os.File{pw}
	var out bytes.Buffer
	wrapped.Stdout, wrapped.Stderr = &out, &out
	err = wrapped.Start()
	pw.Close()
	if err != nil {
		return 0, "", err
	}
	report, rerr := io.ReadAll(pr)
	err = wrapped.Wait()
	if err == nil && rerr != nil {
		err = rerr
	}
	var rss int64
	if _, serr := fmt.Sscan(string(report), &rss); serr != nil && err == nil {
		err = fmt.Errorf("maxrss helper reported %q: %v", report, serr)
	}
	return rss, out.String(), err
}

// execLoop times b.N iterations i = 0..b.N-1 of cmds(i), whose commands
// this process runs one after another, as PostgreSQL runs archive_command.
// Any non-zero exit, or output that check rejects, fails the benchmark with
// the process's output.
//
// Then, timer stopped, it runs b.N more iterations, i = b.N..2*b.N-1 (so
// cmds must give them inputs of their own), through the maxrss helper, and
// reports the largest peak RSS of any of their processes as peak-RSS-MiB.
// The helper costs a process start, so it stays out of the timed loop.
func execLoop(b *testing.B, e *env, cmds func(i int) []*exec.Cmd, check func(out string) error) {
	b.Helper()
	run := func(cmd *exec.Cmd, measure bool) int64 {
		var rss int64
		var out string
		var err error
		if measure {
			rss, out, err = e.probe(cmd)
		} else {
			_, out, err = runCmd(cmd)
		}
		if err == nil && check != nil {
			err = check(out)
		}
		if err != nil {
			b.Fatalf("%s (in %s): %v\n%s", strings.Join(cmd.Args, " "), cmd.Dir, err, out)
		}
		return rss
	}
	b.SetBytes(segBytes)
	settle()
	b.ResetTimer()
	for i := range b.N {
		for _, cmd := range cmds(i) {
			run(cmd, false)
		}
	}
	b.StopTimer()
	var maxRSS int64
	for i := b.N; i < 2*b.N; i++ {
		for _, cmd := range cmds(i) {
			maxRSS = max(maxRSS, run(cmd, true))
		}
	}
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
}

// settle flushes dirty pages (of earlier runs, of the setup) before a
// timed loop, so their writeback does not land in it.
func settle() { syscall.Sync() }

func command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	return cmd
}

// pushed checks a wal-push log: a fresh name must be archived, never found
// "already archived" (which skips the upload).
func pushed(out string) error {
	if strings.Contains(out, "already archived") {
		return errors.New("the segment was already archived: the benchmark did not upload it")
	}
	return nil
}

// ---------------------------------------------------------------------------
// wal-push

func BenchmarkWALPush(b *testing.B) {
	e := setup(b)
	b.Run("baseline=cp", func(b *testing.B) {
		dir, names := e.segments(b, 2*b.N)
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(dir, "cp", "pg_wal/"+names[i], out+"/")}
		}, nil)
	})
	b.Run("baseline=lz4-1", func(b *testing.B) {
		dir, names := e.segments(b, 2*b.N)
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(dir, "lz4", "-1", "-q", "-f", "pg_wal/"+names[i], filepath.Join(out, names[i]+".lz4"))}
		}, nil)
	})
	// lz4 -1 made as durable as walvault=file makes its object: fsync of
	// the file and of its directory.
	b.Run("baseline=lz4-1+fsync", func(b *testing.B) {
		dir, names := e.segments(b, 2*b.N)
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			dst := filepath.Join(out, names[i]+".lz4")
			return []*exec.Cmd{
				command(dir, "lz4", "-1", "-q", "-f", "pg_wal/"+names[i], dst),
				command(dir, "sync", dst, out),
			}
		}, nil)
	})
	for _, name := range []string{"file", "s3"} {
		b.Run("walvault="+name, func(b *testing.B) {
			r := e.repos[name]
			dir, names := e.segments(b, 2*b.N)
			e.pruneAfter(b, r)
			execLoop(b, e, func(i int) []*exec.Cmd {
				return []*exec.Cmd{e.walvault(r, dir, "wal-push", "pg_wal/"+names[i])}
			}, pushed)
		})
	}
}

// BenchmarkWALPushIncompressible pushes segments that lz4 cannot shrink
// (random bytes after the real first page header): the worst case for
// memory, as every buffer on the way is filled. WAL gets close to it with
// wal_compression on, or with already compressed or encrypted data.
func BenchmarkWALPushIncompressible(b *testing.B) {
	e := setup(b)
	b.Run("baseline=lz4-1", func(b *testing.B) {
		dir, names := e.segmentsOf(b, e.noise, 2*b.N)
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(dir, "lz4", "-1", "-q", "-f", "pg_wal/"+names[i], filepath.Join(out, names[i]+".lz4"))}
		}, nil)
	})
	for _, name := range []string{"file", "s3"} {
		b.Run("walvault="+name, func(b *testing.B) {
			r := e.repos[name]
			dir, names := e.segmentsOf(b, e.noise, 2*b.N)
			e.pruneAfter(b, r)
			execLoop(b, e, func(i int) []*exec.Cmd {
				return []*exec.Cmd{e.walvault(r, dir, "wal-push", "pg_wal/"+names[i])}
			}, pushed)
		})
	}
}

func BenchmarkWALPushInProcess(b *testing.B) {
	e := setup(b)
	host, _ := os.Hostname()
	for _, name := range []string{"file", "s3"} {
		b.Run(name, func(b *testing.B) {
			r := e.repos[name]
			be := openRepo(b, r)
			dir, names := e.segments(b, b.N)
			e.pruneAfter(b, r)
			opts := archive.Options{Compression: repository.LZ4, Host: host, Version: "bench"}
			b.SetBytes(segBytes)
			b.ReportAllocs()
			settle()
			b.ResetTimer()
			for i := range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				res, err := archive.Push(ctx, be, filepath.Join(dir, "pg_wal", names[i]), opts)
				cancel()
				if err != nil {
					b.Fatalf("archive.Push %s to %s: %v", names[i], r.url, err)
				}
				if res.AlreadyArchived {
					b.Fatalf("archive.Push %s: already archived: the benchmark did not upload it", names[i])
				}
			}
			b.StopTimer()
		})
	}
}

// BenchmarkWALPushStages times the parts of a push on their own, to show
// where a push's time goes: process start-up, reading, hashing and
// compressing the segment, and storing the compressed body.
func BenchmarkWALPushStages(b *testing.B) {
	e := setup(b)
	b.Run("exec=true", func(b *testing.B) { // fork and exec alone
		execLoop(b, e, func(int) []*exec.Cmd { return []*exec.Cmd{command("/", "true")} }, nil)
	})
	b.Run("exec=walvault-version", func(b *testing.B) { // + Go runtime and package init
		execLoop(b, e, func(int) []*exec.Cmd { return []*exec.Cmd{command("/", e.bin, "--version")} }, nil)
	})
	fileStage := func(b *testing.B, w func() io.Writer) {
		dir, names := e.segments(b, b.N)
		b.SetBytes(segBytes)
		b.ReportAllocs()
		settle()
		b.ResetTimer()
		for i := range b.N {
			f, err := os.Open(filepath.Join(dir, "pg_wal", names[i]))
			if err != nil {
				b.Fatal(err)
			}
			dst := w()
			_, err = io.Copy(dst, f)
			if c, ok := dst.(io.Closer); ok && err == nil {
				err = c.Close()
			}
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
	}
	b.Run("read", func(b *testing.B) { // one pass over the file (Push makes two)
		fileStage(b, func() io.Writer { return io.Discard })
	})
	b.Run("read+sha256", func(b *testing.B) {
		fileStage(b, func() io.Writer { return sha256.New() })
	})
	b.Run("read+lz4", func(b *testing.B) {
		fileStage(b, func() io.Writer {
			zw, err := repository.LZ4.NewWriter(io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			return zw
		})
	})
	for _, name := range []string{"file", "s3"} {
		// Put of the already compressed body, as Push hands it over: a
		// stream of unknown size, with the same kind of metadata.
		b.Run("put="+name, func(b *testing.B) {
			r := e.repos[name]
			e.pruneAfter(b, r)
			keys := make([]string, b.N)
			for i := range keys {
				seg := e.fresh(b)
				keys[i] = repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, repository.LZ4)
			}
			hdr, err := wal.ReadHeader(bytes.NewReader(e.data))
			if err != nil {
				b.Fatal(err)
			}
			meta := map[string]string{
				repository.MetaSystemID:    fmt.Sprint(hdr.SystemID),
				repository.MetaSHA256:      fmt.Sprintf("%x", sha256.Sum256(e.data)),
				repository.MetaRawSize:     fmt.Sprint(len(e.data)),
				repository.MetaCompression: string(repository.LZ4),
				repository.MetaTimeline:    fmt.Sprintf("%08X", uint32(e.real.Timeline)),
				repository.MetaHost:        "bench",
				repository.MetaPushedAt:    time.Now().UTC().Format(time.RFC3339),
				repository.MetaWalvault:    "bench",
			}
			b.SetBytes(segBytes)
			b.ReportAllocs()
			settle()
			b.ResetTimer()
			for i := range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				body := struct{ io.Reader }{bytes.NewReader(e.lz4Body)} // not seekable, like Push's pipe
				err := r.backend.Put(ctx, keys[i], body, storage.PutOptions{IfNotExists: true, Size: -1, Metadata: meta})
				cancel()
				if err != nil {
					b.Fatalf("put %s to %s: %v", keys[i], r.url, err)
				}
			}
			b.StopTimer()
		})
	}
}

// ---------------------------------------------------------------------------
// wal-fetch

func BenchmarkWALFetch(b *testing.B) {
	e := setup(b)
	b.Run("baseline=cp", func(b *testing.B) {
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(out, "cp", e.plain, fmt.Sprintf("RECOVERYXLOG.%d", i))}
		}, nil)
	})
	b.Run("baseline=lz4-d", func(b *testing.B) {
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{command(out, "lz4", "-d", "-q", "-f", e.lz4, fmt.Sprintf("RECOVERYXLOG.%d", i))}
		}, nil)
	})
	// s3-tls: the setting, and the peer's (pgBackRest speaks only
	// HTTPS to S3).
	fetchRepo := func(b *testing.B, name string) *repo {
		if name == "s3-tls" {
			return setupTLS(b, e) // holds the real segment
		}
		return e.repos[name]
	}
	for _, name := range []string{"file", "s3", "s3-tls"} {
		b.Run("walvault="+name, func(b *testing.B) {
			r := fetchRepo(b, name)
			out := e.outDir(b)
			execLoop(b, e, func(i int) []*exec.Cmd {
				return []*exec.Cmd{e.walvault(r, out, "wal-fetch", e.real.String(), fmt.Sprintf("RECOVERYXLOG.%d", i))}
			}, nil)
			checkFetched(b, e, filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", b.N-1)))
		})
	}
	b.Run("peer=pgbackrest-s3-tls", func(b *testing.B) {
		p := setupPgBackRest(b, e)
		out := e.outDir(b)
		execLoop(b, e, func(i int) []*exec.Cmd {
			return []*exec.Cmd{p.cmd(out, "archive-get", p.segment, filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", i)))}
		}, nil)
		checkFetched(b, e, filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", b.N-1)))
	})
	// The same calls handed to a running wal-helper, in its data directory.
	for _, name := range []string{"file", "s3", "s3-tls"} {
		b.Run("helper="+name, func(b *testing.B) {
			r := fetchRepo(b, name)
			out := e.outDir(b)
			if err := os.Mkdir(filepath.Join(out, "pg_wal"), 0o700); err != nil {
				b.Fatal(err)
			}
			helperLoop(b, e, e.walvault(r, out).Env, out, func() int { return 2 * b.N }, func() {
				execLoop(b, e, func(i int) []*exec.Cmd {
					return []*exec.Cmd{e.walvault(r, out, "wal-fetch", e.real.String(), fmt.Sprintf("pg_wal/RECOVERYXLOG.%d", i))}
				}, nil)
			})
			checkFetched(b, e, filepath.Join(out, "pg_wal", fmt.Sprintf("RECOVERYXLOG.%d", b.N-1)))
		})
	}
}

func BenchmarkWALFetchInProcess(b *testing.B) {
	e := setup(b)
	for _, name := range []string{"file", "s3"} {
		b.Run(name, func(b *testing.B) {
			r := e.repos[name]
			be := openRepo(b, r)
			out := e.outDir(b)
			opts := restore.FetchOptions{Compression: repository.LZ4, Log: slog.New(slog.DiscardHandler)}
			b.SetBytes(segBytes)
			b.ReportAllocs()
			settle()
			b.ResetTimer()
			for i := range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				_, err := restore.Fetch(ctx, be, e.real.String(), filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", i)), opts)
				cancel()
				if err != nil {
					b.Fatalf("restore.Fetch %s from %s: %v", e.real, r.url, err)
				}
			}
			b.StopTimer()
			checkFetched(b, e, filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", b.N-1)))
		})
	}
}

// checkFetched makes sure a fetch brought back the real segment.
func checkFetched(b *testing.B, e *env, path string) {
	b.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, e.data) {
		b.Fatalf("%s is not the archived segment %s (err %v)", path, e.real, err)
	}
}

// ---------------------------------------------------------------------------
// suiteTB

// suiteTB is the testing.TB handed to internal/testenv for the shared
// setup. A benchmark's own *testing.B will not do: its cleanups run after
// every round of that benchmark, which would stop the S3 gateway under the
// next one. suiteTB's cleanups run in TestMain after all benchmarks.
//
// It implements the methods testenv calls (Helper, Fatal/Fatalf, Errorf,
// Logf, Cleanup, TempDir, Failed, Setenv) and a few more; the embedded
// interface is nil, so any other method panics rather than pretending.
type suiteTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// setupFailure is the panic value of Fatal: do recovers it into an error.
type setupFailure struct{ msg string }

// do runs fn, turning a Fatal into an error.
func (s *suiteTB) do(fn func(testing.TB) *env) (e *env, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(setupFailure)
			if !ok {
				panic(r)
			}
			e, err = nil, errors.New(f.msg)
		}
	}()
	return fn(s), nil
}

func (s *suiteTB) Helper()      {}
func (s *suiteTB) Name() string { return "walvault-bench-setup" }

func (s *suiteTB) Log(args ...any) { s.Logf("%s", fmt.Sprintln(args...)) }
func (s *suiteTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench setup: %s\n", strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

func (s *suiteTB) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

func (s *suiteTB) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *suiteTB) Error(args ...any) { s.Fail(); s.Log(args...) }
func (s *suiteTB) Errorf(format string, args ...any) {
	s.Fail()
	s.Logf(format, args...)
}

func (s *suiteTB) FailNow() { s.Fatalf("FailNow") }
func (s *suiteTB) Fatal(args ...any) {
	s.Fatalf("%s", strings.TrimRight(fmt.Sprintln(args...), "\n"))
}
func (s *suiteTB) Fatalf(format string, args ...any) {
	s.Fail()
	panic(setupFailure{fmt.Sprintf(format, args...)})
}
func (s *suiteTB) Skip(args ...any)                 { s.Fatal(args...) }
func (s *suiteTB) Skipf(format string, args ...any) { s.Fatalf(format, args...) }
func (s *suiteTB) SkipNow()                         { s.Fatalf("SkipNow") }
func (s *suiteTB) Skipped() bool                    { return false }

func (s *suiteTB) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *suiteTB) TempDir() string {
	dir, err := os.MkdirTemp("", "walvault-bench-")
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *suiteTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		s.Fatalf("Setenv: %v", err)
	}
	s.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func (s *suiteTB) Context() context.Context { return context.Background() }

// runCleanups runs the cleanups, last registered first. A Fatal inside one
// is reported and the others still run.
func (s *suiteTB) runCleanups() {
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					f, ok := r.(setupFailure)
					if !ok {
						panic(r)
					}
					fmt.Fprintf(os.Stderr, "bench cleanup: %s\n", f.msg)
				}
			}()
			f()
		}()
	}
}
