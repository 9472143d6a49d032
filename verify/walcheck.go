package verify

import (
	"context"
	"fmt"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// WALContinuity checks continuity from starts (the start segments of the
// backups that matter; nil: from each timeline's oldest archived segment),
// following the timeline history files, through one repository.Inventory.
// segSize is the repository's segment size, as the caller read it from
// walvault.json. It is the part of Run that `walvault drill` reuses.
func WALContinuity(ctx context.Context, b storage.Backend, segSize uint32, starts []wal.Segment) (repository.Continuity, error) {
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Histories: true})
	if err != nil {
		return repository.Continuity{}, err
	}
	if inv.WAL == nil || inv.Identity.WALSegmentSize != segSize {
		return repository.Continuity{}, fmt.Errorf("%s in %s no longer records %d-byte WAL segments", repository.IdentityKey, b.Location(), segSize)
	}
	return inv.WAL.Continuity(starts), nil
}
