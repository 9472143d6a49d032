package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/restore"
)

// drillOptions are the settings and flags of drill.
type drillOptions struct {
	restoreConfig
	targetOptions
	Backup          string
	CheckSQL        string
	CheckDB         string
	DBUser          string
	Amcheck         string
	Keep            bool
	JSON            bool
	ScratchDir      string
	PGBin           string
	Owner           string
	Port            int
	ServerSettings  cli.StringSlice
	RecoveryTimeout time.Duration
	// From precheck:
	recoveryTarget restore.Target
	exe            string
}

func drillCommand() *cli.Command {
	var opts drillOptions
	return &cli.Command{
		Name:  "drill",
		Usage: "prove a backup restores: restore it into a scratch directory, recover it with a temporary server, check it, report RTO and RPO",
		Description: `A restore drill does what a real recovery would, on the side:

   1. checks that the archived WAL has no gap from the backup's start to the
      newest archived segment (walvault verify's continuity check);
   2. restores the backup (the newest DONE one that ends before the target,
      or --backup) into a new directory under --scratch-dir, its
      tablespaces too, exactly as walvault restore does, every part checked
      against its sha256;
   3. starts a temporary PostgreSQL on it: on 127.0.0.1 at a free port, with
      a private unix socket directory, and with archive_mode=off,
      archive_command='' and no primary_conninfo on its command line, which
      wins over every configuration file, so it can never archive into the
      repository or reach a primary; its restore_command (wal-fetch
      --drill-scratch) refuses WAL that creates or drops a tablespace
      outside the scratch directory, which would make it write there;
   4. waits until recovery ends (the drill promotes at the target unless
      --target-action pause), then checks: the server is read-write (or
      paused at the target), the replay reached the newest archived WAL (for
      a drill to the end of the archive), --check-sql returns at least one
      row, and pg_amcheck --all --install-missing is clean (when pg_amcheck
      and the amcheck extension are installed);
   5. reports the RTO (restore time + replay time) and the RPO (how old the
      newest archived WAL was at the target, or at the drill's start), and
      stores a JSON record under drills/ in the repository, which check and
      the exporter read.

The server is stopped and the scratch directory removed on every path:
success, failure, Ctrl-C or SIGTERM. --keep leaves the directory (with the
server stopped) to look at. Any failure exits 1 and prints the server log's
last lines.

Run as root, the server runs as --owner (default postgres), and so does
restore_command (walvault wal-fetch): the repository credentials in the
environment are passed on, as for archive_command. PostgreSQL's programs come
from --pg-bin, or else /usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin
or pg_config --bindir,
by the backup's major version.

Examples:
   walvault drill
   walvault drill --check-sql 'SELECT 1 FROM orders LIMIT 1' --check-db shop
   walvault drill --target-time '2026-11-25 10:30:00+00' --json`,
		Flags: settingFlags(&opts, append(opts.targetOptions.flags("at the target: promote (the drill's default) or pause (then the drill checks it paused there)"),
			backupRefFlag(&opts.Backup),
			&cli.StringFlag{Name: "check-sql", Usage: "SQL that must return at least one row on the recovered server, e.g. 'SELECT 1 FROM orders LIMIT 1'", Destination: &opts.CheckSQL},
			&cli.StringFlag{Name: "check-db", Value: "postgres", Usage: "database --check-sql runs in", Destination: &opts.CheckDB},
			&cli.StringFlag{Name: "db-user", Usage: "database superuser the checks connect as (default: the server's OS user, initdb's default)", Destination: &opts.DBUser},
			&cli.StringFlag{Name: "amcheck", Value: "on", Usage: "pg_amcheck on the recovered cluster: on, full (adds --heapallindexed, slower) or off", Destination: &opts.Amcheck},
			&cli.BoolFlag{Name: "keep", Usage: "keep the scratch directory (the server is stopped) instead of removing it", Destination: &opts.Keep},
			jsonFlag("print the drill record as JSON (the format stored under drills/)", &opts.JSON),
			&cli.StringFlag{Name: "scratch-dir", Usage: "directory to restore under, in a new walvault-drill-* directory (default: $TMPDIR or /tmp); needs room for the whole cluster", EnvVars: []string{"WALVAULT_SCRATCH_DIR"}, Destination: &opts.ScratchDir},
			&cli.StringFlag{Name: "pg-bin", Usage: "directory with PostgreSQL's programs (default: /usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin, then pg_config --bindir)", EnvVars: []string{"WALVAULT_PG_BIN"}, Destination: &opts.PGBin},
			&cli.StringFlag{Name: "owner", Usage: "OS user the temporary server runs as when walvault runs as root (default: postgres)", Destination: &opts.Owner},
			&cli.IntFlag{Name: "port", Usage: "TCP port on 127.0.0.1 for the temporary server (default: a free one)", Destination: &opts.Port},
			&cli.StringSliceFlag{Name: "server-setting", Usage: "NAME=VALUE for the temporary server's command line, e.g. shared_buffers=128MB on a smaller host (repeatable)", Destination: &opts.ServerSettings},
			&cli.DurationFlag{Name: "recovery-timeout", Value: drill.DefaultRecoveryTimeout, Usage: "give up when recovery takes longer", Destination: &opts.RecoveryTimeout},
		)...),
		Action: repoAction(&opts, drillAction),
	}
}

