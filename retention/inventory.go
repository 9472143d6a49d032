package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// Inventory is what retention knows about a repository when it plans: every
// backup with its status, the objects in each backup's folder, the keep
// marks, and every object under wal/. Load reads it; tests build it.
type Inventory struct {
	// Backups as repository.ListBackups returns them, in id order.
	Backups []repository.BackupInfo
	// Objects are the objects under backups/<id>/, by id, in key order
	// (the manifest and the marks included).
	Objects map[string][]storage.ObjectInfo
	// Marks are each backup's keep marks, oldest first.
	Marks map[string][]repository.Mark
	// WAL is every object under wal/, in key order.
	WAL []storage.ObjectInfo
	// Partials is every object under partial/ (wal-receive's partial
	// segments), in key order.
	Partials []storage.ObjectInfo
	// SegmentSize is the cluster's WAL segment size (walvault.json); 0 when
	// the repository has no identity yet, and then no WAL is deleted.
	SegmentSize uint32
}

// Load reads the inventory: the backup catalog, one List of backups/, one
// of wal/ and one of partial/. wal/ is listed before partial/: a complete
// segment seen there was archived before any partial listed after it, so a
// partial is only ever taken for superseded when its segment really is
// archived.
func Load(ctx context.Context, b storage.Backend) (Inventory, error) {
	inv := Inventory{Objects: map[string][]storage.ObjectInfo{}, Marks: map[string][]repository.Mark{}}
	id, err := repository.LoadIdentity(ctx, b)
	switch {
	case err == nil:
		inv.SegmentSize = id.WALSegmentSize
	case errors.Is(err, storage.ErrNotFound):
		// Nothing was ever pushed; there may still be stray backup folders.
	default:
		return Inventory{}, fmt.Errorf("read repository identity: %w", err)
	}
	if inv.Backups, err = repository.ListBackups(ctx, b); err != nil {
		return Inventory{}, err
	}
	err = b.List(ctx, repository.BackupsPrefix, func(oi storage.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, repository.BackupsPrefix)
		id, _, ok := strings.Cut(rest, "/")
		if !ok || repository.ValidateBackupID(id) != nil {
			return nil // not walvault's: never touched
		}
		inv.Objects[id] = append(inv.Objects[id], oi)
		if m, ok := repository.ParseMarkKey(oi.Key); ok {
			inv.Marks[id] = append(inv.Marks[id], m)
		}
		return nil
	})
	if err != nil {
		return Inventory{}, fmt.Errorf("list backups in %s: %w", b.Location(), err)
	}
	err = b.List(ctx, repository.WALPrefix, func(oi storage.ObjectInfo) error {
		oi.Metadata = nil // not needed; keeps a long listing small
		inv.WAL = append(inv.WAL, oi)
		return nil
	})
	if err != nil {
		return Inventory{}, fmt.Errorf("list WAL in %s: %w", b.Location(), err)
	}
	err = b.List(ctx, repository.PartialPrefix, func(oi storage.ObjectInfo) error {
		oi.Metadata = nil
		inv.Partials = append(inv.Partials, oi)
		return nil
	})
	if err != nil {
		return Inventory{}, fmt.Errorf("list partials in %s: %w", b.Location(), err)
	}
	return inv, nil
}
