package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
)

// scaleEnv names the environment variable with the pgbench scale of the
// database BenchmarkBackup and BenchmarkRestore work on.
const (
	scaleEnv     = "WALVAULT_BENCH_SCALE"
	defaultScale = 100
)

// backupShared is the setup of the base backup benchmarks, made by the
// first one that runs. It is apart from the WAL benchmarks' setup: each
// builds only what its benchmarks need.
var backupShared struct {
	once sync.Once
	env  *backupEnv
	err  error
}

// backupEnv is what the base backup benchmarks work with: one PostgreSQL 15
// server holding a pgbench database, archiving into both repositories.
type backupEnv struct {
	bin     string // walvault binary
	maxrss  string // the bench/internal/maxrss helper
	pg      *testenv.Postgres
	scale   int
	dbBytes int64  // sum of pg_database_size: the bytes per operation
	out     string // root of every output on disk (pg_basebackup, restores); the server user can search it
	repos   map[string]*backupRepo
	// s3Names are the S3 repositories: "s3" on loopback, then one per
	// latency of latencyEnv, the same bucket reached through a link.
	s3Names []string

	// archiveCommand is the server's archive_command with WAL going to S3
	// through endpoint; archiveEndpoint is the one set now.
	archiveCommand  func(endpoint string) string
	archiveEndpoint string

	mu sync.Mutex
	// inputs of the restore benchmarks, made once: "untar-gz" and "untar"
	// are paths of base.tar.gz and base.tar, "file" and "s3" backup ids.
	// BenchmarkBackup hands over its first outputs, so a run of both
	// benchmarks takes no extra backups for them.
	inputs map[string]string

	// log is linkLogEnv's request log; nil when it is not asked for.
	log *requestLog
}

// backupRepo is one repository the server archives into and backs up to.
type backupRepo struct {
	name string
	url  string
	// kind is the restore input this repository's backups serve as (its
	// bucket's): "file" or "s3".
	kind string
	// endpoint is the S3 endpoint its walvault processes use, which the
	// archiver uses too while it is backed up to; "" for file://.
	endpoint string
	env      []string // WALVAULT_* and AWS_* of a walvault process
	// stored returns the stored bytes of a backup; remove deletes it.
	stored func(ctx context.Context, id string) (int64, error)
	remove func(ctx context.Context, id string) error
	// identified reports whether walvault.json exists: WAL reached it.
	identified func(ctx context.Context) bool
}

// backupSetup returns the shared environment, making it on first use.
func backupSetup(b *testing.B) *backupEnv {
	b.Helper()
	backupShared.once.Do(func() {
		start := time.Now()
		backupShared.env, backupShared.err = setupDo(&shared.tb, newBackupEnv)
		if backupShared.err == nil {
			shared.tb.Logf("base backup benchmarks ready in %v", time.Since(start).Round(time.Second))
		}
	})
	if backupShared.err != nil {
		b.Fatalf("base backup benchmark setup failed: %v", backupShared.err)
	}
	return backupShared.env
}

// setupDo runs fn with s, turning a Fatal into an error (suiteTB.do for
// any result type).
func setupDo[T any](s *suiteTB, fn func(testing.TB) T) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(setupFailure)
			if !ok {
				panic(r)
			}
			var zero T
			v, err = zero, errors.New(f.msg)
		}
	}()
	return fn(s), nil
}

