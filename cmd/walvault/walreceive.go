package main

import (
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/receive"
)

func walReceiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "wal-receive",
		Usage: "stream WAL over a replication slot into the repository (sub-second RPO)",
		Description: `A long-running PostgreSQL physical replication client:

   walvault wal-receive --slot walvault --create-slot --pg-conn 'host=db user=walvault'

It streams WAL from the slot, stores each completed segment exactly as
wal-push does (so both can run side by side into one repository), and every
--max-lag uploads the open segment received so far as a new write-once
partial object (partial/TTTTTTTT/<segment>/<end LSN>.lz4). The slot is told
only the position that is durable in the repository. wal-fetch serves the
newest partial, zero-padded, when PostgreSQL asks for a segment that is not
archived, so a restore reaches the last transaction received.

The role needs the REPLICATION attribute and pg_hba.conf must allow it to
connect to the special database 'replication'. SIGTERM or Ctrl-C uploads
what was received and exits 0. A lost connection is retried with backoff.`,
		Flags: append(configFlags(),
			&cli.StringFlag{Name: "slot", Usage: "physical replication slot to stream from (required)", EnvVars: []string{"WALVAULT_SLOT"}},
			&cli.BoolFlag{Name: "create-slot", Usage: "create the slot (PHYSICAL RESERVE_WAL) when it does not exist"},
			&cli.DurationFlag{Name: "max-lag", Value: time.Second, Usage: "upload the open segment at most this long after WAL arrived"},
			&cli.StringFlag{Name: "spool-dir", Usage: "directory for the segment being received (default: $TMPDIR/walvault-receive-<slot>)"},
		),
		Action: walReceive,
	}
}

func walReceive(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("wal-receive takes no arguments")
	}
	if c.String("slot") == "" {
		return usagef("wal-receive needs --slot NAME, a physical replication slot (add --create-slot to create it)")
	}
	if c.Duration("max-lag") <= 0 {
		return usagef("--max-lag must be positive, such as 1s")
	}
	// No deadline: it runs until stopped.
	s, err := startSession(c, noDeadline)
	if err != nil {
		return err
	}
	defer s.Close()
	cfg, log, ctx, b := s.cfg, s.log, s.ctx, s.b
	host, _ := os.Hostname()
	err = receive.Run(ctx, b, receive.Options{
		ConnString: cfg.PGConn,
		Slot:       c.String("slot"),
		CreateSlot: c.Bool("create-slot"),
		MaxLag:     c.Duration("max-lag"),
		SpoolDir:   c.String("spool-dir"),
		Timeout:    cfg.Timeout,
		Push: archive.Options{
			Compression: cfg.Compression,
			Host:        host,
			Version:     walvaultVersion(),
			Lock:        lockPolicy(cfg),
			Log:         log,
		},
		Log: log,
	})
	if err != nil {
		return lockHint(err, cfg, b.Location())
	}
	log.Info("wal-receive stopped")
	return nil
}
