package repository

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
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
)

// BackupInfo is one backup as the catalog sees it.
type BackupInfo struct {
	ID     string
	Status BackupStatus
	// Manifest is nil for INCOMPLETE backups.
	Manifest *BackupManifest
	// MissingWAL names the first segment a WAITING_FOR_WALS backup lacks.
	MissingWAL string
}

// ErrNoBackup: no backup matches what was asked for.
var ErrNoBackup = errors.New("no matching backup")

// ListBackups returns every backup folder in id (time) order with its
// status. It reads each manifest and checks the WAL range each backup needs.
func ListBackups(ctx context.Context, b storage.Backend) ([]BackupInfo, error) {
	ids, complete, err := BackupFolders(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", b.Location(), err)
	}
	var compression Compression
	if len(complete) > 0 {
		id, err := LoadIdentity(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("read repository identity: %w", err)
		}
		compression = id.Compression
	}
	out := make([]BackupInfo, 0, len(ids))
	for _, id := range ids {
		info := BackupInfo{ID: id, Status: StatusIncomplete}
		if complete[id] {
			m, err := LoadBackupManifest(ctx, b, id)
			if err != nil {
				return nil, err
			}
			info.Manifest = &m
			missing, err := firstMissingWAL(ctx, b, m, compression)
			if err != nil {
				return nil, err
			}
			info.Status, info.MissingWAL = StatusDone, missing
			if missing != "" {
				info.Status = StatusWaitingForWALs
			}
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// firstMissingWAL checks each segment from the backup's start to its stop
// and returns the first one not archived ("" when all are).
func firstMissingWAL(ctx context.Context, b storage.Backend, m BackupManifest, c Compression) (string, error) {
	seg, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil {
		return "", fmt.Errorf("backup %s: start_wal: %w", m.ID, err)
	}
	stop, err := wal.ParseSegmentName(m.StopWAL)
	if err != nil {
		return "", fmt.Errorf("backup %s: stop_wal: %w", m.ID, err)
	}
	for {
		name := wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}
		_, err := b.Stat(ctx, WALKey(name, c))
		if errors.Is(err, storage.ErrNotFound) {
			return seg.String(), nil
		}
		if err != nil {
			return "", fmt.Errorf("backup %s: check %s: %w", m.ID, seg, err)
		}
		if seg.Log == stop.Log && seg.Seg == stop.Seg {
			return "", nil
		}
		if seg, err = seg.Next(m.WALSegmentSize); err != nil {
			return "", fmt.Errorf("backup %s: %w", m.ID, err)
		}
		// A backup whose stop timeline differs (taken on a standby that
		// was promoted meanwhile) ends on the stop timeline.
		if seg.Log == stop.Log && seg.Seg == stop.Seg {
			seg.Timeline = stop.Timeline
		}
	}
}

// FindBackup resolves "LATEST" (the newest DONE backup) or an id among
// backups, which ListBackups returned.
func FindBackup(backups []BackupInfo, ref string) (BackupInfo, error) {
	if ref == "" || ref == "LATEST" {
		for i := len(backups) - 1; i >= 0; i-- {
			if backups[i].Status == StatusDone {
				return backups[i], nil
			}
		}
		return BackupInfo{}, fmt.Errorf("%w: no backup is DONE yet (see backup-list; run backup-push, and make sure its WAL gets archived)", ErrNoBackup)
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
