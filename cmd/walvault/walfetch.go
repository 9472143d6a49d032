package main

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/restore"
)

func walFetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "wal-fetch",
		Usage:     "restore one WAL file from the archive (restore_command)",
		ArgsUsage: "NAME DEST",
		Description: `Use it as PostgreSQL's restore_command:

   restore_command = 'walvault wal-fetch %f %p'

It downloads NAME (%f), decompresses it, checks its size and sha256, and
writes it to DEST (%p) through a temporary file and a rename, so DEST is never
partial.

Exit codes, as PostgreSQL reads them:
   0    the file was restored
   1    the file is not in the archive: recovery moves on (this is how
        PostgreSQL learns it has replayed everything archived)
   200  no authoritative answer: the repository is unreachable, the object is
        corrupt, or the configuration is wrong. PostgreSQL stops recovery on
        any status above 125 rather than ending it early at the wrong point;
        fix the cause and start the server again to resume.`,
		Flags:  configFlags(),
		Action: walFetch,
	}
}

func walFetch(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("wal-fetch takes two arguments, the file name and the destination path (restore_command = 'walvault wal-fetch %%f %%p')")
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	log := newLogger(c.App.ErrWriter, cfg)
	ctx, cancel := context.WithTimeout(c.Context, cfg.Timeout)
	defer cancel()
	b, err := openBackend(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()

	start := time.Now()
	name := c.Args().Get(0)
	res, err := restore.Fetch(ctx, b, name, c.Args().Get(1), restore.FetchOptions{Compression: cfg.Compression, Log: log})
	if err != nil {
		return err
	}
	log.Info("restored", "segment", name, "key", res.Key, "bytes", res.RawSize, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}
