package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/check"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check every precondition of recoverability, one OK/FAILED line each (like barman check)",
		Description: `Prints one line per check, "name: OK (detail)" or "name: FAILED (what, and what
to do)": repository reachable and writable, walvault.json of this cluster,
PostgreSQL reachable, wal_level, archive_mode, archive_command runs walvault
into this repository, pg_stat_archiver failures, archive lag, newest backup
age (max-backup-age), number of backups (min-backups), WAL continuity since
the newest backup, Object Lock on the bucket when lock-mode asks for it, and
free space where pg_wal lives.

When wal-receive is in use, one "wal-receive slot" line per physical slot a
walvault-receive walsender streams from (and for the slot --slot names, even
when inactive or missing): active or not, how far wal-receive has flushed WAL
into the repository and how many bytes that is behind the server, flush and
replay lag, restart_lsn and the WAL the slot retains in pg_wal. It FAILS when
the slot is inactive or missing, retains or lags by more than 64 segments, has
lost WAL, or its flushed WAL is not in this repository. With an active
wal-receive, archive_mode off (or an archive_command that is not walvault's)
is OK: wal-receive is the WAL source then.

Connect as a superuser, or as a role with pg_monitor and pg_read_all_settings
(--pg-conn, or PG* variables and ~/.pgpass). Run on the database host as root
or as the server's OS user to also check the repository in the server's
environment and pg_wal's free space; elsewhere those lines say what could not
be checked. No secret is ever printed.

Exit codes: 0 every check OK, 1 at least one FAILED, 2 bad arguments or
configuration. --json prints a JSON array of {"name", "ok", "detail"}.`,
		Flags: append(configFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the results as JSON"},
			&cli.StringFlag{Name: "slot", Usage: "replication slot wal-receive streams from: reported even when inactive or missing (slots with a running wal-receive are reported without it)", EnvVars: []string{"WALVAULT_SLOT"}},
		),
		Action: checkAll,
	}
}

func checkAll(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("check takes no arguments")
	}
	s, err := startSession(c, noDeadline)
	if err != nil {
		return err
	}
	defer s.Close()
	cfg, log, ctx, b := s.cfg, s.log, s.ctx, s.b
	host, _ := os.Hostname()
	results := check.Run(ctx, b, check.Options{
		ConnString:   cfg.PGConn,
		Repo:         cfg.Repo,
		Slot:         c.String("slot"),
		MaxBackupAge: cfg.MaxBackupAge,
		MinBackups:   cfg.MinBackups,
		LockMode:     cfg.LockMode,
		LockDays:     cfg.LockDays,
		Timeout:      cfg.Timeout,
		Host:         host,
		Secrets:      secretValues(cfg),
		Log:          log,
	})
	if c.Bool("json") {
		err = check.WriteJSON(c.App.Writer, results)
	} else {
		err = check.WriteText(c.App.Writer, results)
	}
	if err != nil {
		return err
	}
	if n := check.Failed(results); n > 0 {
		return fmt.Errorf("%d of %d checks FAILED", n, len(results))
	}
	return nil
}

// secretValues are the values check must never print: every environment
// variable whose name says it holds a secret (AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, PGPASSWORD, ...) and the PostgreSQL password (from
// the connection setting or ~/.pgpass).
func secretValues(cfg Config) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		up := strings.ToUpper(k)
		for _, word := range []string{"SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL"} {
			if strings.Contains(up, word) && v != "" {
				out = append(out, v)
				break
			}
		}
	}
	if pc, err := pgconn.ParseConfig(cfg.PGConn); err == nil && pc.Password != "" {
		out = append(out, pc.Password)
	}
	return out
}
