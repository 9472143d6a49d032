package bench

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// BenchmarkRTO times the recovery time objective as issue 17 defines it:
// from nothing on disk to a server that accepts writes. Each iteration
// puts the pgbench database's backup into a new data directory, starts
// PostgreSQL 15 on it (pg_ctl start -w, as the server user) and waits
// until SELECT NOT pg_is_in_recovery() is true and a CREATE TABLE
// succeeds; the server is stopped and the directory removed afterwards,
// untimed.
//
//	baseline=untar-gz  tar -xzf of base.tar.gz and pg_wal.tar.gz (pg_basebackup -Ft -z,
//	                   WAL streamed), laid out as an operator would, one sync -f; the
//	                   server starts by crash recovery from backup_label and pg_wal
//	baseline=untar     the same from pg_basebackup -Ft (uncompressed): the floor
//	walvault=file|s3   walvault restore --target-immediate --target-action promote
//	                   (parts checked, files checked against backup_manifest as they are
//	                   written, one syncfs); the server fetches the backup's WAL through
//	                   restore_command (walvault wal-fetch) and promotes at its end
//
// Every variant starts the restored server with the same settings on the
// command line: its own port and socket directory, archive_mode off (the
// restored configuration would otherwise archive into the benchmark's
// repositories).
func BenchmarkRTO(b *testing.B) {
	e := backupSetup(b)
	for _, bl := range []struct{ name, input, flags, walName string }{
		{"untar-gz", "untar-gz", "-xzf", "pg_wal.tar.gz"},
		{"untar", "untar", "-xf", "pg_wal.tar"},
	} {
		b.Run("baseline="+bl.name, func(b *testing.B) {
			src := e.input(b, bl.input)
			walSrc := filepath.Join(filepath.Dir(src), bl.walName)
			if _, err := os.Stat(walSrc); err != nil {
				b.Fatalf("pg_basebackup wrote no %s beside %s: %v", bl.walName, src, err)
			}
			// As root, tar gives the files the owner in the archive: the
			// server user, who ran the server that sent them.
			untar := fmt.Sprintf(`mkdir -m 0700 "$D" && chown "$SU" "$D"
tar %[1]s %[2]s -C "$D"
tar %[1]s %[3]s -C "$D/pg_wal"
sync -f "$D"`, bl.flags, shq(src), shq(walSrc))
			e.loop(b, func(int) op { return e.rtoOp(b, cleanEnv(), untar, "") })
		})
	}
	for _, name := range append([]string{"file"}, e.s3Names...) {
		b.Run("walvault="+name, func(b *testing.B) {
			r := e.repos[name]
			id := e.input(b, r.kind)
			restore := fmt.Sprintf(`%s restore --pgdata "$D" --backup %s --target-immediate --target-action promote`, shq(e.bin), shq(id))
			e.loop(b, func(int) op { return e.rtoOp(b, cleanEnv(r.env...), restore, "restored backup "+id) })
		})
	}
}

