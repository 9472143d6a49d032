package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// ErrIdentityLost: walvault.json is absent (no version of it either) from
// a repository that holds walvault's WAL or backups, and they do not prove
// to be the writer's cluster's.
var ErrIdentityLost = errors.New("walvault.json is missing from a repository that holds walvault's objects")

// IdentityLostError is the refusal to create walvault.json over objects
// whose cluster is another one, or unknown.
type IdentityLostError struct {
	msg          string
	otherCluster bool // the objects record another cluster's system identifier
}

func (e *IdentityLostError) Error() string { return e.msg }
func (e *IdentityLostError) Is(target error) bool {
	return target == ErrIdentityLost || target == ErrWrongCluster && e.otherCluster
}

// claimScan bounds how many keys of each of wal/ and backups/ are looked
// at for evidence: one listing page.
const claimScan = 1000

// claimEvidence is what a repository without walvault.json holds.
type claimEvidence struct {
	anyKey      string   // some walvault object, for messages
	segmentKey  string   // the first archived segment, whose metadata names its cluster
	historyKey  string   // the first history or backup history file, for a repository without segments
	historyName string   // its file name in pg_wal
	histories   []string // every history or backup history file seen
	manifestKey string   // the first backup manifest
	backupID    string
}

// checkClaim runs before walvault.json is created. A repository with no
// object under wal/ or backups/ is new: "" and nil. One that holds some
// lost its walvault.json (a lifecycle rule, a sync --delete, a clean-up
// script): writing a new one for whichever cluster pushes first would let
// another cluster archive into this one's history and declare its
// backups foreign. The objects' own records decide: when the first
// segment's metadata and the first backup's manifest both name want's
// cluster (either one when the other is absent), the identity is
// recreated and checkClaim says from what; otherwise it refuses.
func checkClaim(ctx context.Context, b storage.Backend, want Identity) (string, error) {
	var ev claimEvidence
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return scanPrefix(gctx, b, WALPrefix, func(key string) bool {
			if ev.anyKey == "" {
				ev.anyKey = key
			}
			f, _, ok := ParseWALKey(key)
			if ok && f.Kind == wal.KindSegment {
				ev.segmentKey = key
				return true
			}
			if ok && (f.Kind == wal.KindTimelineHistory || f.Kind == wal.KindBackupHistory) {
				if ev.historyKey == "" {
					ev.historyKey, ev.historyName = key, f.String()
				}
				ev.histories = append(ev.histories, key)
			}
			return false
		})
	})
	var backupKey string
	g.Go(func() error {
		return scanPrefix(gctx, b, BackupsPrefix, func(key string) bool {
			if backupKey == "" {
				backupKey = key
			}
			id, name, ok := strings.Cut(strings.TrimPrefix(key, BackupsPrefix), "/")
			if ok && name == BackupManifestName && ValidateBackupID(id) == nil {
				ev.manifestKey, ev.backupID = key, id
				return true
			}
			return false
		})
	})
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("%s is absent from %s; looking for walvault objects already there failed: %w", IdentityKey, b.Location(), err)
	}
	if ev.anyKey == "" {
		ev.anyKey = backupKey
	}
	if ev.anyKey == "" {
		return "", nil // a new repository
	}

	var owners, proofs []string
	// Without a segment, a history file pushed from the cluster's data
	// directory records the cluster as well (archive.Push): a promoted
	// server archives its new timeline's history file first.
	walKey := ev.segmentKey
	if walKey == "" {
		walKey = ev.historyKey
	}
	keys := []string{walKey}
	if ev.segmentKey == "" && backupKey == "" {
		// History files alone: each must be this cluster's, or another
		// cluster's timeline would be adopted beside its own.
		keys = ev.histories
	}
	for _, key := range keys {
		if key == "" {
			continue
		}
		info, err := b.Stat(ctx, key)
		if err != nil {
			return "", fmt.Errorf("%s is absent from %s, which holds WAL; reading %s to learn its cluster failed: %w", IdentityKey, b.Location(), key, err)
		}
		id := info.Metadata[MetaSystemID]
		if id == "" && len(keys) > 1 {
			// One that records no cluster proves nobody's claim.
			owners, proofs = nil, nil
			ev.historyKey = key
			if f, _, ok := ParseWALKey(key); ok {
				ev.historyName = f.String()
			}
			break
		}
		if id != "" {
			owners, proofs = append(owners, id), append(proofs, key)
		}
	}
	if ev.manifestKey != "" {
		m, err := LoadBackupManifest(ctx, b, ev.backupID)
		switch {
		case err == nil && m.SystemID != "":
			owners, proofs = append(owners, m.SystemID), append(proofs, ev.manifestKey)
		case err != nil && !IsManifestDamaged(err):
			return "", fmt.Errorf("%s is absent from %s, which holds backups; reading %s to learn its cluster failed: %w", IdentityKey, b.Location(), ev.manifestKey, err)
		}
	}
	lost := fmt.Sprintf("%s is missing from %s (no version of it is left either), but the repository holds walvault's objects (%s)", IdentityKey, b.Location(), ev.anyKey)
	advice := "if the prefix is another cluster's, point this server at a repository prefix of its own; the cluster that wrote them writes walvault.json anew on its next push (or restore the file from a copy of the bucket). Nothing was written"
	historyOnly := ev.segmentKey == "" && backupKey == ""
	for i, owner := range owners {
		if owner != want.SystemID {
			if historyOnly {
				// No cluster can claim a prefix that holds another's
				// history file: say which to remove (explore24g F4).
				advice = fmt.Sprintf("it holds history files only, as a new prefix does once a promoted server archived its timeline's first, and two clusters pushed here: point this server at a repository prefix of its own, or, if the prefix is this server's, delete %s (the other cluster's) and let PostgreSQL archive again. Nothing was written", proofs[i])
			}
			return "", &IdentityLostError{msg: fmt.Sprintf("%s of another cluster: %s records system identifier %s, this server's is %s. Refusing to write a new %s that would claim them: %s", lost, proofs[i], owner, want.SystemID, IdentityKey, advice), otherCluster: true}
		}
	}
	if len(owners) == 0 {
		if historyOnly {
			advice = fmt.Sprintf("it holds history files only, as a new prefix does once a promoted server archived its timeline's first, and this one records no cluster (pushed by hand from outside a data directory, or by an older walvault). If it is this server's: delete %s, let PostgreSQL archive its next segment (which writes %s), then push the history file again by hand (walvault wal-push pg_wal/%s in the data directory). Nothing was written", ev.historyKey, IdentityKey, ev.historyName)
		}
		return "", &IdentityLostError{msg: fmt.Sprintf("%s, and none records which cluster wrote it. Refusing to write a new %s that could claim another cluster's WAL: %s", lost, IdentityKey, advice)}
	}
	if historyOnly {
		// Only history files this cluster pushed before its first
		// segment: a new repository, nothing was lost.
		return "", nil
	}
	return strings.Join(proofs, " and "), nil
}

