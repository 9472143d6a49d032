package repository

import (
	"context"
	"errors"
	"fmt"

	"github.com/walvault/walvault/storage"
)

// BackupStatus says whether a backup can be restored.
type BackupStatus string

const (
	// StatusDone: the manifest is written and every WAL segment from the
	// backup's start to its stop is archived: it restores to a consistent
	// cluster.
	StatusDone BackupStatus = "DONE"
	// StatusWaitingForWALs: the manifest is written but a segment the
	// backup needs to become consistent is not archived (yet).
	StatusWaitingForWALs BackupStatus = "WAITING_FOR_WALS"
	// StatusIncomplete: parts without a manifest, e.g. an interrupted
	// backup-push. It is never restored.
	StatusIncomplete BackupStatus = "INCOMPLETE"
	// StatusDamaged: the manifest is there but its content is not one this
	// walvault can use (not JSON, a newer format, inconsistent fields), e.g.
	// a newer version uploaded over it; or an object it records (a part,
	// PostgreSQL's backup_manifest) is missing from the listing or of
	// another size (a PartDamage). It is never restored, and the other
	// backups stay usable.
	StatusDamaged BackupStatus = "DAMAGED"
)

// BackupInfo is one backup as the catalog sees it.
type BackupInfo struct {
	ID     string
	Status BackupStatus
	// Manifest is nil for INCOMPLETE backups and DAMAGED ones whose
	// manifest is unusable; a DAMAGED one whose part is at fault has it.
	Manifest *BackupManifest
	// MissingWAL names the first segment a WAITING_FOR_WALS backup lacks.
	MissingWAL string
	// Damage says what is wrong with a DAMAGED backup: its manifest, or
	// (a *PartDamage) an object the manifest records.
	Damage error
}

// DamagedError refuses to use a DAMAGED backup, saying why and how to get
// the object at fault back: what overwrote it left the original (locked,
// under Object Lock) in the bucket's version history.
func DamagedError(bi BackupInfo) error {
	var pd *PartDamage
	if errors.As(bi.Damage, &pd) {
		return fmt.Errorf("%w: backup %s is DAMAGED: %v; %s, and run this again; or use another backup (see backup-list)",
			ErrNoBackup, bi.ID, bi.Damage, pd.Remedy())
	}
	key := BackupManifestKey(bi.ID)
	return fmt.Errorf("%w: backup %s is DAMAGED: %v; if %s was overwritten in a bucket that keeps versions (every Object Lock bucket does), its original is an older version in the bucket's version history: delete the newer version, or copy the original over it, with the S3 API (aws s3api list-object-versions --bucket <bucket> --prefix <the repository prefix>/%s, then delete-object --version-id), and run this again (a file:// repository keeps no versions: put the file back from a copy of the repository); or use another backup (see backup-list)",
		ErrNoBackup, bi.ID, bi.Damage, key, key)
}

// ErrNoBackup: no backup matches what was asked for.
var ErrNoBackup = errors.New("no matching backup")

// ListBackups returns every backup folder in id (time) order with its
// status: LoadInventory and Inventory.Catalog, for callers that need
// nothing else of the repository.
func ListBackups(ctx context.Context, b storage.Backend) ([]BackupInfo, error) {
	inv, err := LoadInventory(ctx, b, LoadOptions{BackupsOnly: true})
	if err != nil {
		return nil, err
	}
	return inv.Catalog()
}

// LatestRef names the newest backup restore can take, where a backup id
// may be given.
const LatestRef = "LATEST"

// IsLatest reports whether ref asks for the newest backup (LatestRef or
// nothing) rather than naming one.
func IsLatest(ref string) bool { return ref == "" || ref == LatestRef }

// FindBackup resolves LatestRef (the newest DONE backup that restore can
// take: a full one, or an incremental one whose chain is complete) or an
// id among backups, which ListBackups returned.
func FindBackup(backups []BackupInfo, ref string) (BackupInfo, error) {
	if IsLatest(ref) {
		for i := len(backups) - 1; i >= 0; i-- {
			if backups[i].Status != StatusDone {
				continue
			}
			if !backups[i].Manifest.IsIncremental() {
				return backups[i], nil
			}
			if _, err := Chain(backups, backups[i].ID); err == nil {
				return backups[i], nil
			}
		}
		return BackupInfo{}, NoRestorableBackup(backups)
	}
	if err := ValidateBackupID(ref); err != nil {
		return BackupInfo{}, err
	}
	for _, bi := range backups {
		if bi.ID == ref {
			return bi, nil
		}
	}
	return BackupInfo{}, fmt.Errorf("%w: backup %s does not exist (see backup-list)", ErrNoBackup, ref)
}

// NoRestorableBackup is the refusal when no backup among backups can be
// restored: none is DONE, or every DONE one is an incremental whose chain
// is broken, which it names (the newest) with the break, rather than send
// the DBA to look at archiving (explore25d F3).
func NoRestorableBackup(backups []BackupInfo) error {
	broken := 0
	var newest error
	for i := len(backups) - 1; i >= 0; i-- {
		if backups[i].Status != StatusDone || backups[i].Manifest == nil {
			continue
		}
		if _, err := Chain(backups, backups[i].ID); err != nil {
			broken++
			if newest == nil {
				newest = err
			}
		}
	}
	if broken == 0 {
		return fmt.Errorf("%w: no backup is DONE yet (see backup-list; run backup-push, and make sure its WAL gets archived)", ErrNoBackup)
	}
	return fmt.Errorf("%w: no backup can be restored: the DONE ones (%d) are incremental backups whose chains are broken; the newest: %w; take a full backup (backup-push without --incremental), and see verify for what is missing", ErrNoBackup, broken, newest)
}
