package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/storage"
)

// RecipientsPrefix holds one write-once record per recipient key that
// objects were encrypted to beyond those walvault.json was created with:
//
//	recipients/<KeyID>.json
//
// walvault.json is never rewritten (it may be locked, and a rewrite could
// lose a racing writer's change), so a key that starts being used (key
// rotation) gets an object of its own, created with a conditional create
// before the first object encrypted to it is uploaded. Racing writers
// create the same record; the loser's ErrExists is success. So every key
// any object is encrypted to is in walvault.json or under recipients/.
const RecipientsPrefix = "recipients/"

// RecipientRecord is the body of a recipients/ object.
type RecipientRecord struct {
	KeyID       string    `json:"key_id"`
	FirstUsedAt time.Time `json:"first_used_at"`
	FirstUsedBy string    `json:"first_used_by"`
}

// RecipientKey is the key of KeyID id's record.
func RecipientKey(id string) string { return RecipientsPrefix + id + ".json" }

// ParseRecipientKey is the inverse of RecipientKey.
func ParseRecipientKey(key string) (id string, ok bool) {
	rest, found := strings.CutPrefix(key, RecipientsPrefix)
	if !found {
		return "", false
	}
	id, found = strings.CutSuffix(rest, ".json")
	if !found || !validKeyID(id) {
		return "", false
	}
	return id, true
}

// validKeyID accepts crypt.KeyID's form: "age:" and 16 lower-case hex digits.
func validKeyID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, crypt.Scheme+":")
	if !ok || len(hexPart) != 16 {
		return false
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// RecordRecipients makes sure every key of r is recorded, in walvault.json
// (id) or under recipients/, before an object encrypted to r is written:
// one conditional create per key walvault.json does not name. It returns
// id with those keys added to Recipients, for the caller's identity cache
// (a cached identity that names them spares the requests next time); the
// repository's walvault.json is left as it is.
func RecordRecipients(ctx context.Context, b storage.Backend, id Identity, r *crypt.Recipients, host string, now time.Time, ret *storage.Retention) (Identity, error) {
	if r == nil {
		return id, nil
	}
	for _, keyID := range r.IDs() {
		if slices.Contains(id.Recipients, keyID) {
			continue
		}
		data, err := json.MarshalIndent(RecipientRecord{KeyID: keyID, FirstUsedAt: now.UTC().Truncate(time.Second), FirstUsedBy: host}, "", "  ")
		if err != nil {
			return Identity{}, err
		}
		data = append(data, '\n')
		err = b.Put(ctx, RecipientKey(keyID), bytes.NewReader(data), storage.PutOptions{IfNotExists: true, Size: int64(len(data)), Retention: ret})
		if err != nil && !errors.Is(err, storage.ErrExists) {
			return Identity{}, fmt.Errorf("record the new encryption key %s in %s (before the first object encrypted to it): %w", keyID, b.Location(), err)
		}
		id.Recipients = append(slices.Clone(id.Recipients), keyID)
	}
	return id, nil
}

// RecipientsInUse are the KeyIDs the repository's objects may be
// encrypted to: walvault.json's and those recorded under recipients/
// since, sorted. One listing.
func RecipientsInUse(ctx context.Context, b storage.Backend, id Identity) ([]string, error) {
	ids := slices.Clone(id.Recipients)
	err := b.List(ctx, RecipientsPrefix, func(o storage.ObjectInfo) error {
		if keyID, ok := ParseRecipientKey(o.Key); ok && !slices.Contains(ids, keyID) {
			ids = append(ids, keyID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", RecipientsPrefix, b.Location(), err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Records reports whether id names every key of r (nil: nothing to name).
func (id Identity) Records(r *crypt.Recipients) bool {
	if r == nil {
		return true
	}
	for _, keyID := range r.IDs() {
		if !slices.Contains(id.Recipients, keyID) {
			return false
		}
	}
	return true
}
