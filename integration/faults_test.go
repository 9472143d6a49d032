package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
)

// faultMargin is what a command may take beyond its deadline: process
// start, the last attempt's end, a loaded machine running several at once.
const faultMargin = 5 * time.Second

// faultFixture is an S3 repository on a Versity gateway holding a DONE
// backup and the WAL after it, archived by a PostgreSQL 15 cluster
// straight to the gateway (the healthy path); the commands under test reach
// the gateway through a fault proxy.
type faultFixture struct {
	r        *repo
	gw       *testenv.S3Server
	pg       *testenv.Postgres
	copies   string   // every file archive_command was given
	segments []string // the archived segments' names
	backup   string
}

var segmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// keepAll is a retention policy that keeps the fixture's backup.
const keepAll = "RECOVERY WINDOW OF 30 DAYS"

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	f := &faultFixture{gw: testenv.StartVersity(t)}
	f.r = s3RepoOn(t, f.gw)
	f.pg, f.copies = archivingServer(t, f.r)
	f.pg.SQL(t, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)")
	f.backup = backupPush(t, f.r, f.pg)
	var last string
	for range 2 {
		f.pg.SQL(t, "INSERT INTO t SELECT generate_series(1, 1000)")
		last = f.pg.SwitchWAL(t)
	}
	f.pg.WaitArchived(t, last, 60*time.Second)
	waitDone(t, f.r, f.backup)
	// The WAL before the backup goes now, so the deletes under test remove
	// nothing: every segment left must survive them.
	if res := walvault(t, f.r.env, "delete", "--retain", keepAll, "--confirm"); res.code != 0 {
		t.Fatalf("test setup: delete: %v", res)
	}
	err := f.r.backend.List(context.Background(), "wal/", func(o storage.ObjectInfo) error {
		if name := strings.TrimSuffix(path.Base(o.Key), ".lz4"); segmentName.MatchString(name) {
			f.segments = append(f.segments, name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.segments) < 3 {
		t.Fatalf("test setup: %d segments archived, want at least 3", len(f.segments))
	}
	return f
}

// through is the environment of a walvault that reaches the repository
// through endpoint, with --timeout timeout.
func (f *faultFixture) through(endpoint string, timeout time.Duration) []string {
	return append(f.gw.EnvThrough(endpoint), "WALVAULT_REPO="+f.r.url, "WALVAULT_TIMEOUT="+timeout.String())
}

// assertNothingLost fetches every archived segment through the healthy
// path and compares it with what PostgreSQL archived; the backup is still
// DONE, and no multipart upload was left behind.
func (f *faultFixture) assertNothingLost(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range f.segments {
		dest := filepath.Join(dir, name)
		if res := walvault(t, f.r.env, "wal-fetch", name, dest); res.code != 0 {
			t.Errorf("after the faults, wal-fetch %s through the healthy path: %v", name, res)
			continue
		}
		if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(f.copies, name))) {
			t.Errorf("after the faults, %s comes back with other bytes than PostgreSQL archived", name)
		}
	}
	done := false
	for _, b := range listBackups(t, f.r.env) {
		done = done || (b.ID == f.backup && b.Status == "DONE")
	}
	if !done {
		t.Errorf("after the faults, backup %s is no longer listed DONE: %+v", f.backup, listBackups(t, f.r.env))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, _, _ := strings.Cut(strings.TrimPrefix(f.r.url, "s3://"), "/")
	out, err := f.gw.Client(t).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("after the faults, %d multipart uploads remain, want none", len(out.Uploads))
	}
}

// faultRun is one command run under a fault, and the exit code it must
// end with.
type faultRun struct {
	name string
	args []string
	want int
	// check, when set, looks at the result beyond the exit code.
	check func(t *testing.T, res result)
}

// runsUnderFault are the commands run under every TCP fault: one each of
// the short commands, the long ones, and the one PostgreSQL runs during
// recovery. want gives each its exit code on failure (wal-fetch: 200).
func (f *faultFixture) runsUnderFault(t *testing.T, succeed bool) []faultRun {
	fail := func(code int) int {
		if succeed {
			return 0
		}
		return code
	}
	fetchDest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	fetched := f.segments[len(f.segments)-1]
	return []faultRun{
		{name: "wal-push", args: []string{"wal-push", filepath.Join(f.copies, f.segments[0])}, want: fail(1)},
		{name: "wal-fetch", args: []string{"wal-fetch", fetched, fetchDest}, want: fail(200), check: func(t *testing.T, res result) {
			f.assertFetched(t, res, fetched, fetchDest)
		}},
		{name: "backup-list", args: []string{"backup-list"}, want: fail(1)},
		{name: "verify --full", args: []string{"verify", "--full"}, want: fail(1)},
		// delete reads the whole repository and, after the fixture's own
		// delete, has nothing to remove.
		{name: "delete", args: []string{"delete", "--retain", keepAll, "--confirm"}, want: fail(1)},
		{name: "restore", args: []string{"restore", "--pgdata", filepath.Join(t.TempDir(), "restored"), "--backup", f.backup}, want: fail(1)},
	}
}

