package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/verify"
)

// verifyOptions are the settings and flags of verify.
type verifyOptions struct {
	Config
	decryptSettings
	Full, JSON bool
	Timeout    time.Duration // bounds each storage call (callTimeout)
}

func (o *verifyOptions) bind(b *binder) {
	o.decryptSettings.bind(b)
	bindTimeout(b, &o.Timeout, "deadline of each read of the repository (a listing, opening an object), retries included")
}

func verifyCommand() *cli.Command {
	var opts verifyOptions
	return &cli.Command{
		Name:  "verify",
		Usage: "check the repository's integrity: WAL continuity, complete backups, nothing hidden; --full re-reads every object",
		Description: `Lists the repository once and reports, as "OK: ..." and "PROBLEM: ..." lines
and a summary:

   - WAL continuity on every timeline, from the oldest backup's start to the
     newest archived segment, following timeline history files (a branch
     point is no gap); missing segments are named
   - every backup: its manifest parses, and every part and PostgreSQL's
     backup_manifest are there with the size the manifest records;
     INCOMPLETE backups (no manifest) are warnings
   - objects hidden behind S3 delete markers (fix: walvault repair)
   - objects outside walvault's layout (warnings)
   - wal-receive's partials (partial/): how many, the newest per timeline and
     its end LSN; partials whose segment is archived complete are superseded
     (warnings: walvault delete removes them). A partial counts for
     continuity only as the last segment of its timeline, never as a filler
     of a gap: recovery stops at a partial's end.
   - incomplete uploads older than an hour (warnings: space, not data):
     S3 multipart uploads an interrupted push neither completed nor aborted,
     a file:// repository's temp files; walvault delete --confirm aborts them

--full also re-reads every WAL object and every backup part, and the newest
partial of each segment not archived complete (what wal-fetch would serve),
decompresses it and checks its size and sha256 (a few objects at a time;
memory stays small whatever the repository's size).

Exit codes: 0 no problem (warnings allowed), 1 problems found or verify could
not finish, 2 bad arguments or configuration. --json prints the report
documented in the README ("verify --json").`,
		Flags: settingFlags(&opts,
			&cli.BoolFlag{Name: "full", Usage: "re-read every object and check its size and sha256", Destination: &opts.Full},
			jsonFlag("print the report as JSON", &opts.JSON),
		),
		Action: repoAction(&opts, verifyRepository),
	}
}

func (o *verifyOptions) precheck(c *cli.Context) error {
	return noArgs(c, "verify takes no arguments")
}

func verifyRepository(c *cli.Context, opts *verifyOptions, s *session) error {
	// KeptBackups stays nil (every backup anchors WAL continuity) until
	// the retention policy (retain) can name the kept set here.
	report, err := verify.Run(s.ctx, s.b, verify.Options{Full: opts.Full, Identities: opts.Identities, UploadAge: storage.StaleUploadAge, Log: s.log, Progress: s.out})
	if err != nil {
		return fmt.Errorf("verify could not finish: %w", err)
	}
	if opts.JSON {
		err = report.WriteJSON(c.App.Writer)
	} else {
		err = report.WriteText(c.App.Writer)
	}
	if err != nil {
		return err
	}
	if !report.OK {
		return fmt.Errorf("verify found problems in %s (%d)", s.b.Location(), report.Summary.Problems)
	}
	return nil
}
