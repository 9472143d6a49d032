package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/check"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/retention"
)

// checkOptions are the settings and flags of check.
type checkOptions struct {
	Config
	lockSettings
	decryptSettings
	PGConn       string
	MaxBackupAge time.Duration
	MinBackups   int
	Timeout      time.Duration
	JSON         bool
	Slot         string
	WindowDays   int // the retention's recovery window; 0: none given
	Redundancy   int // the retention's REDUNDANCY n; 0: none given
}

func (o *checkOptions) bind(b *binder) {
	bindPGConn(b, &o.PGConn)
	o.lockSettings.bind(b, &o.Repo)
	o.decryptSettings.bind(b)
	b.add("max-backup-age", positiveDuration("max-backup-age", "26h", &o.MaxBackupAge))
	b.add("min-backups", func(v string) (err error) {
		if o.MinBackups, err = strconv.Atoi(v); err != nil || o.MinBackups < 0 {
			return invalid("min-backups", "want a whole number, 0 or more")
		}
		return nil
	})
	b.addUsage("retain", `the retention policy delete runs with (as WALVAULT_RETAIN gives it): with "RECOVERY WINDOW OF n DAYS", lock-days shorter than n fails the Object Lock check, and with either policy so does a kept backup whose lock has run out`, func(v string) error {
		if v == "" {
			return nil
		}
		p, err := retention.ParsePolicy(v)
		if err != nil {
			return invalid("retain", err.Error())
		}
		switch p.Kind {
		case retention.RecoveryWindow:
			o.WindowDays = p.N
		case retention.Redundancy:
			o.Redundancy = p.N
		}
		return nil
	})
	bindTimeout(b, &o.Timeout, "deadline for each check, and how long to wait for a segment archived after a WAL switch")
}

func checkCommand() *cli.Command {
	var opts checkOptions
	return &cli.Command{
		Name:  "check",
		Usage: "check every precondition of recoverability, one OK/FAILED line each (like barman check)",
		Description: `Prints one line per check, "name: OK (detail)" or "name: FAILED (what, and what
to do)": repository reachable and writable, walvault.json of this cluster,
PostgreSQL reachable, wal_level, archive_mode, archive_command brings WAL into
this repository (judged by its effect: the segment archived last is there, or
else check runs pg_switch_wal() and waits up to --timeout for the segment it
completed; while the archiver is failing, it waits for the archiver to succeed
again instead of switching), pg_stat_archiver failures, archive lag, newest backup
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
		Flags: settingFlags(&opts,
			jsonFlag("print the results as JSON", &opts.JSON),
			slotFlag("replication slot wal-receive streams from: reported even when inactive or missing (slots with a running wal-receive are reported without it)", &opts.Slot),
		),
		Action: repoAction(&opts, checkAll),
	}
}

func (o *checkOptions) precheck(c *cli.Context) error {
	return noArgs(c, "check takes no arguments")
}

func checkAll(c *cli.Context, opts *checkOptions, s *session) error {
	host, _ := os.Hostname()
	results := check.Run(s.ctx, s.b, check.Options{
		ConnString:   opts.PGConn,
		Repo:         opts.Repo,
		Slot:         opts.Slot,
		MaxBackupAge: opts.MaxBackupAge,
		MinBackups:   opts.MinBackups,
		LockMode:     opts.LockMode,
		LockDays:     opts.LockDays,
		WindowDays:   opts.WindowDays,
		Redundancy:   opts.Redundancy,
		Identities:   opts.Identities,
		Timeout:      opts.Timeout,
		Host:         host,
		Secrets:      secretValues(opts.PGConn),
		HelperReads:  helperCallsRead(),
		// Variables wal-push reads: those it is not a command's own.
		UnknownEnvVars: unknownEnvVars,
		Log:            s.log,
	})
	var err error
	if opts.JSON {
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
func secretValues(pgConn string) []string {
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
	if pc, err := pg.ParseConfig(pgConn, ""); err == nil && pc.Password != "" {
		out = append(out, pc.Password)
	}
	return out
}
