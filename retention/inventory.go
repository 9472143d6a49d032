package retention

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Inventory is what retention knows about a repository when it plans: every
// backup with its status, the objects in each backup's folder, the keep
// marks, and every object under wal/. Load takes it from a
// repository.Inventory; tests build it.
type Inventory struct {
	// Backups as repository.Inventory.Catalog returns them, in id order.
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
	// Lock is the repository's Object Lock policy (walvault.json): every
	// object it holds was written locked for Lock.Days.
	Lock repository.LockPolicy
	// Histories are the timelines' history files that were read whole
	// (timeline 1 has none): which backups lead to which timeline.
	Histories map[wal.TimelineID][]wal.HistoryEntry
	// HistoryProblems says, for a timeline after 1 whose history is not
	// known, why: missing, damaged, or encrypted without its branch
	// point in metadata and no identity given.
	HistoryProblems map[wal.TimelineID]string
}

// Load reads the inventory through one repository.Inventory: one listing
// of the whole repository, walvault.json and each backup's manifest. A
// partial is taken for superseded only when its complete segment was seen
// in that listing, so only when the segment really is archived.
func Load(ctx context.Context, b storage.Backend, ids *crypt.Identities) (Inventory, error) {
	ri, err := repository.LoadInventory(ctx, b, repository.LoadOptions{WALObjects: true, Histories: true, Identities: ids})
	if err != nil {
		return Inventory{}, err
	}
	inv := Inventory{Objects: map[string][]storage.ObjectInfo{}, Marks: map[string][]repository.Mark{}}
	switch {
	case ri.IdentityErr != nil:
		return Inventory{}, fmt.Errorf("read repository identity: %w", ri.IdentityErr)
	case ri.Identity != nil:
		inv.SegmentSize, inv.Lock = ri.Identity.WALSegmentSize, ri.Identity.Lock()
	default:
		// Nothing was ever pushed; there may still be stray backup folders.
	}
	if inv.Backups, err = ri.Catalog(); err != nil {
		return Inventory{}, err
	}
	for _, bk := range ri.Backups {
		inv.Objects[bk.ID] = bk.Objects
		if len(bk.Marks) > 0 {
			inv.Marks[bk.ID] = bk.Marks
		}
	}
	for _, o := range ri.WALObjects {
		inv.WAL = append(inv.WAL, o.ObjectInfo)
	}
	if ri.WAL != nil {
		inv.Histories = map[wal.TimelineID][]wal.HistoryEntry{}
		for _, h := range ri.Histories {
			if entries, ok := ri.WAL.KnownHistory(h.File.Timeline); ok {
				inv.Histories[h.File.Timeline] = entries
			}
		}
		cont := ri.WAL.Continuity(nil)
		inv.HistoryProblems = map[wal.TimelineID]string{}
		for _, tli := range cont.MissingHistory {
			inv.HistoryProblems[tli] = fmt.Sprintf("its history file is missing: push it from the pg_wal of the server that writes timeline %d (walvault wal-push pg_wal/%08X.history)", tli, uint32(tli))
		}
		for tli, err := range cont.BadHistory {
			inv.HistoryProblems[tli] = fmt.Sprintf("its history file is invalid (%v)", err)
		}
		for tli, err := range cont.UnreadableHistory {
			inv.HistoryProblems[tli] = repository.UnreadableHistoryWhy(tli, err) + "; give delete decrypt-with (an identity of the repository's)"
		}
	}
	for _, p := range ri.Partials {
		inv.Partials = append(inv.Partials, storage.ObjectInfo{Key: p.Key, Size: p.Size, ModTime: p.ModTime})
	}
	// Objects that are not walvault's stay in the plan, which leaves them
	// alone and says so.
	for _, st := range ri.Strays {
		switch {
		case strings.HasPrefix(st.Key, repository.WALPrefix):
			inv.WAL = append(inv.WAL, st.ObjectInfo)
		case strings.HasPrefix(st.Key, repository.PartialPrefix):
			inv.Partials = append(inv.Partials, st.ObjectInfo)
		}
	}
	byKey := func(objs []storage.ObjectInfo) {
		sort.SliceStable(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	}
	byKey(inv.WAL)
	byKey(inv.Partials)
	return inv, nil
}