// HoldsObjects says whether b holds any WAL or backup object.
func HoldsObjects(ctx context.Context, b storage.Backend) (bool, error) {
	for _, prefix := range []string{WALPrefix, BackupsPrefix} {
		var any bool
		if err := scanPrefix(ctx, b, prefix, func(string) bool { any = true; return true }); err != nil || any {
			return any, err
		}
	}
	return false, nil
}

// scanPrefix lists up to claimScan keys under prefix, stopping early once
// found returns true.
func scanPrefix(ctx context.Context, b storage.Backend, prefix string, found func(key string) bool) error {
	_, _, err := firstKey(ctx, b, prefix, "", claimScan, found)
	return err
}

// firstKey lists the keys under prefix after after ("": all of them) and
// returns the first that match accepts, looking at limit keys at most (0:
// no limit): a listing that stops as soon as it has its answer.
func firstKey(ctx context.Context, b storage.Backend, prefix, after string, limit int, match func(key string) bool) (string, bool, error) {
	errDone := errors.New("done")
	var found string
	n := 0
	err := storage.ListAfter(ctx, b, prefix, after, func(oi storage.ObjectInfo) error {
		n++
		if match(oi.Key) {
			found = oi.Key
			return errDone
		}
		if limit > 0 && n >= limit {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return found, found != "", nil
	}
	return "", false, err
}

// WarnRecreated says, when this call wrote walvault.json anew in a
// repository that had lost it, on what evidence: whatever deleted it may
// delete more.
func (id Identity) WarnRecreated(log *slog.Logger, location string) {
	if id.Recreated != "" && log != nil {
		log.Warn(IdentityKey+" was missing from the repository, which holds this cluster's objects: written anew; find out what deleted it (a lifecycle rule, a sync --delete, a clean-up script)",
			"repository", location, "proof", id.Recreated)
	}
}

// LostIdentity describes a listed repository without walvault.json that
// holds WAL or backups, so readers do not call it new; "" when it holds
// neither.
func (inv *Inventory) LostIdentity() string {
	if inv.WALFiles == 0 && len(inv.Backups) == 0 {
		return ""
	}
	holds := units.Plural(int(inv.WALFiles), "WAL file") + " and " + units.Plural(len(inv.Backups), "backup")
	if !inv.walScoped && len(inv.Backups) == 0 && inv.segmentFiles == 0 {
		// History and backup history files only: what a promoted server
		// or a backup archives before its first segment, which writes
		// walvault.json (explore25b F5).
		return fmt.Sprintf("%s has no %s yet: it holds %s and no WAL segment (timeline or backup history files, which PostgreSQL archives before a new prefix's first segment); the next segment wal-push stores writes it: check archive_command, or run SELECT pg_switch_wal()",
			inv.Location, IdentityKey, units.Plural(int(inv.WALFiles), "WAL file"))
	}
	if inv.walScoped {
		holds = units.Plural(len(inv.Backups), "backup") // the WAL was not listed
	}
	return fmt.Sprintf("%s has no %s, yet holds %s: its %s was deleted, with every version; nothing can be checked or restored without it. The next wal-push of the cluster that wrote them writes it anew (another cluster's is refused; a push that read it less than 5 minutes before trusts its cached copy, so allow that long), or put its last version back (a copy, or an older version of the key in the bucket)",
		inv.Location, IdentityKey, holds, IdentityKey)
}