// assertFetched checks a wal-fetch's destination: the archived bytes after
// exit 0, nothing after a failure.
func (f *faultFixture) assertFetched(t *testing.T, res result, name, dest string) {
	t.Helper()
	got, err := os.ReadFile(dest)
	if res.code == 0 {
		if err != nil || !bytes.Equal(got, readFile(t, filepath.Join(f.copies, name))) {
			t.Errorf("wal-fetch %s exited 0 but %s does not hold the archived bytes (%v)", name, dest, err)
		}
		return
	}
	if err == nil {
		t.Errorf("wal-fetch %s failed (exit %d) but left %s behind (%d bytes)", name, res.code, dest, len(got))
	}
}

// runAll runs every run at once through env and checks each exit code and
// that each ended within timeout plus faultMargin. It returns when all have
// ended.
func runAll(t *testing.T, env []string, timeout time.Duration, runs []faultRun) map[string]result {
	t.Helper()
	testenv.BuildWalvault(t) // once, before the goroutines
	var mu sync.Mutex
	results := map[string]result{}
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := walvault(t, env, run.args...)
			mu.Lock()
			results[run.name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, run := range runs {
		res, ok := results[run.name]
		if !ok {
			t.Errorf("%s did not run", run.name)
			continue
		}
		if res.code != run.want {
			t.Errorf("%s: want exit %d, got %v", run.name, run.want, res)
		}
		if res.elapsed > timeout+faultMargin {
			t.Errorf("%s: ran %v, want it to end within its %v deadline and %v: %v", run.name, res.elapsed.Round(time.Millisecond), timeout, faultMargin, res)
		}
		if run.check != nil {
			run.check(t, res)
		}
	}
	return results
}

// TestCommandsUnderFaults runs the commands through fault proxies in front
// of the S3 server (one fixture for both, to keep the suite lean); nothing
// archived is lost.
func TestCommandsUnderFaults(t *testing.T) {
	f := newFaultFixture(t)
	t.Run("tcp", func(t *testing.T) { testCommandsUnderTCPFaults(t, f) })
	t.Run("http", func(t *testing.T) { testCommandsUnderHTTPFaults(t, f) })
	f.assertNothingLost(t)
}

// testCommandsUnderTCPFaults puts a TCP proxy between walvault and the S3
// server and stalls it, cuts its responses, and refuses connections for 5 s:
// every command ends within its deadline, fails cleanly or rides the fault
// out.
func testCommandsUnderTCPFaults(t *testing.T, f *faultFixture) {
	proxy := testenv.StartFaultProxy(t, f.gw.Endpoint)

	t.Run("stall", func(t *testing.T) {
		const timeout = 3 * time.Second
		proxy.Stall(t)
		defer proxy.Heal(t)
		runs := f.runsUnderFault(t, false)
		// backup-push used to sit on its first read of walvault.json.
		runs = append(runs, faultRun{name: "backup-push", args: []string{"backup-push", "--pg-conn", f.pg.ConnString()}, want: 1})
		for name, res := range runAll(t, f.through(proxy.Endpoint(), timeout), timeout, runs) {
			// One line names the repository's endpoint and what was asked.
			if line := lastStderrLine(res.stderr); !strings.Contains(line, proxy.Addr) || !strings.Contains(line, "before the deadline") {
				t.Errorf("%s against a stalled endpoint: last line %q, want it to name %s and the deadline", name, line, proxy.Addr)
			}
		}
	})

	t.Run("cut mid-body", func(t *testing.T) {
		const timeout = 3 * time.Second
		// Every connection is closed once the server sent 1 KiB on it.
		proxy.CutAfter(t, 1<<10)
		defer proxy.Heal(t)
		runs := f.runsUnderFault(t, false)
		// wal-push of an archived segment needs only small answers (HEAD,
		// the refused conditional create): a retry on a fresh connection
		// gets each through, and the push is settled.
		runs[0].want = 0
		runAll(t, f.through(proxy.Endpoint(), timeout), timeout, runs)
	})

	t.Run("refused for 5s", func(t *testing.T) {
		const timeout = 20 * time.Second
		proxy.Refuse(t)
		healed := make(chan struct{})
		go func() {
			defer close(healed)
			time.Sleep(5 * time.Second)
			proxy.Heal(t)
		}()
		results := runAll(t, f.through(proxy.Endpoint(), timeout), timeout, f.runsUnderFault(t, true))
		<-healed
		for name, res := range results {
			if res.elapsed < 4*time.Second {
				t.Errorf("%s succeeded after %v, before the 5s outage ended: did it reach the proxy?", name, res.elapsed)
			}
		}
	})
}

// testCommandsUnderHTTPFaults breaks responses the way S3 servers and the
// proxies in front of them do: error bursts are ridden out with correct
// data; a body cut short or of the wrong length never passes for the
// object, and wal-fetch never calls it missing.
func testCommandsUnderHTTPFaults(t *testing.T, f *faultFixture) {
	proxy := testenv.StartHTTPFaultProxy(t, f.gw.Endpoint)
	const timeout = 4 * time.Second
	env := f.through(proxy.Endpoint, timeout)
	name := f.segments[len(f.segments)-1]

	// under runs one command with fault set, checks its exit code and time,
	// and that the fault was hit.
	under := func(t *testing.T, fault testenv.HTTPFault, want int, args ...string) result {
		t.Helper()
		proxy.Clear()
		proxy.Add(fault)
		defer proxy.Clear()
		res := walvault(t, env, args...)
		if res.code != want {
			t.Errorf("%v under %+v: want exit %d, got %v", args, fault, want, res)
		}
		if res.elapsed > timeout+faultMargin {
			t.Errorf("%v under %+v: ran %v, want it within its %v deadline and %v", args, fault, res.elapsed, timeout, faultMargin)
		}
		if proxy.Broken() == 0 {
			t.Errorf("%v: the fault %+v was never hit", args, fault)
		}
		return res
	}
	fetch := func(t *testing.T, fault testenv.HTTPFault, want int) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		res := under(t, fault, want, "wal-fetch", name, dest)
		f.assertFetched(t, res, name, dest)
	}
	restore := func(t *testing.T, fault testenv.HTTPFault, want int) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "restored")
		under(t, fault, want, "restore", "--pgdata", dir, "--backup", f.backup)
	}

	t.Run("error bursts", func(t *testing.T) {
		for _, burst := range []testenv.HTTPFault{
			{Status: 503, Code: "SlowDown", Times: 3},
			{Status: 500, Code: "InternalError", Times: 3},
		} {
			fetch(t, burst, 0)
			restore(t, burst, 0)
			under(t, burst, 0, "wal-push", filepath.Join(f.copies, f.segments[0]))
			under(t, burst, 0, "backup-list")
			under(t, burst, 0, "verify", "--full")
			under(t, burst, 0, "delete", "--retain", keepAll, "--confirm")
		}
	})

	// The broken bodies of WAL objects (wal-fetch) and of the backup's
	// objects (restore), in every way a response can lie about its body.
	// A body that ends before its Content-Length is a broken download,
	// fetched again. A short body whose Content-Length agrees contradicts
	// the Content-Range of the ranged GET's answer (storage/s3), so it is
	// a broken answer too, asked again; were it not seen (a server that
	// ignores Range), it would look like a corrupt object, which only the
	// checksum catches: wal-fetch stops recovery at once rather than hand
	// over wrong bytes.
	for _, tc := range []struct {
		kind  string
		fault func(path string, times int) testenv.HTTPFault
		// The exits of wal-fetch and restore when two answers are broken,
		// then good ones.
		fetchRideOut, restoreRideOut int
	}{
		{"truncated body", func(path string, times int) testenv.HTTPFault {
			fault := testenv.CutBody("GET", path, 1000)
			fault.Times = times
			return fault
		}, 0, 0},
		{"Content-Length too long", func(path string, times int) testenv.HTTPFault {
			return testenv.HTTPFault{Method: "GET", Path: path, LengthDelta: 100, Times: times}
		}, 0, 0},
		{"short body, Content-Length agrees", func(path string, times int) testenv.HTTPFault {
			return testenv.HTTPFault{Method: "GET", Path: path, LengthDelta: -100, Times: times}
		}, 0, 0},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			// Every answer broken: the fetch stops recovery (never "missing",
			// never wrong bytes), the restore fails.
			fetch(t, tc.fault("/wal/", 0), 200)
			restore(t, tc.fault("/backups/", 0), 1)
			fetch(t, tc.fault("/wal/", 2), tc.fetchRideOut)
			restore(t, tc.fault("/backups/", 2), tc.restoreRideOut)
		})
	}

	// Headers, then silence: the stall is cut at the deadline, never waited
	// on.
	t.Run("stall after headers", func(t *testing.T) {
		fetch(t, testenv.HTTPFault{Method: "GET", Path: "/wal/", StallAfterHeaders: true}, 200)
		restore(t, testenv.HTTPFault{Method: "GET", Path: "/backups/", StallAfterHeaders: true}, 1)
	})
}

