package main

import (
	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/info"
)

// infoOptions are the settings and flags of info.
type infoOptions struct {
	Config
	totalTimeout
	decryptSettings
	JSON bool
}

func (o *infoOptions) bind(b *binder) {
	o.decryptSettings.bind(b)
	bindTimeout(b, &o.Timeout, "deadline for the whole listing, retries included")
}

func (o *infoOptions) precheck(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("info takes at most one argument, a backup id or LATEST")
	}
	return nil
}

func infoCommand() *cli.Command {
	var opts infoOptions
	return &cli.Command{
		Name:      "info",
		Usage:     "show the recovery window per timeline, or one backup in full",
		ArgsUsage: "[BACKUP]",
		Description: `Without an argument: per timeline, the recovery window (the earliest and
latest point a restore can reach: from the end of the oldest DONE backup to the
newest archived WAL, with every gap that breaks it), the WAL archived and its
rate over the last 24 hours, the newest backup and the newest drill.

With a backup id (or LATEST): that backup in full: type, LSNs, times,
timeline, sizes, parts, tablespaces, keep marks, Object Lock expiry, and the
WAL it needs and whether all of it is in the repository.

One listing of the repository. --json prints the schema documented in the
README ("info --json"); fields are only ever added.`,
		Flags:  settingFlags(&opts, jsonFlag("print JSON instead of text", &opts.JSON)),
		Action: repoAction(&opts, runInfo),
	}
}

func runInfo(c *cli.Context, opts *infoOptions, s *session) error {
	if ref := c.Args().First(); ref != "" {
		bk, err := info.Describe(s.ctx, s.b, ref, info.Options{})
		if err != nil {
			return err
		}
		if opts.JSON {
			return writeJSON(c.App.Writer, bk)
		}
		return info.WriteBackupText(c.App.Writer, bk)
	}
	sum, err := info.Summarize(s.ctx, s.b, info.Options{Identities: opts.Identities})
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(c.App.Writer, sum)
	}
	return info.WriteSummaryText(c.App.Writer, sum)
}
