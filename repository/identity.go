package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/walvault/walvault/storage"
)

// IdentityKey is where the repository identity lives.
const IdentityKey = "walvault.json"

// FormatVersion is the repository format this walvault writes and reads.
const FormatVersion = 1

// Identity is walvault.json: written once, by the first push, with a
// conditional create, and never rewritten.
type Identity struct {
	FormatVersion int `json:"format_version"`
	// SystemID is a decimal string: it is a uint64, which JSON numbers in
	// many tools cannot hold exactly.
	SystemID       string      `json:"system_identifier"`
	WALSegmentSize uint32      `json:"wal_segment_size"`
	PGMajor        int         `json:"pg_major"`
	Compression    Compression `json:"compression"`
	CreatedAt      time.Time   `json:"created_at"`
	CreatedBy      string      `json:"created_by"`
}

// NewIdentity builds the identity of a cluster's repository.
func NewIdentity(systemID uint64, segSize uint32, pgMajor int, c Compression, host string, now time.Time) Identity {
	return Identity{
		FormatVersion:  FormatVersion,
		SystemID:       strconv.FormatUint(systemID, 10),
		WALSegmentSize: segSize,
		PGMajor:        pgMajor,
		Compression:    c,
		CreatedAt:      now.UTC().Truncate(time.Second),
		CreatedBy:      host,
	}
}

// LoadIdentity reads walvault.json. A repository nobody pushed to yet gives
// an error wrapping storage.ErrNotFound.
func LoadIdentity(ctx context.Context, b storage.Backend) (Identity, error) {
	rc, _, err := b.Get(ctx, IdentityKey)
	if err != nil {
		return Identity{}, err
	}
	defer rc.Close()
	// The identity is tiny; a limit keeps a hostile object from using memory.
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return Identity{}, fmt.Errorf("read %s: %w", IdentityKey, err)
	}
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, fmt.Errorf("%s in %s is not valid JSON: %w", IdentityKey, b.Location(), err)
	}
	if id.FormatVersion > FormatVersion {
		return Identity{}, fmt.Errorf("repository %s has format version %d, newer than this walvault understands (%d): upgrade walvault", b.Location(), id.FormatVersion, FormatVersion)
	}
	if id.FormatVersion < 1 || id.SystemID == "" {
		return Identity{}, fmt.Errorf("%s in %s lacks format_version or system_identifier: it was not written by walvault", IdentityKey, b.Location())
	}
	if _, err := ParseCompression(string(id.Compression)); err != nil {
		return Identity{}, fmt.Errorf("%s in %s: %w", IdentityKey, b.Location(), err)
	}
	return id, nil
}

// EnsureIdentity returns the repository's identity, creating it from want
// when the repository has none. Two racing first pushes settle through the
// conditional create: the loser reads the winner's identity.
func EnsureIdentity(ctx context.Context, b storage.Backend, want Identity) (Identity, error) {
	id, err := LoadIdentity(ctx, b)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return Identity{}, err
	}
	data, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		return Identity{}, err
	}
	data = append(data, '\n')
	err = b.Put(ctx, IdentityKey, bytes.NewReader(data), storage.PutOptions{IfNotExists: true, Size: int64(len(data))})
	if errors.Is(err, storage.ErrExists) {
		return LoadIdentity(ctx, b)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("create %s: %w", IdentityKey, err)
	}
	return want, nil
}