// rtoOp is one RTO iteration: a shell script (as this process's user,
// with env) that runs step to fill the data directory $D, then starts
// the server on it as the server user ($AS) and waits until it accepts a
// write. want, when set, must appear in the output. after stops the
// server and removes everything.
func (e *backupEnv) rtoOp(b *testing.B, env []string, step, want string) op {
	parent := e.newDir(b, "rto-")
	run := filepath.Join(parent, "run") // socket, server log
	if err := os.Mkdir(run, 0o700); err != nil {
		b.Fatalf("%v", err)
	}
	testenv.ChownToServerUser(b, run)
	data := filepath.Join(parent, "pgdata")
	port := testenv.FreePort(b)
	as, su := serverUserPrefix(b)
	pgBin, psql := e.pg.BinDir, filepath.Join(e.pg.ClientBinDir, "psql")
	// psql runs as this user over the socket (trust authentication); a
	// poll is a process start, a few milliseconds, every 10 ms.
	script := `set -e
trap '[ $? -eq 0 ] || { echo "server log:"; tail -n 40 "$RUN/postgres.log" 2>/dev/null; } >&2' EXIT
t0=$(date +%s.%N)
` + step + `
t1=$(date +%s.%N)
$AS "$PGBIN/pg_ctl" -D "$D" -l "$RUN/postgres.log" -w -t 600 -s \
  -o "-c port=$PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$RUN -c archive_mode=off -c log_line_prefix='%m '" start
t2=$(date +%s.%N)
q() { "$PSQL" -h "$RUN" -p "$PORT" -U "$PGSU" -d postgres -XAtq "$@"; }
i=0
until [ "$(q -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; do
  i=$((i+1))
  if [ $i -ge 60000 ]; then echo "the server did not leave recovery within 10 minutes" >&2; exit 1; fi
  sleep 0.01
done
q -v ON_ERROR_STOP=1 -c 'CREATE TABLE walvault_rto_probe AS SELECT 1 AS ok'
t3=$(date +%s.%N)
echo "rto: restore $t0 $t1 started $t2 read-write $t3"
`
	cmd := exec.Command("sh", "-c", script, "sh")
	cmd.Dir = "/"
	cmd.Env = append(env, "D="+data, "RUN="+run, "PORT="+strconv.Itoa(port), "PGBIN="+pgBin, "PSQL="+psql, "AS="+as, "SU="+su, "PGSU="+e.pg.User)
	stop := func() error {
		if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
			return nil // never started, or stopped
		}
		c := testenv.ServerCommand(b, filepath.Join(pgBin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "60", "stop")
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
		}
		return nil
	}
	b.Cleanup(func() { stop(); removeRetrying(parent) })
	return op{
		cmd: cmd,
		after: func(out string) (int64, error) {
			if want != "" && !strings.Contains(out, want) {
				return 0, fmt.Errorf("the output does not say %q", want)
			}
			if err := stop(); err != nil {
				return 0, err
			}
			logPhases(b, out)
			if os.Getenv(rtoLogEnv) != "" {
				log, _ := os.ReadFile(filepath.Join(run, "postgres.log"))
				fmt.Fprintf(os.Stderr, "%s: server log:\n%s", b.Name(), log) // b.Logf would cut it short
			}
			return 0, removeRetrying(parent)
		},
	}
}

// serverUserPrefix is the command prefix that runs a program as the
// server user from this process's user, "" when no switch is needed, and
// that user's name.
func serverUserPrefix(b *testing.B) (prefix, name string) {
	name = testenv.ServerUser(b)
	if os.Geteuid() != 0 {
		return "", name
	}
	u, err := user.Lookup(name)
	if err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		b.Fatalf("setpriv is not on PATH (Debian: apt-get install -y util-linux): %v", err)
	}
	return fmt.Sprintf("setpriv --reuid=%s --regid=%s --clear-groups --", u.Uid, u.Gid), name
}

// removeRetrying removes dir, retrying for a few seconds: a detached WAL
// prefetcher the restored server started may still write into it.
func removeRetrying(dir string) error {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// shq quotes s for sh.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// rtoLogEnv, when set, makes BenchmarkRTO log each restored server's log:
// what its start spent the time on.
const rtoLogEnv = "WALVAULT_BENCH_RTO_LOG"

// logPhases logs where an RTO iteration's time went, from the script's
// "rto:" line: the restore, the server start (pg_ctl -w), and the wait
// until it accepted a write.
func logPhases(b *testing.B, out string) {
	i := strings.Index(out, "rto: restore ")
	if i < 0 {
		return
	}
	var t0, t1, t2, t3 float64
	if _, err := fmt.Sscanf(out[i:], "rto: restore %f %f started %f read-write %f", &t0, &t1, &t2, &t3); err != nil {
		return
	}
	b.Logf("restore %.2f s, pg_ctl start -w %.2f s, then read-write after %.2f s: %.2f s", t1-t0, t2-t1, t3-t2, t3-t0)
}

// gctraceEnv, when set, runs the restores of BenchmarkRestore with
// GODEBUG=gctrace=1 and logs a summary of the trace (gcSummary): where a
// restore's memory goes, heap or not.
const gctraceEnv = "WALVAULT_BENCH_GCTRACE"

var gcLineRE = regexp.MustCompile(`(?m)^gc \d+ @[0-9.]+s .*: .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (\d+) MB stacks`)

// gcSummary reads a Go GC trace: the number of collections and the
// largest heap at a collection's start, live after one, goal and stacks.
func gcSummary(out string) string {
	var n, start, live, goal, stacks int
	for _, m := range gcLineRE.FindAllStringSubmatch(out, -1) {
		v := make([]int, 5)
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		n++
		start, live, goal, stacks = max(start, v[0]), max(live, v[2]), max(goal, v[3]), max(stacks, v[4])
	}
	return fmt.Sprintf("gctrace: %d collections; largest heap at a collection %d MB, live after one %d MB, goal %d MB, stacks %d MB", n, start, live, goal, stacks)
}