// TestRecoveryRidesOutStorageOutage: a point-in-time restore whose
// restore_command reaches S3 through a proxy that refuses every connection
// for 5 s in the middle of replay. wal-fetch rides the outage out (its
// deadline is longer), so recovery neither stops nor ends early: it reaches
// the target, and the row written just before it is there.
func TestRecoveryRidesOutStorageOutage(t *testing.T) {
	gw := testenv.StartVersity(t)
	r := s3RepoOn(t, gw)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE marker (n int)")
	id := backupPush(t, r, pg)
	const segments = 8 // replayed one restore_command at a time
	for i := 1; i <= segments; i++ {
		pg.SQL(t, fmt.Sprintf("INSERT INTO marker VALUES (%d)", i))
		pg.SwitchWAL(t)
	}
	pg.SQL(t, "INSERT INTO marker VALUES (100)") // just before the target
	target := pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO marker VALUES (200)") // after it
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)

	// restore_command -> TCP proxy (the outage) -> HTTP proxy (counts the
	// WAL objects asked for) -> gateway.
	counter := testenv.StartHTTPFaultProxy(t, gw.Endpoint)
	counter.Add(testenv.HTTPFault{Method: "GET", Path: "/wal/"}) // breaks nothing, counts
	proxy := testenv.StartFaultProxy(t, counter.Endpoint)
	// Debug logging puts wal-fetch's retries in the server log; prefetch
	// off, so each segment is fetched when recovery asks for it.
	env := append(gw.EnvThrough(proxy.Endpoint()), "WALVAULT_REPO="+r.url, "WALVAULT_PREFETCH=0", "WALVAULT_LOG_LEVEL=debug")
	dir := filepath.Join(testenv.UserDir(t), "restored")
	res := walvault(t, env, "restore", "--pgdata", dir, "--target-time", target, "--target-action", "promote", "--timeout", "60s")
	if res.code != 0 {
		t.Fatalf("restore through the proxy: %v", res)
	}

	// The outage starts once recovery has fetched a few WAL files, of the
	// dozen it needs.
	const fetchedBeforeOutage = 4
	// WAL requests when the outage started, then closed once it ended;
	// buffered, as the server may not come up before the outage ends.
	outage := make(chan int, 1)
	go func() {
		defer close(outage)
		deadline := time.Now().Add(90 * time.Second)
		for counter.Broken() < fetchedBeforeOutage {
			if time.Now().After(deadline) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		proxy.Refuse(t)
		outage <- counter.Broken()
		time.Sleep(5 * time.Second)
		proxy.Heal(t)
	}()
	restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: env})
	atOutage, ok := <-outage
	if !ok {
		t.Fatalf("test setup: recovery asked for fewer than %d WAL files in 90s:\n%s", fetchedBeforeOutage, restored.LogTail(30))
	}
	<-outage // healed
	waitPromoted(t, restored)
	if total := counter.Broken(); total <= atOutage {
		t.Errorf("no WAL file asked for after the outage (%d before, %d in all): it was not in the middle of replay", atOutage, total)
	} else {
		t.Logf("WAL files asked for: %d before the outage, %d in all", atOutage, total)
	}

	log := restored.LogTail(100000)
	if !strings.Contains(log, "storage call failed, retrying") {
		t.Errorf("the server log shows no wal-fetch riding out the outage:\n%s", restored.LogTail(40))
	}
	if !strings.Contains(log, "recovery stopping before commit") {
		t.Errorf("recovery did not stop at the target:\n%s", restored.LogTail(40))
	}
	want := "1,2,3,4,5,6,7,8,100"
	if got := restored.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM marker"); got != want {
		t.Errorf("marker rows after recovery: %q, want %q (every segment replayed up to the target, nothing after it)", got, want)
	}
}
