package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/retention"
)

// backupMarkOptions are the settings and flags of backup-mark.
type backupMarkOptions struct {
	Config
	totalTimeout
	Keep, NoKeep bool
	id           string // the argument
}

func (o *backupMarkOptions) bind(b *binder) {
	bindTimeout(b, &o.Timeout, "deadline for the whole command, retries included")
}

func backupMarkCommand() *cli.Command {
	var opts backupMarkOptions
	return &cli.Command{
		Name:      "backup-mark",
		Usage:     "exempt a backup from retention (--keep), or put it back under retention (--no-keep)",
		ArgsUsage: "ID",
		Description: `A backup marked keep is never deleted by delete, whatever the policy, and
neither is any WAL from its start on (so it can still be restored to any later
point). It does not count toward REDUNDANCY n.

Objects are never rewritten: each mark is a new small object,
backups/<id>/marks/<UTC time>-keep or -nokeep, and the newest one counts.

ID may be LATEST: the newest DONE backup restore would take.

Examples:
   walvault backup-mark LATEST --keep
   walvault backup-mark 20261231T020000Z --keep
   walvault backup-mark 20261231T020000Z --no-keep`,
		Flags: settingFlags(&opts,
			&cli.BoolFlag{Name: "keep", Usage: "exempt the backup from retention", Destination: &opts.Keep},
			&cli.BoolFlag{Name: "no-keep", Usage: "put the backup back under retention", Destination: &opts.NoKeep},
		),
		Action: repoAction(&opts, backupMark),
	}
}

func (o *backupMarkOptions) precheck(c *cli.Context) error {
	// "backup-mark ID --keep", as the README and --help spell it, reaches
	// here as "backup-mark --keep ID" (normalizeArgs).
	args := c.Args().Slice()
	if len(args) != 1 {
		return usagef("backup-mark takes one backup id (see backup-list), then --keep or --no-keep")
	}
	o.id = args[0]
	if err := repository.ValidateBackupID(o.id); err != nil && o.id != repository.LatestRef {
		return usageError{err}
	}
	if o.Keep == o.NoKeep {
		return usagef("backup-mark needs exactly one of --keep and --no-keep")
	}
	return nil
}

func backupMark(c *cli.Context, opts *backupMarkOptions, s *session) error {
	id, keep := opts.id, opts.Keep
	if id == repository.LatestRef {
		// The newest restorable backup, as restore --backup LATEST takes it:
		// the one to keep before a risky change.
		backups, err := repository.ListBackups(s.ctx, s.b)
		if err != nil {
			return err
		}
		bi, err := repository.FindBackup(backups, id)
		if err != nil {
			return err
		}
		id = bi.ID
	}
	host, _ := os.Hostname()
	res, err := retention.SetKeep(s.ctx, s.b, id, keep, time.Now(), repository.MarkOptions{Host: host, Walvault: walvaultVersion()})
	if err != nil {
		return err
	}
	w := c.App.Writer
	if !res.Changed {
		if keep {
			fmt.Fprintf(w, "backup %s is already marked keep\n", id)
		} else {
			fmt.Fprintf(w, "backup %s is not marked keep: retention applies to it\n", id)
		}
		return nil
	}
	s.log.Debug("keep mark written", "backup_id", id, "key", res.Mark.Key)
	if keep {
		fmt.Fprintf(w, "backup %s marked keep: delete leaves it, and the WAL from its start on, in place (undo with: walvault backup-mark %s --no-keep)\n", id, id)
	} else {
		fmt.Fprintf(w, "backup %s is no longer marked keep: retention applies to it again\n", id)
	}
	return nil
}
