package check

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// NameDecryption is the check that the configured identity file decrypts
// what a restore would need.
const NameDecryption = "decryption"

// checkDecryption proves, in an encrypted repository and with an identity
// file configured, that the identity decrypts the newest DONE backup (the
// age header of every part is opened, which needs the right key) and the
// WAL since its start (every object's recipients include a key of the
// identity, read for a bounded sample; the newest is opened too). An unconfigured identity checks
// nothing: the archiving host has none, by design.
func (c *checker) checkDecryption(ctx context.Context) []Result {
	ids := c.opts.Identities
	if ids == nil || !c.identityLoaded || c.identity.id.Encryption == "" {
		return nil
	}
	if c.backups == nil || c.backups.err != nil || c.backups.newest == nil || c.backups.newest.Manifest == nil {
		return nil // the backup checks said why
	}
	m := c.backups.newest.Manifest
	// An incremental restores with the backups it builds on: each of
	// them must open too (a key rotated between them is the usual miss).
	chain, err := repository.Chain(c.backups.done, m.ID)
	if err != nil {
		return []Result{failed(NameDecryption, "%v", err)}
	}
	var parts []repository.BackupPart
	for _, bi := range chain {
		own := []repository.BackupPart{bi.Manifest.PGManifest}
		for _, a := range bi.Manifest.Archives {
			own = append(own, a.Parts...)
		}
		for _, p := range own {
			if err := c.openEncrypted(ctx, p.Key, p.Meta()); err != nil {
				if bi.ID != m.ID {
					return []Result{failed(NameDecryption, "backup %s, which the newest backup %s builds on: %v", bi.ID, m.ID, err)}
				}
				return []Result{failed(NameDecryption, "backup %s: %v", m.ID, err)}
			}
		}
		parts = append(parts, own...)
	}
	start, err := wal.Classify(m.StartWAL)
	if err != nil {
		return []Result{failed(NameDecryption, "backup %s has no valid start segment %q", m.ID, m.StartWAL)}
	}
	var keys []string
	err = c.b.List(ctx, repository.WALPrefix, func(o storage.ObjectInfo) error {
		k, ok := repository.ParseKey(o.Key)
		if ok && (k.Kind == repository.KeySegment || k.Kind == repository.KeyWALPartial) && k.WAL.Timeline >= start.Timeline && k.WAL.Segment.String()[8:] >= start.Segment.String()[8:] {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return []Result{failed(NameDecryption, "list the WAL in %s: %v", c.b.Location(), err)}
	}
	slices.Sort(keys)
	// A bounded sample of metadata reads, not one per WAL file
	// (repository.WALRecipientRuns says what it can miss).
	runs, _, err := repository.WALRecipientRuns(ctx, c.b, keys)
	if err != nil {
		return []Result{failed(NameDecryption, "%v", err)}
	}
	for _, run := range runs {
		key := keys[run.First]
		if run.Gone {
			continue // deleted since the listing (retention)
		}
		if !run.Encrypted {
			return []Result{failed(NameDecryption, "%s is stored in the clear in an encrypted repository", key)}
		}
		held := false
		for _, r := range run.Recipients {
			held = held || ids.Holds(r)
		}
		if !held {
			return []Result{failed(NameDecryption, "%s is encrypted to %v; the identity file %s holds %v: a restore from backup %s would stop there", key, run.Recipients, ids.Path(), ids.IDs(), m.ID)}
		}
	}
	if n := len(runs); n > 0 && !runs[n-1].Gone {
		// Its run's metadata names the keys it is encrypted to.
		if err := c.openEncrypted(ctx, keys[runs[n-1].Last], runs[n-1].Meta); err != nil {
			return []Result{failed(NameDecryption, "%v", err)}
		}
	}
	what := "the newest backup " + m.ID
	if len(chain) > 1 {
		what += fmt.Sprintf(" and the %s it builds on", units.Plural(len(chain)-1, "backup"))
	}
	return []Result{ok(NameDecryption, "the identity file %s decrypts %s (%d objects opened) and holds a key of each of the %d WAL files since its start", ids.Path(), what, len(parts), len(keys))}
}

// openEncrypted opens the age header of one object: only the right key
// unwraps it.
func (c *checker) openEncrypted(ctx context.Context, key string, meta map[string]string) error {
	if !repository.EncryptedObject(meta) {
		return fmt.Errorf("%s is stored in the clear in an encrypted repository", key)
	}
	rc, _, err := c.b.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	r, err := c.opts.Identities.NewReader(rc, repository.ObjectRecipients(meta))
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
