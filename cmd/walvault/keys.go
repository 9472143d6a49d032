package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/repository"
)

// keysOptions are the settings and flags of keys.
type keysOptions struct {
	Config
	JSON bool
}

func (o *keysOptions) precheck(c *cli.Context) error {
	return noArgs(c, "keys takes no arguments")
}

func keysCommand() *cli.Command {
	var opts keysOptions
	return &cli.Command{
		Name:  "keys",
		Usage: "list the encryption keys the repository's objects are encrypted to, and what each decrypts",
		Description: `For an encrypted repository (see the README's "Encryption"): every recipient
key seen, by its key id (age: and 16 hex digits of the SHA-256 of the public
key, as age-keygen -y prints it), with the backups and the runs of WAL files
encrypted to it. An old key can be destroyed once no backup you keep and no
WAL from the oldest kept backup's start is listed under it alone.

It needs no identity: it reads manifests, one listing, and the metadata of
a bounded sample of WAL objects (an S3 listing carries no metadata): keys
change only at rotations, so the WAL's ends are read and each stretch whose
ends differ is halved until the switch is found, about 2 + 2 x switches x
log2(WAL files) requests. A key used only inside a stretch whose two ends
agree (a rotation there and back between sampled objects) is not seen.`,
		Flags:  settingFlags(&opts, jsonFlag("print JSON instead of text", &opts.JSON)),
		Action: repoAction(&opts, runKeys),
	}
}

func runKeys(c *cli.Context, opts *keysOptions, s *session) error {
	id, err := repository.LoadIdentity(s.ctx, s.b)
	if err != nil {
		return err
	}
	uses, reads, err := repository.RecipientUses(s.ctx, s.b)
	if err != nil {
		return err
	}
	inUse, err := repository.RecipientsInUse(s.ctx, s.b, id)
	if err != nil {
		return err
	}
	s.log.Debug("WAL keys found by bisection", "metadata_reads", reads)
	if opts.JSON {
		return writeJSON(c.App.Writer, map[string]any{"encryption": id.Encryption, "created_with": id.Recipients, "recorded": inUse, "keys": uses})
	}
	w := c.App.Writer
	if id.Encryption == "" {
		fmt.Fprintf(w, "repository %s stores objects in the clear\n", s.b.Location())
		return nil
	}
	fmt.Fprintf(w, "repository %s is encrypted (%s); created with %s\n", s.b.Location(), id.Encryption, strings.Join(id.Recipients, ", "))
	fmt.Fprintf(w, "recorded keys (walvault.json and %s): %s\n", repository.RecipientsPrefix, strings.Join(inUse, ", "))
	for _, u := range uses {
		fmt.Fprintf(w, "%s\n  backups: %d", u.KeyID, len(u.Backups))
		if len(u.Backups) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(u.Backups, ", "))
		}
		fmt.Fprintln(w)
		for _, r := range u.WALRanges {
			fmt.Fprintf(w, "  WAL: %s to %s (%d files)\n", r.First, r.Last, r.Files)
		}
	}
	return nil
}
