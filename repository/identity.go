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
	// LockMode and LockDays are the repository's Object Lock policy (see
	// LockPolicy): every object is written locked in LockMode for LockDays
	// days. Absent, in repositories created without a policy, means off.
	LockMode storage.RetentionMode `json:"lock_mode,omitempty"`
	LockDays int                   `json:"lock_days,omitempty"`
	// Encryption is crypt.Scheme in a repository whose objects are
	// encrypted (empty: in the clear), and Recipients the KeyIDs of the
	// public keys it was created with; later objects may go to others
	// (key rotation), each object's metadata names its own.
	Encryption string   `json:"encryption,omitempty"`
	Recipients []string `json:"recipients,omitempty"`

	// Hidden reports that walvault.json was read from a version hidden
	// behind a delete marker (someone deleted it without a version id):
	// callers warn, and `walvault repair` makes it visible again.
	Hidden bool `json:"-"`
	// Recreated, when set, names the objects that proved a repository
	// without walvault.json to be the writer's cluster's: this call wrote
	// walvault.json anew over them (see checkClaim), and callers warn.
	Recreated string `json:"-"`
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
// an error wrapping storage.ErrNotFound. In a versioned bucket a
// walvault.json hidden behind a delete marker is still read (Hidden is set):
// only when neither a visible nor a hidden version exists is it absent, so
// a hostile DELETE cannot make a push create a second identity.
func LoadIdentity(ctx context.Context, b storage.Backend) (Identity, error) {
	rc, hidden, err := openIdentity(ctx, b)
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
		return Identity{}, &identityError{fmt.Errorf("%s in %s is not valid JSON: %w", IdentityKey, b.Location(), err)}
	}
	if id.FormatVersion > FormatVersion {
		return Identity{}, &identityError{fmt.Errorf("repository %s has format version %d, newer than this walvault understands (%d): upgrade walvault", b.Location(), id.FormatVersion, FormatVersion)}
	}
	if id.FormatVersion < 1 || id.SystemID == "" {
		return Identity{}, &identityError{fmt.Errorf("%s in %s lacks format_version or system_identifier: it was not written by walvault", IdentityKey, b.Location())}
	}
	if _, err := ParseCompression(string(id.Compression)); err != nil {
		return Identity{}, &identityError{fmt.Errorf("%s in %s: %w", IdentityKey, b.Location(), err)}
	}
	if err := id.Lock().Validate(); err != nil {
		return Identity{}, &identityError{fmt.Errorf("%s in %s: %w", IdentityKey, b.Location(), err)}
	}
	id.Hidden = hidden
	return id, nil
}

// openIdentity opens walvault.json, or its hidden newest version.
func openIdentity(ctx context.Context, b storage.Backend) (io.ReadCloser, bool, error) {
	rc, _, err := b.Get(ctx, IdentityKey)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return rc, false, err
	}
	rc, _, herr := OpenHidden(ctx, b, IdentityKey)
	switch {
	case herr == nil:
		return rc, true, nil
	case errors.Is(herr, storage.ErrNotFound), errors.Is(herr, ErrVersionsRefused):
		return nil, false, err
	}
	// Not visible, but whether a hidden version exists is unknown: that is
	// no authoritative "absent".
	return nil, false, fmt.Errorf("%s is not visible in %s, and looking for a hidden version of it failed: %w", IdentityKey, b.Location(), herr)
}

// EnsureIdentity returns the repository's identity, creating it from want
// when the repository has none. Two racing first pushes settle through the
// conditional create: the loser reads the winner's identity. ret, when not
// nil, locks the new walvault.json (want's lock policy at the time of the
// write); an existing identity is returned as it is, and callers compare
// its policy with theirs (Identity.CheckLock).
func EnsureIdentity(ctx context.Context, b storage.Backend, want Identity, ret *storage.Retention) (Identity, error) {
	id, err := LoadIdentity(ctx, b)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return Identity{}, err
	}
	proof, err := checkClaim(ctx, b, want)
	if err != nil {
		return Identity{}, err
	}
	return createIdentity(ctx, b, want, ret, proof)
}

// createIdentity writes want as the identity of a repository that has
// none (checkClaim passed, proof says on what evidence when the
// repository was not empty), or reads the one a racing first push wrote.
func createIdentity(ctx context.Context, b storage.Backend, want Identity, ret *storage.Retention, proof string) (Identity, error) {
	data, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		return Identity{}, err
	}
	data = append(data, '\n')
	err = b.Put(ctx, IdentityKey, bytes.NewReader(data), storage.PutOptions{IfNotExists: true, Size: int64(len(data)), Retention: ret})
	if errors.Is(err, storage.ErrExists) {
		return LoadIdentity(ctx, b)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("create %s: %w", IdentityKey, err)
	}
	want.Recreated = proof
	return want, nil
}

// ErrWrongCluster: a PostgreSQL cluster other than the one a repository
// was created for wants to write into it.
var ErrWrongCluster = errors.New("the repository belongs to another cluster")

// wrongClusterError is the refusal CheckCluster returns; it matches
// ErrWrongCluster.
type wrongClusterError struct{ msg string }

func (e *wrongClusterError) Error() string        { return e.msg }
func (e *wrongClusterError) Is(target error) bool { return target == ErrWrongCluster }

// CheckCluster refuses a writer (wal-push, backup-push, wal-receive) whose
// cluster has another system identifier than the repository's: its WAL
// and backups cannot continue the repository's history. pgMajor is the
// writer's PostgreSQL major version (0 when unknown), named in the
// refusal with the repository's, since the usual cause is a pg_upgrade.
// It is the one place that says so; callers add what they did not write.
func (id Identity) CheckCluster(systemID string, pgMajor int, location string) error {
	if systemID == id.SystemID {
		return nil
	}
	msg := fmt.Sprintf("repository %s belongs to the cluster with system identifier %s, but this server's is %s", location, id.SystemID, systemID)
	if id.PGMajor != 0 && pgMajor != 0 {
		msg += fmt.Sprintf(" (the repository was created by PostgreSQL %d, this server runs PostgreSQL %d)", id.PGMajor, pgMajor)
	}
	msg += ": a cluster upgraded with pg_upgrade, or created anew with initdb, has a new system identifier and cannot continue the old cluster's WAL history; " +
		"point this server at the repository it archives to, or start a new repository prefix for it (the old prefix still restores the old cluster)"
	return &wrongClusterError{msg: msg}
}
