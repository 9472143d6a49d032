package repository

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/walvault/walvault/storage"
)

// KeyUse is what one recipient key (its crypt.KeyID) decrypts: which
// backups, and which runs of consecutive WAL files.
type KeyUse struct {
	KeyID     string
	Backups   []string
	WALRanges []WALRange
}

// WALRange is a run of WAL files, in key order, encrypted to the same set
// of recipients.
type WALRange struct {
	First, Last string // file names
	Files       int
}

// RecipientUses lists, for every key the repository's objects are
// encrypted to, the backups and WAL ranges it decrypts, so a DBA knows
// when an old key can be destroyed: once no backup kept and no WAL after
// the oldest kept backup's start needs it. It lists the repository once
// and reads the metadata of each WAL object (one request per object);
// backups' recipients come from their manifests.
func RecipientUses(ctx context.Context, b storage.Backend) ([]KeyUse, error) {
	uses := map[string]*KeyUse{}
	use := func(id string) *KeyUse {
		if uses[id] == nil {
			uses[id] = &KeyUse{KeyID: id}
		}
		return uses[id]
	}
	inv, err := LoadInventory(ctx, b, LoadOptions{})
	if err != nil {
		return nil, err
	}
	backups, err := inv.Catalog()
	if err != nil {
		return nil, err
	}
	for _, bi := range backups {
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
	err = b.List(ctx, WALPrefix, func(o storage.ObjectInfo) error {
		if k, ok := ParseKey(o.Key); ok && k.Kind != KeyTimelineHistory {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the WAL in %s: %w", b.Location(), err)
	}
	slices.Sort(keys)
	open := map[string]*WALRange{} // the range each key is extending
	for _, key := range keys {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read the metadata of %s in %s: %w", key, b.Location(), err)
		}
		k, _ := ParseKey(key)
		name := k.WAL.String()
		now := map[string]bool{}
		if EncryptedObject(info.Metadata) {
			for _, id := range ObjectRecipients(info.Metadata) {
				now[id] = true
			}
		}
		for id, r := range open {
			if !now[id] {
				use(id).WALRanges = append(use(id).WALRanges, *r)
				delete(open, id)
			}
		}
		for id := range now {
			if r := open[id]; r != nil {
				r.Last, r.Files = name, r.Files+1
			} else {
				open[id] = &WALRange{First: name, Last: name, Files: 1}
			}
		}
	}
	for id, r := range open {
		use(id).WALRanges = append(use(id).WALRanges, *r)
	}
	out := make([]KeyUse, 0, len(uses))
	for _, u := range uses {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b KeyUse) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out, nil
}
