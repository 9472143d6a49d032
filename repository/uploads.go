package repository

import (
	"strings"

	"github.com/walvault/walvault/storage"
)

// OwnedUploads splits incomplete uploads into those of keys walvault
// writes (a WAL object, a partial, a backup's object, its identity,
// drill and recipient records) and the others. A repository at a
// bucket's root, or around another repository, lists other writers'
// uploads too: delete must never abort those, and verify must not call
// them walvault's.
func OwnedUploads(ups []storage.Upload) (own, others []storage.Upload) {
	for _, u := range ups {
		if ownedKey(u.Key) {
			own = append(own, u)
		} else {
			others = append(others, u)
		}
	}
	return own, others
}

func ownedKey(key string) bool {
	if _, _, ok := ParseWALKey(key); ok {
		return true
	}
	if _, ok := ParsePartialKey(key); ok {
		return true
	}
	if _, _, ok := SplitBackupKey(key); ok {
		return true
	}
	if _, ok := ParseDrillRecordKey(key); ok {
		return true
	}
	if _, ok := ParseRecipientKey(key); ok {
		return true
	}
	return key == IdentityKey || strings.HasPrefix(key, ProbePrefix)
}
