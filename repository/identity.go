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
	// Overwritten, when set, says that walvault.json holds more than one
	// data version and the current one is not walvault's first: walvault
	// writes it once (a conditional create), so a later version was put
	// over it by someone else, and the first is the one read (callers
	// warn; verify reports it).
	Overwritten string `json:"-"`
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
//
// In a bucket that keeps versions, walvault.json with more than one data
// version was written over by someone else (walvault writes it once): its
// first version is read instead, with Overwritten set, so one PutObject
// with the host's credentials can neither stop every command nor talk
// them into dropping the repository's Object Lock (explore25a F2, F3).
func LoadIdentity(ctx context.Context, b storage.Backend) (Identity, error) {
	versions := identityVersions(ctx, b)
	rc, hidden, err := openIdentity(ctx, b)
	if err != nil {
		return Identity{}, err
	}
	data, err := readIdentity(rc)
	if err != nil {
		return Identity{}, err
	}
	id, err := parseIdentity(data, b.Location())
	if first, n, ok := firstIdentity(ctx, b, <-versions, data); ok {
		if err != nil {
			first.Overwritten = fmt.Sprintf("%s holds %d versions, and the current one is not walvault's (%v): someone with write access put it over the first, which is used", IdentityKey, n, err)
		} else {
			first.Overwritten = fmt.Sprintf("%s holds %d versions, and the current one differs from the first (cluster %s, lock %s against %s, %s): someone with write access put it over the first, which is used", IdentityKey, n, id.SystemID, id.Lock(), first.Lock(), first.SystemID)
		}
		first.Hidden = hidden
		return first, nil
	}
	if err != nil {
		return Identity{}, err
	}
	id.Hidden = hidden
	return id, nil
}

// IdentityOverwrittenFix is what to do about an overwritten walvault.json.
const IdentityOverwrittenFix = "every walvault command reads the first version meanwhile; find who could write to the repository (the host's credentials may be stolen), then put the first version back: copy it over the key (aws s3api copy-object --copy-source 'BUCKET/PREFIX/walvault.json?versionId=ID' with list-object-versions' oldest ID), and, once no lock holds them, delete the foreign versions"

// identityVersions lists walvault.json's data versions beside the read of
// the current one (no round trip more); nil where the storage keeps none
// or will not list them.
func identityVersions(ctx context.Context, b storage.Backend) <-chan []storage.ObjectVersion {
	out := make(chan []storage.ObjectVersion, 1)
	v, ok := storage.AsVersioned(b)
	if !ok {
		out <- nil
		return out
	}
	go func() {
		vs, err := v.Versions(ctx, IdentityKey)
		if err != nil {
			vs = nil
		}
		out <- vs
	}()
	return out
}

// firstIdentity reads the first (oldest) of walvault.json's data
// versions when there are several and it differs from current, the bytes
// read as the current one; ok is false when there is nothing to prefer:
// one version, the first identical (a copy put back), or the first not
// a usable identity either.
func firstIdentity(ctx context.Context, b storage.Backend, versions []storage.ObjectVersion, current []byte) (Identity, int, bool) {
	v, ok := storage.AsVersioned(b)
	if !ok || len(versions) < 2 {
		return Identity{}, 0, false
	}
	oldest := versions[len(versions)-1]
	rc, _, err := v.GetVersion(ctx, IdentityKey, oldest.ID)
	if err != nil {
		return Identity{}, 0, false
	}
	data, err := readIdentity(rc)
	if err != nil || bytes.Equal(data, current) {
		return Identity{}, 0, false
	}
	id, err := parseIdentity(data, b.Location())
	if err != nil {
		return Identity{}, 0, false
	}
	return id, len(versions), true
}

// readIdentity reads and closes rc. The identity is tiny; a limit keeps a
// hostile object from using memory.
func readIdentity(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IdentityKey, err)
	}
	return data, nil
}

// parseIdentity decodes and checks walvault.json's content.
func parseIdentity(data []byte, location string) (Identity, error) {
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, &identityError{fmt.Errorf("%s in %s is not valid JSON: %w", IdentityKey, location, err)}
	}
	if id.FormatVersion > FormatVersion {
		return Identity{}, &identityError{fmt.Errorf("repository %s has format version %d, newer than this walvault understands (%d): upgrade walvault", location, id.FormatVersion, FormatVersion)}
	}
	if id.FormatVersion < 1 || id.SystemID == "" {
		return Identity{}, &identityError{fmt.Errorf("%s in %s lacks format_version or system_identifier: it was not written by walvault", IdentityKey, location)}
	}
	if _, err := ParseCompression(string(id.Compression)); err != nil {
		return Identity{}, &identityError{fmt.Errorf("%s in %s: %w", IdentityKey, location, err)}
	}
	if err := id.Lock().Validate(); err != nil {
		return Identity{}, &identityError{fmt.Errorf("%s in %s: %w", IdentityKey, location, err)}
	}
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
