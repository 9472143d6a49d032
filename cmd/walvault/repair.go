package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repair"
	"github.com/walvault/walvault/storage"
)

// repairOptions are the settings and flags of repair.
type repairOptions struct {
	Config
	DryRun bool
}

func repairCommand() *cli.Command {
	var opts repairOptions
	return &cli.Command{
		Name:  "repair",
		Usage: "make walvault's objects hidden behind S3 delete markers visible again",
		Description: `In a versioned bucket (every Object Lock bucket is one), a DELETE without a
version id does not remove an object: S3 answers with success and hides the
object behind a delete marker, while its locked version survives. Anyone with
the host's credentials can do that; restore and wal-fetch still read such
objects (with a warning), and repair removes the markers so every tool sees
the repository whole again.

repair lists walvault's own hidden objects (under wal/ and backups/, and
walvault.json), removes their delete markers and prints one line per key and
a summary. With --dry-run it only lists them.

A repository on storage that keeps no old versions (file://, a bucket without
versioning) has nothing hidden: repair says so and exits 0.

Exit codes: 0 nothing is hidden (any more); 1 something is still hidden (with
--dry-run: something is hidden) or could not be repaired; 2 bad arguments or
configuration. On AWS, removing a delete marker needs s3:DeleteObjectVersion,
and listing them s3:ListBucketVersions.`,
		Flags:  settingFlags(&opts, &cli.BoolFlag{Name: "dry-run", Usage: "list the hidden objects, change nothing", Destination: &opts.DryRun}),
		Action: repoAction(&opts, repairAction),
	}
}

func (o *repairOptions) precheck(c *cli.Context) error {
	return noArgs(c, "repair takes no arguments")
}

func repairAction(c *cli.Context, opts *repairOptions, s *session) error {
	w, location := c.App.Writer, s.b.Location()
	rep, err := repair.Run(s.ctx, s.b, repair.Options{
		DryRun: opts.DryRun,
		Progress: func(r repair.Result) {
			switch r.Outcome {
			case repair.Unhidden:
				fmt.Fprintf(w, "unhidden  %s\n", describeHidden(r.Object))
			case repair.Gone:
				// Visible again, or its versions are gone, since the
				// listing: the second listing tells.
				fmt.Fprintf(w, "skipped   %s: no longer hidden (%v)\n", r.Object.Key, r.Err)
			default:
				fmt.Fprintf(w, "FAILED    %s: %v\n", describeHidden(r.Object), r.Err)
			}
		},
	})
	switch {
	case err != nil:
		return err
	case !rep.Versioned:
		fmt.Fprintf(w, "%s keeps no old versions of objects, so nothing can hide behind a delete marker: nothing to repair\n", location)
		return nil
	case len(rep.Hidden) == 0:
		fmt.Fprintf(w, "nothing is hidden in %s: nothing to repair\n", location)
		return nil
	case rep.DryRun:
		for _, h := range rep.Hidden {
			fmt.Fprintf(w, "hidden    %s\n", describeHidden(h))
		}
		fmt.Fprintf(w, "%s hidden behind delete markers in %s; nothing was changed (--dry-run)\n", objects(len(rep.Hidden)), location)
		return fmt.Errorf("%s hidden in %s: run walvault repair without --dry-run to make them visible again", objects(len(rep.Hidden)), location)
	case rep.Clean():
		fmt.Fprintf(w, "made %s visible again; nothing is hidden in %s any more\n", objects(rep.Unhidden), location)
		return nil
	}
	for _, h := range rep.Left {
		fmt.Fprintf(w, "still hidden  %s\n", describeHidden(h))
	}
	return fmt.Errorf("made %s visible again, but %d failed and %s still hidden in %s: see the lines above; the credentials need s3:ListBucketVersions and s3:DeleteObjectVersion, then run walvault repair again",
		objects(rep.Unhidden), rep.Failed, objects(len(rep.Left)), location)
}

// describeHidden is one line about a hidden object: key, size, version,
// when it was hidden and how long its lock lasts.
func describeHidden(h storage.HiddenObject) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s, version %s", h.Key, units.Bytes(h.Size), h.VersionID)
	if !h.HiddenAt.IsZero() {
		fmt.Fprintf(&b, ", hidden at %s", h.HiddenAt.UTC().Format(time.RFC3339))
	}
	if !h.RetainUntil.IsZero() {
		fmt.Fprintf(&b, ", locked until %s", h.RetainUntil.UTC().Format(time.RFC3339))
	}
	b.WriteString(")")
	return b.String()
}

func objects(n int) string {
	if n == 1 {
		return "1 object"
	}
	return fmt.Sprintf("%d objects", n)
}