func (o *drillOptions) precheck(c *cli.Context) error {
	if err := noArgs(c, "drill takes no arguments"); err != nil {
		return err
	}
	var err error
	if o.recoveryTarget, err = o.target(c); err != nil {
		return usageError{err}
	}
	switch o.Amcheck {
	case drill.AmcheckOn, drill.AmcheckFull, drill.AmcheckOff:
	default:
		return usagef("--amcheck %q: want on, full or off", o.Amcheck)
	}
	if o.recoveryTarget.Action == "shutdown" {
		return usagef("--target-action shutdown stops the server at the target, leaving nothing to check: use promote (the default) or pause")
	}
	if p := o.Port; p < 0 || p > 65535 {
		return usagef("--port %d: want a TCP port from 1 to 65535 (or none for a free one)", p)
	}
	o.exe, err = walvaultBinary()
	return err
}

// drillAction runs the drill; Ctrl-C and SIGTERM cancel the session: the
// drill stops the server and cleans up.
func drillAction(c *cli.Context, opts *drillOptions, s *session) error {
	ctx := s.ctx
	configYAML, err := opts.restoreConfig.yaml()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()

	rec, err := drill.Run(ctx, s.b, drill.Options{
		BackupRef:       opts.Backup,
		Target:          opts.recoveryTarget,
		ScratchDir:      opts.ScratchDir,
		Keep:            opts.Keep,
		PGBinDir:        opts.PGBin,
		Identities:      opts.Identities,
		Owner:           opts.Owner,
		DBUser:          opts.DBUser,
		DBName:          opts.CheckDB,
		CheckSQL:        opts.CheckSQL,
		Amcheck:         opts.Amcheck,
		Port:            opts.Port,
		RestoreCommand:  func(dataDir string) string { return drillRestoreCommandLine(opts.exe, dataDir) },
		ConfigFile:      restoreConfigFile,
		ConfigYAML:      configYAML,
		ServerSettings:  opts.ServerSettings.Value(),
		RecoveryTimeout: opts.RecoveryTimeout,
		Host:            host,
		Version:         walvaultVersion(),
		Log:             s.log,
		Progress:        s.out,
	})
	if rec != nil {
		if opts.JSON {
			if jerr := writeJSON(c.App.Writer, rec); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printDrill(c.App.Writer, rec)
		}
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("drill interrupted; the temporary server was stopped and the scratch directory removed: %w", err)
	}
	return err
}

// printDrill writes the human summary: the verdict, the RTO line, the RPO
// line, the checks and where the record went.
func printDrill(w io.Writer, rec *drill.Record) {
	switch {
	case rec.OK:
		fmt.Fprintf(w, "drill OK: backup %s recovered to %s\n", rec.BackupID, rec.Target)
	case rec.BackupID != "":
		fmt.Fprintf(w, "drill FAILED: backup %s, target %s\n", rec.BackupID, rec.Target)
	default:
		fmt.Fprintf(w, "drill FAILED\n")
	}
	if rec.RTOSeconds > 0 {
		fmt.Fprintf(w, "RTO %s (restore %s of %s + start and replay %s)\n",
			seconds(rec.RTOSeconds), seconds(rec.RestoreSeconds), units.Bytes(rec.RestoredBytes), seconds(rec.ReplaySeconds))
	}
	if rec.RPOSeconds != nil {
		fmt.Fprintf(w, "RPO %s (newest archived WAL %s pushed at %s)\n", seconds(*rec.RPOSeconds), rec.NewestWAL, rec.NewestWALPushedAt.Format(time.RFC3339))
	}
	if rec.RecoveredTo != nil {
		fmt.Fprintf(w, "last transaction replayed: committed at %s (replay ended at %s)\n", rec.RecoveredTo.Format(time.RFC3339Nano), rec.ReplayEndLSN)
	}
	for _, ch := range rec.Checks {
		fmt.Fprintf(w, "  %-8s %s: %s\n", strings.ToUpper(ch.Status), ch.Name, ch.Detail)
	}
	if rec.Key != "" {
		fmt.Fprintf(w, "record: %s\n", rec.Key)
	}
}

// seconds prints a duration given in seconds: 850ms, 12.3s, 4m5s.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// drillRestoreCommandLine is restoreCommandLine for a drill's server: its
// wal-fetch runs the drill guard (--drill-scratch), which refuses WAL
// that would make the server write outside the scratch directory.
func drillRestoreCommandLine(exe, dataDir string) string {
	return crashBySignal + shellQuote(exe) + " wal-fetch --config " + shellQuote(filepath.Join(dataDir, restoreConfigFile)) +
		" --drill-scratch " + shellQuote(drill.ScratchDir(dataDir)) + " %f %p"
}