func newBackupEnv(tb testing.TB) *backupEnv {
	scale := defaultScale
	if s := os.Getenv(scaleEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("%s=%q: want a pgbench scale, a whole number of at least 1", scaleEnv, s)
		}
		scale = n
	}
	e := &backupEnv{
		bin:    testenv.BuildWalvault(tb),
		maxrss: buildMaxRSS(tb),
		scale:  scale,
		repos:  map[string]*backupRepo{},
		inputs: map[string]string{},
		log:    openRequestLog(tb),
	}
	for _, prog := range []string{"tar", "gzip"} {
		if _, err := exec.LookPath(prog); err != nil {
			tb.Fatalf("%s is not on PATH (Debian: apt-get install -y tar gzip): %v", prog, err)
		}
	}
	// Outputs go to disk, in a directory the server user can search, so a
	// restored data directory handed to it is reachable.
	e.out = testenv.UserDir(tb)
	if err := os.Chmod(e.out, 0o755); err != nil {
		tb.Fatalf("%v", err)
	}

	// file:// on disk, owned by the server user: archive_command writes it;
	// file-enc the same with encrypt-to (issue 14: compared with file).
	e.repos["file"] = newFileRepo(tb, "file")
	key, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	keyFile := filepath.Join(testenv.UserDir(tb), "key.txt")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		tb.Fatalf("%v", err)
	}
	e.repos["file-enc"] = newFileRepo(tb, "file-enc", "WALVAULT_ENCRYPT_TO="+key.Recipient().String(), "WALVAULT_DECRYPT_WITH="+keyFile)

	// s3:// on a loopback Versity gateway, plain http. This process reaches
	// it with the SDK and the gateway's credentials, never through its own
	// environment (the WAL benchmarks' gateway has other ones).
	gw := testenv.StartVersity(tb)
	const bucket, prefix = "walvault-bench", "db1"
	gw.CreateBucket(tb, bucket, false)
	client := gw.Client(tb)
	s3url := "s3://" + bucket + "/" + prefix
	listBackup := func(ctx context.Context, id string, fn func(key string, size int64) error) error {
		p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{
			Bucket: aws.String(bucket),
			Prefix: aws.String(prefix + "/" + repository.BackupPrefix(id)),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, o := range page.Contents {
				if err := fn(aws.ToString(o.Key), aws.ToInt64(o.Size)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	e.repos["s3"] = &backupRepo{
		name:     "s3",
		url:      s3url,
		kind:     "s3",
		endpoint: gw.Endpoint,
		env:      append(gw.Env(), "WALVAULT_REPO="+s3url),
		stored: func(ctx context.Context, id string) (int64, error) {
			var n int64
			err := listBackup(ctx, id, func(_ string, size int64) error { n += size; return nil })
			return n, err
		},
		remove: func(ctx context.Context, id string) error {
			var keys []string
			if err := listBackup(ctx, id, func(key string, _ int64) error { keys = append(keys, key); return nil }); err != nil {
				return err
			}
			for _, k := range keys {
				if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)}); err != nil {
					return err
				}
			}
			return nil
		},
		identified: func(ctx context.Context) bool {
			_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + repository.IdentityKey)})
			return err == nil
		},
	}
	e.s3Names = []string{"s3"}
	for _, rtt := range latencies(tb) {
		// backup-push and restore, and the archiver while they run, go
		// through the link; this process's setup and clean-up do not.
		link := startLink(tb, gw.Endpoint, rtt)
		r := *e.repos["s3"]
		r.name = latencyRepoName(rtt)
		r.endpoint = link.Endpoint()
		if e.log != nil {
			r.endpoint = e.log.proxy(tb, link.Endpoint(), rttName(rtt))
		}
		r.env = append(gw.EnvThrough(r.endpoint), "WALVAULT_REPO="+s3url)
		e.repos[r.name] = &r
		e.s3Names = append(e.s3Names, r.name)
	}

	// The server. Its WAL goes to both repositories, one walvault call for
	// each, so each repository has the WAL its backups need; backup-push
	// checks that archive_command runs walvault and that WAL of this
	// cluster reached the repository it backs up to. The server's
	// environment carries only the S3 credentials; the rest is in the
	// command.
	var awsEnv []string
	for _, kv := range gw.Env() {
		if strings.HasPrefix(kv, "AWS_") {
			awsEnv = append(awsEnv, kv)
		}
	}
	e.archiveCommand = func(endpoint string) string {
		return fmt.Sprintf("%s wal-push --repo %s %%p && %s wal-push --repo %s --s3-endpoint %s --s3-region %s --s3-path-style --s3-allow-http %%p && %s wal-push --repo %s --encrypt-to %s %%p",
			e.bin, e.repos["file"].url, e.bin, s3url, endpoint, gw.Region, e.bin, e.repos["file-enc"].url, key.Recipient().String())
	}
	archiveCommand := e.archiveCommand(gw.Endpoint)
	e.archiveEndpoint = gw.Endpoint
	e.pg = testenv.StartPostgres(tb, testenv.PostgresOptions{
		// Loading the data archives nothing: no backup needs that WAL.
		// archive_command becomes walvault's after the load (a reload,
		// archive_mode stays on).
		ArchiveCommand: "/bin/true",
		Env:            awsEnv,
		Conf: map[string]string{
			"autovacuum":         "off", // nothing but the benchmarks touches the data
			"max_wal_size":       "4GB", // the load does not checkpoint over and over
			"checkpoint_timeout": "1h",  // nor does an idle server between benchmarks
		},
	})
	start := time.Now()
	e.pg.Pgbench(tb, "-i", "-s", strconv.Itoa(scale), "-q")
	e.pg.SQL(tb, "CHECKPOINT")
	tb.Logf("pgbench -i -s %d in %v", scale, time.Since(start).Round(time.Second))
	e.pg.SQL(tb, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(archiveCommand, "'", "''")+"'; SELECT pg_reload_conf()")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if e.pg.SQL(tb, "SHOW archive_command") == archiveCommand {
			seg := e.pg.SwitchWAL(tb)
			e.pg.WaitArchived(tb, seg, 2*time.Minute)
			if e.repos["file"].identified(context.Background()) && e.repos["s3"].identified(context.Background()) && e.repos["file-enc"].identified(context.Background()) {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("WAL did not reach both repositories within 2 minutes of setting archive_command = %q\nserver log:\n%s", archiveCommand, e.pg.LogTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	size := e.pg.SQL(tb, "SELECT sum(pg_database_size(oid)) FROM pg_database")
	if e.dbBytes, err = strconv.ParseInt(size, 10, 64); err != nil || e.dbBytes <= 0 {
		tb.Fatalf("database size %q: %v", size, err)
	}
	tb.Logf("pgbench scale %d: %.0f MiB in all databases; archive_command = %s", scale, float64(e.dbBytes)/(1<<20), archiveCommand)
	return e
}

// newFileRepo is a file:// repository on disk, owned by the server user
// (archive_command writes it), for walvault processes with env added.
func newFileRepo(tb testing.TB, name string, env ...string) *backupRepo {
	dir := filepath.Join(testenv.UserDir(tb), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatalf("%v", err)
	}
	testenv.ChownToServerUser(tb, dir)
	fb, err := file.New(dir)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return &backupRepo{
		name: name,
		kind: name,
		url:  "file://" + dir,
		env:  append([]string{"WALVAULT_REPO=file://" + dir}, env...),
		stored: func(ctx context.Context, id string) (int64, error) {
			var n int64
			err := fb.List(ctx, repository.BackupPrefix(id), func(o storage.ObjectInfo) error { n += o.Size; return nil })
			return n, err
		},
		remove: func(_ context.Context, id string) error {
			return os.RemoveAll(filepath.Join(dir, filepath.FromSlash(repository.BackupPrefix(id))))
		},
		identified: func(context.Context) bool {
			_, err := os.Stat(filepath.Join(dir, repository.IdentityKey))
			return err == nil
		},
	}
}

// ---------------------------------------------------------------------------
// Measuring one command

// usage is what one run of a command took.
type usage struct {
	cpu  time.Duration // user+sys of the command and every child it waited for
	host time.Duration // busy CPU time of the whole machine meanwhile (server, S3 gateway, kernel threads too)
	self time.Duration // CPU time of this test process meanwhile: a link's proxy
	rss  int64         // peak RSS of the largest of its processes, KiB
}

// measure runs cmd through the maxrss helper (one process start more, a
// millisecond against the seconds of a backup, so it stays in the timed
// run) and returns its usage and combined output.
func (e *backupEnv) measure(cmd *exec.Cmd) (usage, string, error) {
	var u usage
	pr, pw, err := os.Pipe()
	if err != nil {
		return u, "", err
	}
	defer pr.Close()
	wrapped := exec.Command(e.maxrss, append([]string{cmd.Path}, cmd.Args...)...)
	wrapped.Dir, wrapped.Env, wrapped.SysProcAttr = cmd.Dir, cmd.Env, cmd.SysProcAttr
	wrapped.ExtraFiles = []*os.File{pw}
	var out bytes.Buffer
	wrapped.Stdout, wrapped.Stderr = &out, &out
	busy0, self0 := hostBusy(), selfCPU()
	if e.log != nil {
		e.log.command(cmd.Args)
		began := time.Now()
		defer func() { e.log.output(time.Since(began), out.String(), err) }()
	}
	err = wrapped.Start()
	pw.Close()
	if err != nil {
		return u, "", err
	}
	report, rerr := io.ReadAll(pr)
	err = wrapped.Wait()
	u.host = hostBusy() - busy0
	u.self = selfCPU() - self0
	if err == nil && rerr != nil {
		err = rerr
	}
	if _, serr := fmt.Sscan(string(report), &u.rss); serr != nil && err == nil {
		err = fmt.Errorf("maxrss helper reported %q: %v", report, serr)
	}
	// wait4 reports a process's own CPU time plus that of the children it
	// reaped: the helper's figure is the command's whole tree (pg_basebackup's
	// WAL streamer, tar's gzip, walvault restore's pg_verifybackup).
	if ps := wrapped.ProcessState; ps != nil {
		u.cpu = ps.UserTime() + ps.SystemTime()
	}
	return u, out.String(), err
}

// hostBusy is the machine's busy CPU time so far, from /proc/stat (all
// CPUs: user, nice, system, irq, softirq, steal). Zero where unreadable.
func hostBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ, 100 on Linux
}

// op is one iteration: the command to time and what to do after it, timer
// stopped (check its output, report the stored size, clean up).
type op struct {
	cmd   *exec.Cmd
	after func(out string) (stored int64, err error)
}

// loop times b.N iterations of ops(i), one command each, with the timer
// running only while the command runs. Before each, the archiver must be
// idle and earlier writes flushed. It sets the database size as bytes per
// operation (MB/s) and reports per operation cpu-s (the command's CPU
// time), host-cpu-s (the machine's), stored-MiB (when the after funcs
// report a size) and peak-RSS-MiB (the largest of all iterations).
func (e *backupEnv) loop(b *testing.B, ops func(i int) op) {
	b.Helper()
	b.SetBytes(e.dbBytes)
	b.StopTimer()
	b.ResetTimer()
	var cpu, host, self time.Duration
	var peak, stored int64
	for i := range b.N {
		o := ops(i)
		e.quiesce(b)
		b.StartTimer()
		u, out, err := e.measure(o.cmd)
		b.StopTimer()
		if err != nil {
			b.Fatalf("%s (in %s): %v\n%s", strings.Join(o.cmd.Args, " "), o.cmd.Dir, err, out)
		}
		cpu += u.cpu
		host += u.host
		self += u.self
		peak = max(peak, u.rss)
		if o.after != nil {
			n, err := o.after(out)
			if err != nil {
				b.Fatalf("after %s: %v\n%s", strings.Join(o.cmd.Args, " "), err, out)
			}
			stored += n
		}
	}
	n := float64(b.N)
	b.ReportMetric(cpu.Seconds()/n, "cpu-s")
	b.ReportMetric(host.Seconds()/n, "host-cpu-s")
	if strings.Contains(b.Name(), "/rtt=") {
		b.ReportMetric(self.Seconds()/n, "link-cpu-s")
	}
	if stored > 0 {
		b.ReportMetric(float64(stored)/n/(1<<20), "stored-MiB")
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}

// quiesce waits until the archiver has nothing left to archive (the WAL
// switch that ended the previous backup) and flushes dirty pages, so
// neither lands in the next timed run.
func (e *backupEnv) quiesce(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for e.pg.SQL(b, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'") != "0" {
		if time.Now().After(deadline) {
			b.Fatalf("the archiver is still busy after 2 minutes:\n%s", e.pg.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	settle()
}

// ---------------------------------------------------------------------------
// Commands

// cleanEnv is this process's environment without PG*, WALVAULT_* and AWS_*
// variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "WALVAULT_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// walvaultCmd runs walvault as the current user with r's settings.
func (e *backupEnv) walvaultCmd(r *backupRepo, args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = "/"
	cmd.Env = cleanEnv(r.env...)
	return cmd
}

// pgBasebackup runs the server's pg_basebackup into dir over TCP, as
// walvault connects, with a fast checkpoint as walvault takes by default
// (pg_basebackup's own default waits for a spread one).
func (e *backupEnv) pgBasebackup(dir string, args ...string) *exec.Cmd {
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(e.pg.Port()), "-U", e.pg.User, "-w", "-c", "fast", "-D", dir}, args...)
	cmd := exec.Command(filepath.Join(e.pg.BinDir, "pg_basebackup"), args...)
	cmd.Dir = "/"
	cmd.Env = cleanEnv()
	return cmd
}

// newDir makes a new empty directory on disk for one iteration's output,
// searchable by the server user.
func (e *backupEnv) newDir(b *testing.B, pattern string) string {
	b.Helper()
	dir, err := os.MkdirTemp(e.out, pattern)
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		b.Fatalf("%v", err)
	}
	return dir
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// offer hands an output to the restore benchmarks as their input of the
// given kind, unless they have one: it reports whether the output was
// taken (and must be kept).
func (e *backupEnv) offer(kind, v string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.inputs[kind]; ok {
		return false
	}
	e.inputs[kind] = v
	return true
}

var backupDoneRE = regexp.MustCompile(`(?m)^backup (\S+) done: `)

// pgbbOp is one pg_basebackup into a new directory; the archive file
// (base.tar.gz, base.tar) may become the restore input kind.
func (e *backupEnv) pgbbOp(b *testing.B, kind, archive string, args ...string) op {
	parent := e.newDir(b, "pg_basebackup-")
	dir := filepath.Join(parent, "backup")
	return op{
		cmd: e.pgBasebackup(dir, args...),
		after: func(string) (int64, error) {
			n, err := dirSize(dir)
			if err != nil {
				return 0, err
			}
			if _, err := os.Stat(filepath.Join(dir, archive)); err != nil {
				return 0, fmt.Errorf("pg_basebackup %s wrote no %s: %v", strings.Join(args, " "), archive, err)
			}
			if kind == "" || !e.offer(kind, filepath.Join(dir, archive)) {
				return n, os.RemoveAll(parent)
			}
			return n, nil
		},
	}
}

// pushOp is one walvault backup-push to r.
func (e *backupEnv) pushOp(b *testing.B, r *backupRepo) op {
	return e.pushOpAs(b, r, r.kind)
}

// pushOpAs is pushOp with more arguments, whose backup may become the
// restore input kind.
func (e *backupEnv) pushOpAs(b *testing.B, r *backupRepo, kind string, args ...string) op {
	return op{
		cmd: e.walvaultCmd(r, append([]string{"backup-push", "--pg-conn", e.pg.ConnString()}, args...)...),
		after: func(out string) (int64, error) {
			m := backupDoneRE.FindStringSubmatch(out)
			if m == nil {
				return 0, errors.New("backup-push did not say which backup it made")
			}
			id := m[1]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			n, err := r.stored(ctx, id)
			if err != nil {
				return 0, fmt.Errorf("size of backup %s in %s: %w", id, r.url, err)
			}
			b.Logf("%s", strings.TrimSpace(out[strings.Index(out, m[0]):]))
			if !e.offer(kind, id) {
				return n, r.remove(ctx, id)
			}
			return n, nil
		},
	}
}

// input returns the restore input of the given kind, making it (untimed)
// when BenchmarkBackup has not handed one over.
func (e *backupEnv) input(b *testing.B, kind string) string {
	b.Helper()
	e.mu.Lock()
	v, ok := e.inputs[kind]
	e.mu.Unlock()
	if ok {
		return v
	}
	var o op
	switch kind {
	case "untar-gz":
		o = e.pgbbOp(b, kind, "base.tar.gz", "-Ft", "-z")
	case "untar":
		o = e.pgbbOp(b, kind, "base.tar", "-Ft")
	case "file", "s3", "file-enc":
		o = e.pushOp(b, e.repos[kind])
	case codecInput("zstd"):
		o = e.pushOpAs(b, e.repos["file"], kind, "--compression", "zstd")
	default:
		b.Fatalf("no restore input %q", kind)
	}
	start := time.Now()
	e.quiesce(b)
	_, out, err := e.measure(o.cmd)
	if err == nil {
		_, err = o.after(out)
	}
	if err != nil {
		b.Fatalf("making the %s restore input: %s: %v\n%s", kind, strings.Join(o.cmd.Args, " "), err, out)
	}
	b.Logf("restore input %s made in %v", kind, time.Since(start).Round(time.Second/10))
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inputs[kind]
}

// archiveTo points the archiver's S3 push at r's endpoint (the link r's
// walvault processes go through), so that WAL a backup waits for crosses
// the same network as the backup; for a file:// repository, at the
// gateway directly.
func (e *backupEnv) archiveTo(b *testing.B, r *backupRepo) {
	b.Helper()
	endpoint := r.endpoint
	if endpoint == "" {
		endpoint = e.repos["s3"].endpoint
	}
	if endpoint == e.archiveEndpoint {
		return
	}
	cmd := e.archiveCommand(endpoint)
	e.pg.SQL(b, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(cmd, "'", "''")+"'; SELECT pg_reload_conf()")
	deadline := time.Now().Add(time.Minute)
	for e.pg.SQL(b, "SHOW archive_command") != cmd {
		if time.Now().After(deadline) {
			b.Fatalf("the server did not take archive_command = %q within a minute", cmd)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.archiveEndpoint = endpoint
}

// ---------------------------------------------------------------------------
// Benchmarks

// BenchmarkBackup takes base backups of the pgbench database: with
// pg_basebackup in tar format (gzip, none, client-side lz4) as baselines,
// and with walvault backup-push into each repository.
func BenchmarkBackup(b *testing.B) {
	e := backupSetup(b)
	for _, bl := range []struct {
		name, kind, archive string
		args                []string
	}{
		{"pg_basebackup-Ft-z", "untar-gz", "base.tar.gz", []string{"-Ft", "-z"}},
		{"pg_basebackup-Ft", "untar", "base.tar", []string{"-Ft"}},
		{"pg_basebackup-Ft-client-lz4", "", "base.tar.lz4", []string{"-Ft", "--compress=client-lz4"}},
	} {
		b.Run("baseline="+bl.name, func(b *testing.B) {
			e.loop(b, func(int) op { return e.pgbbOp(b, bl.kind, bl.archive, bl.args...) })
		})
	}
	b.Run("peer=pgbackrest-posix", func(b *testing.B) {
		p := e.pgBackRest(b)
		e.loop(b, func(int) op { return p.backupOp() })
	})
	for _, name := range append([]string{"file", "file-enc"}, e.s3Names...) {
		b.Run("walvault="+name, func(b *testing.B) {
			e.archiveTo(b, e.repos[name])
			e.loop(b, func(int) op { return e.pushOp(b, e.repos[name]) })
		})
	}
}

// BenchmarkRestore restores the pgbench database into an empty directory:
// untar of pg_basebackup's base.tar.gz and base.tar as baselines (as is,
// and followed by a sync of the file system), and
// walvault restore from each repository (the command alone: no server
// start, no WAL replay).
func BenchmarkRestore(b *testing.B) {
	e := backupSetup(b)
	for _, bl := range []struct {
		name, input, flags string
		sync               bool
	}{
		{"untar-gz", "untar-gz", "-xzf", false},
		{"untar", "untar", "-xf", false},
		// The same, made durable as walvault restore makes its result
		// (one syncfs of the file system), as PostgreSQL would at its
		// start after a crash-recovery-style restore (recovery_init_sync_method).
		{"untar-gz+sync", "untar-gz", "-xzf", true},
		{"untar+sync", "untar", "-xf", true},
	} {
		b.Run("baseline="+bl.name, func(b *testing.B) {
			src := e.input(b, bl.input)
			e.loop(b, func(int) op {
				dir := e.newDir(b, "restored-")
				cmd := exec.Command("tar", bl.flags, src)
				if bl.sync {
					cmd = exec.Command("sh", "-c", `tar "$1" "$2" && sync -f .`, "sh", bl.flags, src)
				}
				cmd.Dir = dir
				return op{cmd: cmd, after: func(string) (int64, error) { return 0, checkRestored(dir, os.RemoveAll) }}
			})
		})
	}
	b.Run("peer=pgbackrest-posix", func(b *testing.B) {
		p := e.pgBackRest(b)
		e.loop(b, func(int) op { return p.restoreOp(b, e) })
	})
	for _, name := range append([]string{"file", "file-enc"}, e.s3Names...) {
		b.Run("walvault="+name, func(b *testing.B) {
			r := e.repos[name]
			id := e.input(b, r.kind)
			e.loop(b, func(int) op { return e.restoreOp(b, r, id) })
		})
	}
}

// checkRestored makes sure dir looks like a data directory, then removes
// it with remove.
func checkRestored(dir string, remove func(string) error) error {
	_, err := os.Stat(filepath.Join(dir, "global", "pg_control"))
	if rerr := remove(dir); err == nil {
		err = rerr
	}
	return err
}

// restoreOp restores backup id of r into a new directory, checks that the
// server starts on it, and removes it.
func (e *backupEnv) restoreOp(b *testing.B, r *backupRepo, id string) op {
	dir := filepath.Join(e.newDir(b, "restored-"), "pgdata")
	cmd := e.walvaultCmd(r, "restore", "--pgdata", dir, "--backup", id, "--target-immediate")
	gctrace := os.Getenv(gctraceEnv) != ""
	if gctrace {
		cmd.Env = append(cmd.Env, "GODEBUG=gctrace=1")
	}
	return op{
		cmd: cmd,
		after: func(out string) (int64, error) {
			if !strings.Contains(out, "restored backup "+id) {
				return 0, errors.New("restore did not say it restored the backup")
			}
			if gctrace {
				b.Logf("%s", gcSummary(out))
			}
			return 0, checkRestored(dir, func(dir string) error { return os.RemoveAll(filepath.Dir(dir)) })
		},
	}
}
