package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walvault/walvault/internal/testenv"
)

// The peer measured beside walvault in the same run is pgBackRest
// (Debian's package): its archive-push and archive-get for the WAL rows,
// its full backup and restore for the base backup rows.

const pgBackRestStanza = "bench"

// pgBackRestTool runs pgbackrest with one configuration of the benchmarks.
type pgBackRestTool struct {
	bin, conf string
}

// newPgBackRestTool finds pgbackrest, failing b with how to install it.
func newPgBackRestTool(b *testing.B) pgBackRestTool {
	b.Helper()
	bin, err := exec.LookPath("pgbackrest")
	if err != nil {
		b.Fatalf("pgbackrest is not on PATH: the peer rows need pgBackRest (Debian: apt-get install -y pgbackrest, or ./scripts/install-deps.sh): %v", err)
	}
	return pgBackRestTool{bin: bin}
}

// writeConf writes pgbackrest.conf into dir, which also takes its logs and
// locks: repo and pg are the repository's settings and the stanza's; lz4
// at its default level, as walvault compresses.
func (t *pgBackRestTool) writeConf(tb testing.TB, dir string, repo, pg []string) {
	tb.Helper()
	t.conf = filepath.Join(dir, "pgbackrest.conf")
	lines := append([]string{"[global]"}, repo...)
	lines = append(lines, "compress-type=lz4", "log-path="+dir, "lock-path="+dir, "log-level-console=warn", "log-level-file=off",
		"", "["+pgBackRestStanza+"]")
	lines = append(lines, pg...)
	if err := os.WriteFile(t.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatalf("%v", err)
	}
}

// pgBackRestData makes dir, which holds pg_wal, a pg1-path for pgBackRest:
// it checks each segment's system identifier against dir/global/pg_control,
// so that is a copy of the pg_control of the cluster that wrote e.real.
func (e *env) pgBackRestData(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "global"), 0o700); err != nil {
		tb.Fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), e.pgControl, 0o600); err != nil {
		tb.Fatalf("%v", err)
	}
}

// cmd runs pgbackrest with the configuration and stanza in dir. Paths
// given to it must be absolute: with a relative one it insists on running
// in pg1-path.
func (t pgBackRestTool) cmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(t.bin, append([]string{"--config=" + t.conf, "--stanza=" + pgBackRestStanza}, args...)...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	return cmd
}

// archivePush archives the segment at path (absolute), untimed setup.
func (t pgBackRestTool) archivePush(path string) error {
	if out, err := t.cmd("/", "archive-push", path).CombinedOutput(); err != nil {
		return fmt.Errorf("pgbackrest archive-push %s: %v\n%s", path, err, out)
	}
	return nil
}

// pgBackRest is archive-push and archive-get (one process per segment, as
// archive_command and restore_command, asynchronous archiving off) to a
// bucket of the same TLS gateway as walvault's s3-tls repository.
type pgBackRest struct {
	pgBackRestTool
	segment string // the real segment, pushed once: what archive-get fetches

	// async are configurations with asynchronous archive-push through the
	// latency links (tlsRepo.endpoints), by the link's name.
	async map[string]pgBackRestTool
}

// pgBackRestBucket is the peer's bucket on the TLS gateway; its repository
// is under pgBackRestPath.
const (
	pgBackRestBucket = "pgbackrest-bench"
	pgBackRestPath   = "pgbackrest"
)

// s3Settings are the repository settings for the TLS gateway reached at
// endpoint (https://HOST:PORT, the gateway's or a link's).
func s3Settings(tb testing.TB, gw *testenv.S3Server, endpoint string) []string {
	tb.Helper()
	host, port, ok := strings.Cut(strings.TrimPrefix(endpoint, "https://"), ":")
	if !ok {
		tb.Fatalf("endpoint %q: want https://HOST:PORT", endpoint)
	}
	// pgBackRest matches the certificate by DNS name only, and the
	// gateway's names this loopback address localhost.
	host = strings.Replace(host, "127.0.0.1", "localhost", 1)
	return []string{
		"repo1-type=s3", "repo1-path=/" + pgBackRestPath, "repo1-s3-bucket=" + pgBackRestBucket,
		"repo1-s3-endpoint=" + host, "repo1-storage-port=" + port, "repo1-s3-region=" + gw.Region,
		"repo1-s3-key=" + gw.AccessKey, "repo1-s3-key-secret=" + gw.SecretKey,
		"repo1-s3-uri-style=path", "repo1-storage-ca-file=" + gw.CAFile,
	}
}

var peer struct {
	once sync.Once
	p    *pgBackRest
	err  error
}

