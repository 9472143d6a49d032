package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/walvault/walvault/repository"
)

// DefaultIdentityCacheTTL is how long wal-push trusts a repository identity
// it verified, before it reads walvault.json again. It bounds the one risk
// of the cache: a repository replaced at the same location (a bucket
// emptied and reused by another cluster) could receive this cluster's new
// segments for at most this long. Overwrites stay impossible either way:
// every upload is a conditional create.
const DefaultIdentityCacheTTL = 5 * time.Minute

// The identity cache spares one wal-push the GET of walvault.json (a round
// trip, and on a fresh process a TLS handshake) that checks the segment
// belongs to the repository's cluster. It lives beside the push-ahead
// records: pg_wal/walvault/identity/<hash of the location>.json, one file
// per repository location, so archive_commands that push to two
// repositories do not evict each other's.
//
// What the cache may skip and what it may not:
//   - It stands in for the GET only. The segment's header is still checked
//     against its name, and its system identifier and segment size, and the
//     configured lock policy, against the cached identity.
//   - It never refuses a push: when the segment or the lock policy does not
//     match the cached identity, or the entry is older than the TTL, from
//     another location, unreadable or not walvault's, the push reads
//     walvault.json and the repository decides, as without a cache.
//   - It is written only from a walvault.json just read (or created), with
//     the time of that read; using it does not extend its life, so the
//     repository is read at least once per TTL.
//   - A push whose upload fails or conflicts drops the entry, and a
//     conflict after a cached check is re-checked against walvault.json
//     before it is reported, so a replaced repository is named as such.
const identityDirName = "identity"

// identityEntry is one cache file.
type identityEntry struct {
	Repository string              `json:"repository"`
	VerifiedAt time.Time           `json:"verified_at"`
	Identity   repository.Identity `json:"identity"`
}

// identityCache is the cache entry of one repository location seen from
// one pg_wal; the zero value (TTL 0) is a cache that is off.
type identityCache struct {
	walDir   string
	location string
	ttl      time.Duration
}

func (c identityCache) on() bool { return c.ttl > 0 }

// identityCacheFor is the cache of a push of path: in the pg_wal path is
// in (a directory named so, as PostgreSQL passes %p, or with
// archive_status beside it), and off for a file elsewhere (a segment
// pushed by hand), which leaves nothing beside it.
func identityCacheFor(path, location string, ttl time.Duration) identityCache {
	walDir := filepath.Dir(path)
	if filepath.Base(walDir) != "pg_wal" {
		if fi, err := os.Stat(filepath.Join(walDir, "archive_status")); err != nil || !fi.IsDir() {
			return identityCache{}
		}
	}
	return identityCache{walDir: walDir, location: location, ttl: ttl}
}

func (c identityCache) path() string {
	sum := sha256.Sum256([]byte(c.location))
	return filepath.Join(c.walDir, stateDirName, identityDirName, hex.EncodeToString(sum[:8])+".json")
}

// load returns the cached identity if it was verified less than the TTL
// before now. Anything else (no entry, another location, a torn or foreign
// file, a time in the future) is a miss.
func (c identityCache) load(now time.Time) (repository.Identity, bool) {
	e, ok := c.entry()
	if !ok {
		return repository.Identity{}, false
	}
	if age := now.Sub(e.VerifiedAt); age < 0 || age >= c.ttl {
		return repository.Identity{}, false
	}
	id := e.Identity
	if id.FormatVersion < 1 || id.FormatVersion > repository.FormatVersion || id.SystemID == "" || id.WALSegmentSize == 0 {
		return repository.Identity{}, false
	}
	if _, err := repository.ParseCompression(string(id.Compression)); err != nil {
		return repository.Identity{}, false
	}
	if id.Lock().Validate() != nil {
		return repository.Identity{}, false
	}
	return id, true
}

// lastVerified is when the entry for this location was verified, however
// long ago (zero: no entry): evidence that a repository was there.
func (c identityCache) lastVerified() time.Time {
	e, _ := c.entry()
	return e.VerifiedAt
}

// RepositorySeen is when a wal-push of the server whose pg_wal is walDir
// last read walvault.json at location (zero: never, or no record): check
// tells a repository gone from its location (a disk not mounted) from one
// not yet written.
func RepositorySeen(walDir, location string) time.Time {
	return identityCache{walDir: walDir, location: location, ttl: DefaultIdentityCacheTTL}.lastVerified()
}

// entry reads the cache file of this location: false when the cache is
// off, or the file is missing, torn, foreign or of another location.
func (c identityCache) entry() (identityEntry, bool) {
	if !c.on() {
		return identityEntry{}, false
	}
	data, err := os.ReadFile(c.path())
	if err != nil {
		return identityEntry{}, false
	}
	var e identityEntry
	if json.Unmarshal(data, &e) != nil || e.Repository != c.location {
		return identityEntry{}, false
	}
	return e, true
}

// store records id as verified at now.
func (c identityCache) store(id repository.Identity, now time.Time) error {
	if !c.on() {
		return nil
	}
	id.Hidden = false // not stored (json:"-"); said when it was read
	data, err := json.Marshal(identityEntry{Repository: c.location, VerifiedAt: now.UTC(), Identity: id})
	if err != nil {
		return err
	}
	dir, err := ensureStateDir(c.walDir, identityDirName)
	if err == nil {
		err = replaceFile(dir, filepath.Base(c.path()), data)
	}
	if err != nil {
		return fmt.Errorf("cache the repository identity: %w", err)
	}
	return nil
}

// drop removes the entry, so the next push reads walvault.json.
func (c identityCache) drop() error {
	if !c.on() {
		return nil
	}
	err := os.Remove(c.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
