package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/retention"
)

func backupMarkCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup-mark",
		Usage:     "exempt a backup from retention (--keep), or put it back under retention (--no-keep)",
		ArgsUsage: "ID",
		Description: `A backup marked keep is never deleted by delete, whatever the policy, and
neither is any WAL from its start on (so it can still be restored to any later
point). It does not count toward REDUNDANCY n.

Objects are never rewritten: each mark is a new small object,
backups/<id>/marks/<UTC time>-keep or -nokeep, and the newest one counts.

Examples:
   walvault backup-mark 20261231T020000Z --keep
   walvault backup-mark 20261231T020000Z --no-keep`,
		Flags: append(configFlags(),
			&cli.BoolFlag{Name: "keep", Usage: "exempt the backup from retention"},
			&cli.BoolFlag{Name: "no-keep", Usage: "put the backup back under retention"},
		),
		Action: backupMark,
	}
}

func backupMark(c *cli.Context) error {
	args, err := interspersedFlags(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("backup-mark takes one backup id (see backup-list), then --keep or --no-keep")
	}
	id := args[0]
	if err := repository.ValidateBackupID(id); err != nil {
		return usageError{err}
	}
	if c.Bool("keep") == c.Bool("no-keep") {
		return usagef("backup-mark needs exactly one of --keep and --no-keep")
	}
	keep := c.Bool("keep")
	s, err := startSession(c, withDeadline)
	if err != nil {
		return err
	}
	defer s.Close()
	log, ctx, b := s.log, s.ctx, s.b
	host, _ := os.Hostname()
	res, err := retention.SetKeep(ctx, b, id, keep, time.Now(), repository.MarkOptions{Host: host, Walvault: walvaultVersion()})
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
	log.Debug("keep mark written", "backup_id", id, "key", res.Mark.Key)
	if keep {
		fmt.Fprintf(w, "backup %s marked keep: delete leaves it, and the WAL from its start on, in place (undo with: walvault backup-mark %s --no-keep)\n", id, id)
	} else {
		fmt.Fprintf(w, "backup %s is no longer marked keep: retention applies to it again\n", id)
	}
	return nil
}

// interspersedFlags sets the flags that follow a positional argument
// ("backup-mark ID --keep"), which the flag parser leaves as arguments,
// and returns the positional arguments.
func interspersedFlags(c *cli.Context) ([]string, error) {
	bools := map[string]bool{}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], bools[n] = true, isBool
		}
	}
	var positional []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(positional, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, usagef("flag provided but not defined: %s", a)
		}
		switch {
		case hasValue:
		case bools[name]:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, usagef("flag needs an argument: %s", a)
		}
		if err := c.Set(name, value); err != nil {
			return nil, usagef("invalid value %q for flag %s: %v", value, a, err)
		}
	}
	return positional, nil
}
