package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pgBackRest is the peer measured beside walvault in the same run: its
// archive-push and archive-get (one process per segment, as
// archive_command and restore_command, asynchronous archiving off) to a
// bucket of the same TLS gateway as walvault's s3-tls repository, with
// lz4 at its default level, as walvault stores WAL.
type pgBackRest struct {
	bin     string
	conf    string // pgbackrest.conf
	pgData  string // pg1-path: global/pg_control of the cluster that wrote the segments
	segment string // the real segment, pushed once: what archive-get fetches
}

const pgBackRestStanza = "bench"

var peer struct {
	once sync.Once
	p    *pgBackRest
	err  error
}

// setupPgBackRest writes pgBackRest's configuration for a bucket of its
// own on the TLS gateway, creates the stanza and pushes the real segment
// once (untimed). pgBackRest checks each segment's system identifier
// against pg1-path's pg_control, so that holds a copy of the pg_control of
// the cluster that wrote it.
func setupPgBackRest(b *testing.B, e *env) *pgBackRest {
	b.Helper()
	bin, err := exec.LookPath("pgbackrest")
	if err != nil {
		b.Fatalf("pgbackrest is not on PATH: the peer rows need pgBackRest (Debian: apt-get install -y pgbackrest, or ./scripts/install-deps.sh): %v", err)
	}
	setupTLS(b, e)
	peer.once.Do(func() {
		_, peer.err = shared.tb.do(func(tb testing.TB) *env {
			gw := tlsRepo.gw
			const bucket = "pgbackrest-bench"
			gw.CreateBucket(tb, bucket, false)
			dir := tb.TempDir()
			p := &pgBackRest{bin: bin, conf: filepath.Join(dir, "pgbackrest.conf"), pgData: filepath.Join(dir, "pgdata")}
			for _, d := range []string{"global", "pg_wal", "log", "lock"} {
				if err := os.MkdirAll(filepath.Join(p.pgData, d), 0o700); err != nil {
					tb.Fatalf("%v", err)
				}
			}
			if err := os.WriteFile(filepath.Join(p.pgData, "global", "pg_control"), e.pgControl, 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
			host, port, ok := strings.Cut(strings.TrimPrefix(gw.Endpoint, "https://"), ":")
			// pgBackRest matches the certificate by DNS name only, and the
			// gateway's names this loopback address localhost.
			host = strings.Replace(host, "127.0.0.1", "localhost", 1)
			if !ok {
				tb.Fatalf("gateway endpoint %q: want https://HOST:PORT", gw.Endpoint)
			}
			conf := fmt.Sprintf(`[global]
repo1-type=s3
repo1-path=/pgbackrest
repo1-s3-bucket=%s
repo1-s3-endpoint=%s
repo1-storage-port=%s
repo1-s3-region=%s
repo1-s3-key=%s
repo1-s3-key-secret=%s
repo1-s3-uri-style=path
repo1-storage-ca-file=%s
compress-type=lz4
archive-async=n
log-path=%s
lock-path=%s
log-level-console=warn
log-level-file=off

[%s]
pg1-path=%s
`, bucket, host, port, gw.Region, gw.AccessKey, gw.SecretKey, gw.CAFile,
				filepath.Join(p.pgData, "log"), filepath.Join(p.pgData, "lock"), pgBackRestStanza, p.pgData)
			if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
			if out, err := p.cmd("/", "--no-online", "stanza-create").CombinedOutput(); err != nil {
				tb.Fatalf("pgbackrest stanza-create: %v\n%s", err, out)
			}
			p.segment = e.real.String()
			seg := filepath.Join(p.pgData, "pg_wal", p.segment)
			if err := os.WriteFile(seg, e.data, 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
			if out, err := p.cmd("/", "archive-push", seg).CombinedOutput(); err != nil {
				tb.Fatalf("pgbackrest archive-push %s: %v\n%s", seg, err, out)
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

// cmd runs pgbackrest with the bench configuration and stanza in dir.
// Paths given to it must be absolute: with a relative one it insists on
// running in pg1-path.
func (p *pgBackRest) cmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(p.bin, append([]string{"--config=" + p.conf, "--stanza=" + pgBackRestStanza}, args...)...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	return cmd
}

// pgBackRestBackup is pgBackRest's full backup of the base backup
// benchmarks' server into a repository on local disk (like walvault's
// file://): lz4, both cores (process-max=2), a fast checkpoint. It does not
// wait for the backup's WAL to be archived (archive-check=n: the server
// archives with walvault), where walvault's backup-push does.
type pgBackRestBackup struct {
	bin, conf, repo string

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
	bin, err := exec.LookPath("pgbackrest")
	if err != nil {
		b.Fatalf("pgbackrest is not on PATH: the peer rows need pgBackRest (Debian: apt-get install -y pgbackrest, or ./scripts/install-deps.sh): %v", err)
	}
	peerBackup.once.Do(func() {
		peerBackup.p, peerBackup.err = setupDo(&shared.tb, func(tb testing.TB) *pgBackRestBackup {
			dir := tb.TempDir()
			p := &pgBackRestBackup{bin: bin, conf: filepath.Join(dir, "pgbackrest.conf"), repo: filepath.Join(dir, "repo")}
			conf := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=1
compress-type=lz4
process-max=2
start-fast=y
archive-check=n
log-path=%s
lock-path=%s
log-level-console=warn
log-level-file=off

[%s]
pg1-path=%s
pg1-socket-path=%s
pg1-port=%d
pg1-user=%s
`, p.repo, dir, dir, pgBackRestStanza, e.pg.DataDir, e.pg.SocketDir, e.pg.Port(), e.pg.User)
			if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
				tb.Fatalf("%v", err)
			}
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
	if out, err := p.cmd("stanza-create").CombinedOutput(); err != nil {
		return fmt.Errorf("pgbackrest stanza-create: %v\n%s", err, out)
	}
	return nil
}

func (p *pgBackRestBackup) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(p.bin, append([]string{"--config=" + p.conf, "--stanza=" + pgBackRestStanza}, args...)...)
	cmd.Dir = "/"
	cmd.Env = cleanEnv()
	return cmd
}

// backupOp is one full backup; after it the repository's size is the
// stored size, and the repository is emptied.
func (p *pgBackRestBackup) backupOp() op {
	return op{
		cmd: p.cmd("--type=full", "backup"),
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
	backed := p.backed
	p.mu.Unlock()
	if !backed {
		if out, err := p.cmd("--type=full", "backup").CombinedOutput(); err != nil {
			b.Fatalf("pgbackrest backup: %v\n%s", err, out)
		}
		p.mu.Lock()
		p.backed = true
		p.mu.Unlock()
	}
	dir := e.newDir(b, "restored-")
	return op{
		cmd:   p.cmd("--pg1-path="+dir, "restore"),
		after: func(string) (int64, error) { return 0, checkRestored(dir, os.RemoveAll) },
	}
}
