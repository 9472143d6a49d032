package repository

import (
	"context"
	"slices"
	"strings"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// KeyUse is what one recipient key (its crypt.KeyID) decrypts: which
// backups, and which runs of consecutive WAL files.
type KeyUse struct {
	KeyID     string     `json:"key_id"`
	Backups   []string   `json:"backups"`
	WALRanges []WALRange `json:"wal_ranges"`
}

// WALRange is a run of WAL files, in key order, encrypted to the same set
// of recipients.
type WALRange struct {
	First string `json:"first"` // file names
	Last  string `json:"last"`
	Files int    `json:"files"`
}

// RecipientUses lists, for every key the repository's objects are
// encrypted to, the backups and WAL ranges it decrypts, so a DBA knows
// when an old key can be destroyed: once no backup kept and no WAL after
// the oldest kept backup's start needs it. It lists the repository once
// (the inventory); backups' recipients come from their manifests, the
// WAL's from a bounded number of metadata reads (WALRecipientRuns: a key
// used only between two sampled objects that agree is not seen). stats
// is how many metadata reads that took.
func RecipientUses(ctx context.Context, b storage.Backend) (uses []KeyUse, stats int, err error) {
	byID := map[string]*KeyUse{}
	use := func(id string) *KeyUse {
		if byID[id] == nil {
			byID[id] = &KeyUse{KeyID: id}
		}
		return byID[id]
	}
	inv, err := LoadInventory(ctx, b, LoadOptions{WALObjects: true})
	if err != nil {
		return nil, 0, err
	}
	backups, err := inv.Catalog()
	if err != nil {
		return nil, 0, err
	}
	for _, bi := range backups {
		if bi.Status == StatusDamaged {
			// Its keys are unknown: a list without them could have a key
			// retired that the backup still needs.
			return nil, 0, DamagedError(bi)
		}
		if bi.Manifest == nil {
			continue
		}
		seen := map[string]bool{}
		parts := []BackupPart{bi.Manifest.PGManifest}
		for _, a := range bi.Manifest.Archives {
			parts = append(parts, a.Parts...)
		}
		for _, p := range parts {
			for _, id := range ObjectRecipients(p.Meta()) {
				if p.Encryption != "" && !seen[id] {
					seen[id] = true
					use(id).Backups = append(use(id).Backups, bi.ID)
				}
			}
		}
	}
	var keys []string
	var names []string
	for _, o := range inv.WALObjects {
		if o.Hidden || o.File.Kind == wal.KindTimelineHistory {
			continue
		}
		keys = append(keys, o.Key)
		names = append(names, o.File.String())
	}
	runs, stats, err := WALRecipientRuns(ctx, b, keys)
	if err != nil {
		return nil, stats, err
	}
	open := map[string]*WALRange{} // the range each key is extending
	for _, run := range runs {
		if run.Gone {
			continue // deleted since the listing: neither ends nor extends a range
		}
		now := map[string]bool{}
		for _, id := range run.Recipients {
			now[id] = true
		}
		for id, r := range open {
			if !now[id] {
				use(id).WALRanges = append(use(id).WALRanges, *r)
				delete(open, id)
			}
		}
		for id := range now {
			if r := open[id]; r != nil {
				r.Last, r.Files = names[run.Last], r.Files+run.Last-run.First+1
			} else {
				open[id] = &WALRange{First: names[run.First], Last: names[run.Last], Files: run.Last - run.First + 1}
			}
		}
	}
	for id, r := range open {
		use(id).WALRanges = append(use(id).WALRanges, *r)
	}
	uses = make([]KeyUse, 0, len(byID))
	for _, u := range byID {
		uses = append(uses, *u)
	}
	slices.SortFunc(uses, func(a, b KeyUse) int { return strings.Compare(a.KeyID, b.KeyID) })
	return uses, stats, nil
}
