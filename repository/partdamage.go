package repository

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/storage"
)

// PartDamage is what the listing shows wrong with the objects a backup's
// manifest records (its parts and PostgreSQL's backup_manifest): one is
// missing, or of another size than recorded, e.g. a newer version
// uploaded over it. Restore would fail on it, so the backup is DAMAGED
// although its manifest is sound.
type PartDamage struct {
	BackupID string
	// Key is the first object at fault, Want the size its manifest
	// records, Size the size listed (-1: missing).
	Key  string
	Want int64
	Size int64
	// More counts the backup's other objects at fault.
	More int
	// missing counts the objects at fault that are not listed at all.
	missing int
	// VersionsErr says why no version hidden behind a delete marker could
	// be looked for (the credentials may not list versions): a missing
	// object may then only be hidden.
	VersionsErr error
}

func (d *PartDamage) Error() string {
	var s string
	if d.Size < 0 {
		s = fmt.Sprintf("part %s is missing (its manifest records %d bytes)", d.Key, d.Want)
	} else {
		s = fmt.Sprintf("part %s has %d bytes, its manifest says %d", d.Key, d.Size, d.Want)
	}
	if d.More > 0 {
		s += fmt.Sprintf(", and %d more of its objects are missing or of another size", d.More)
	}
	if d.VersionsErr != nil {
		s += fmt.Sprintf(" (versions hidden behind delete markers could not be looked for: %v)", d.VersionsErr)
	}
	return s
}

// Remedy says how the object at fault may be got back, for messages that
// go on with what to run next.
func (d *PartDamage) Remedy() string {
	if d.Size >= 0 {
		return fmt.Sprintf("if %s was overwritten, its original is an older version in the bucket's version history (kept there under Object Lock): delete the newer version, or copy the original over it, with the S3 API (aws s3api list-object-versions --bucket <bucket> --prefix <the repository prefix>/%s, then delete-object --version-id)", d.Key, d.Key)
	}
	restore := fmt.Sprintf("if the bucket keeps versions, copy the last version of %s back over the key with the S3 API (aws s3api list-object-versions --bucket <bucket> --prefix <the repository prefix>/%s, then copy-object --copy-source '<bucket>/<the repository prefix>/%s?versionId=<id>')", d.Key, d.Key, d.Key)
	if d.VersionsErr != nil {
		return fmt.Sprintf("if walvault verify reports %s hidden behind a delete marker, walvault repair makes it visible again; otherwise, %s", d.Key, restore)
	}
	// A delete marker would have been found: walvault repair, which only
	// removes those, cannot help.
	return fmt.Sprintf("no delete marker hides %s, so walvault repair cannot bring it back; %s", d.Key, restore)
}

// IsPartDamaged reports whether err (a BackupInfo's Damage) says an object
// of the backup is missing or of another size, rather than that its
// manifest is unusable: the manifest then still says what the backup needs.
func IsPartDamaged(err error) bool {
	var d *PartDamage
	return errors.As(err, &d)
}

// recordedObjects are the objects m records with their sizes: the parts
// and PostgreSQL's backup_manifest (a key left empty is the manifest's
// fault, for verify to report, not the listing's).
func recordedObjects(m *BackupManifest) []BackupPart {
	var out []BackupPart
	if m.PGManifest.Key != "" {
		out = append(out, m.PGManifest)
	}
	for _, a := range m.Archives {
		for _, p := range a.Parts {
			if p.Key != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// partDamage compares the objects m records with sizes (key: stored
// size), nil when each is there with its recorded size.
func partDamage(m *BackupManifest, sizes map[string]int64) *PartDamage {
	var d *PartDamage
	for _, p := range recordedObjects(m) {
		size, ok := sizes[p.Key]
		switch {
		case ok && size == p.StoredSize:
			continue
		case !ok:
			size = -1
		}
		if d == nil {
			d = &PartDamage{BackupID: m.ID, Key: p.Key, Want: p.StoredSize, Size: size}
		} else {
			d.More++
		}
		if size < 0 {
			d.missing++
		}
	}
	return d
}

// checkParts sets PartsErr on each backup with a manifest whose objects
// the listing does not show as recorded. A folder that looks damaged is
// looked at again before it is called so: listed once more, since a part
// written as the first listing passed its key (backup_manifest comes
// near the end of a backup-push) would be missed while the manifest,
// written last, is listed; and its versions hidden behind delete markers
// are asked for, since restore reads through those (storage.ReadHidden),
// as verify counts such a part present.
func (inv *Inventory) checkParts(ctx context.Context, b storage.Backend) error {
	v, versioned := storage.AsVersioned(b)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(smallReads)
	for _, bk := range inv.Backups {
		if bk.Manifest == nil {
			continue
		}
		sizes := make(map[string]int64, len(bk.Objects))
		for _, oi := range bk.Objects {
			sizes[oi.Key] = oi.Size
		}
		if partDamage(bk.Manifest, sizes) == nil {
			continue
		}
		g.Go(func() error {
			prefix := BackupPrefix(bk.ID)
			sizes := map[string]int64{}
			err := b.List(gctx, prefix, func(oi storage.ObjectInfo) error {
				sizes[oi.Key] = oi.Size
				return nil
			})
			if err != nil {
				return fmt.Errorf("list %s in %s again: %w", prefix, b.Location(), err)
			}
			var versionsErr error
			if versioned {
				err := v.ListHidden(gctx, prefix, func(h storage.HiddenObject) error {
					if _, visible := sizes[h.Key]; !visible {
						sizes[h.Key] = h.Size
					}
					return nil
				})
				switch {
				case err != nil && storage.IsPermanent(err):
					// Restore cannot read through the markers either.
					versionsErr = err
				case err != nil:
					return fmt.Errorf("list the hidden objects of %s in %s: %w", prefix, b.Location(), err)
				}
			}
			if d := partDamage(bk.Manifest, sizes); d != nil {
				if d.missing > 0 {
					d.VersionsErr = versionsErr
				}
				bk.PartsErr = d
			}
			return nil
		})
	}
	return g.Wait()
}