// setupPgBackRest configures pgBackRest for a bucket of its own on the TLS
// gateway, creates the stanza and pushes the real segment once (untimed),
// from a pg1-path of its own (pgBackRestData).
func setupPgBackRest(b *testing.B, e *env) *pgBackRest {
	b.Helper()
	tool := newPgBackRestTool(b)
	setupTLS(b, e)
	peer.once.Do(func() {
		_, peer.err = shared.tb.do(func(tb testing.TB) *env {
			gw := tlsRepo.gw
			gw.CreateBucket(tb, pgBackRestBucket, false)
			dir := tb.TempDir()
			pgData := filepath.Join(dir, "pgdata")
			if err := os.MkdirAll(filepath.Join(pgData, "pg_wal"), 0o700); err != nil {
				tb.Fatalf("%v", err)
			}
			e.pgBackRestData(tb, pgData)
			p := &pgBackRest{pgBackRestTool: tool, segment: e.real.String(), async: map[string]pgBackRestTool{}}
			p.writeConf(tb, dir, append(s3Settings(tb, gw, gw.Endpoint), "archive-async=n"), []string{"pg1-path=" + pgData})
			// Through a link: asynchronous, pgBackRest's way through a
			// backlog (a process of its own pushes the .ready files,
			// process-max of them at once, like walvault's
			// upload-concurrency 8).
			for link, endpoint := range tlsRepo.endpoints {
				linkDir := filepath.Join(dir, link)
				if err := os.Mkdir(linkDir, 0o700); err != nil {
					tb.Fatalf("%v", err)
				}
				async := tool
				async.writeConf(tb, linkDir, append(s3Settings(tb, gw, endpoint), "archive-async=y", "process-max=8"), nil)
				p.async[link] = async
			}
			if out, err := p.cmd("/", "--no-online", "stanza-create").CombinedOutput(); err != nil {
				tb.Fatalf("pgbackrest stanza-create: %v\n%s", err, out)
			}
			seg := filepath.Join(pgData, "pg_wal", p.segment)
			if err := os.WriteFile(seg, e.data, 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
			if err := p.archivePush(seg); err != nil {
				tb.Fatalf("%v", err)
			}
			peer.p = p
			return nil
		})
	})
	if peer.err != nil {
		b.Fatalf("pgBackRest setup failed: %v", peer.err)
	}
	return peer.p
}

// pgBackRestBackup is pgBackRest's full backup of the base backup
// benchmarks' server into a repository on local disk (like walvault's
// file://), and its restore: both cores (process-max=2), a fast
// checkpoint. The backup does not wait for its WAL to be archived
// (archive-check=n: the server archives with walvault), where walvault's
// backup-push does.
type pgBackRestBackup struct {
	pgBackRestTool
	repo string

	mu     sync.Mutex
	backed bool // the repository holds a backup (for the restore rows)
}

var peerBackup struct {
	once sync.Once
	p    *pgBackRestBackup
	err  error
}

// pgBackRest sets up pgBackRest for e's server, once.
func (e *backupEnv) pgBackRest(b *testing.B) *pgBackRestBackup {
	b.Helper()
	tool := newPgBackRestTool(b)
	peerBackup.once.Do(func() {
		peerBackup.p, peerBackup.err = setupDo(&shared.tb, func(tb testing.TB) *pgBackRestBackup {
			dir := tb.TempDir()
			p := &pgBackRestBackup{pgBackRestTool: tool, repo: filepath.Join(dir, "repo")}
			p.writeConf(tb, dir, []string{
				"repo1-path=" + p.repo, "repo1-retention-full=1", "process-max=2", "start-fast=y", "archive-check=n",
			}, []string{
				"pg1-path=" + e.pg.DataDir, "pg1-socket-path=" + e.pg.SocketDir, fmt.Sprintf("pg1-port=%d", e.pg.Port()), "pg1-user=" + e.pg.User,
			})
			if err := p.reset(); err != nil {
				tb.Fatalf("%v", err)
			}
			return p
		})
	})
	if peerBackup.err != nil {
		b.Fatalf("pgBackRest setup failed: %v", peerBackup.err)
	}
	return peerBackup.p
}

// reset empties the repository and creates the stanza again, so each
// timed backup starts as the first and nothing expires during it.
func (p *pgBackRestBackup) reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backed = false
	if err := os.RemoveAll(p.repo); err != nil {
		return err
	}
	if out, err := p.cmd("/", "stanza-create").CombinedOutput(); err != nil {
		return fmt.Errorf("pgbackrest stanza-create: %v\n%s", err, out)
	}
	return nil
}

// backupOp is one full backup; after it the repository's size is the
// stored size, and the repository is emptied.
func (p *pgBackRestBackup) backupOp() op {
	return op{
		cmd: p.cmd("/", "--type=full", "backup"),
		after: func(string) (int64, error) {
			n, err := dirSize(filepath.Join(p.repo, "backup"))
			if err != nil {
				return 0, err
			}
			return n, p.reset()
		},
	}
}

// restoreOp restores the repository's backup (taken first, untimed, when
// there is none) into a new directory, checks that it looks like a data
// directory, and removes it. pgBackRest checks each file's checksum as it
// restores it and syncs what it wrote, as walvault restore does in its
// own way.
func (p *pgBackRestBackup) restoreOp(b *testing.B, e *backupEnv) op {
	b.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.backed {
		if out, err := p.cmd("/", "--type=full", "backup").CombinedOutput(); err != nil {
			b.Fatalf("pgbackrest backup: %v\n%s", err, out)
		}
		p.backed = true
	}
	dir := e.newDir(b, "restored-")
	return op{
		cmd:   p.cmd("/", "--pg1-path="+dir, "restore"),
		after: func(string) (int64, error) { return 0, checkRestored(dir, os.RemoveAll) },
	}
}
