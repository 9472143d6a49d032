package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"
)

// Backend stores immutable objects under slash-separated keys such as
// "wal/00000001/000000010000000000000001.lz4".
//
// Contract, for every implementation:
//   - Keys are relative, use "/" as separator, never start or end with "/",
//     and contain no "." or ".." element and no empty element.
//   - Put makes the object durable before returning nil: an object is either
//     fully visible with all its metadata or absent. With IfNotExists it is an
//     atomic conditional create: of two racing puts of one key exactly one
//     succeeds, the other gets ErrExists and the stored object is unchanged.
//   - Get and Stat of a missing key return an error for which
//     errors.Is(err, ErrNotFound) holds. No other failure (permission denied,
//     network error, timeout) may be reported as ErrNotFound: callers treat
//     "not found" as an authoritative answer.
//   - List calls fn exactly once per object whose key starts with prefix, in
//     lexical key order, and stops at the first error fn returns (returning
//     it). It honours ctx cancellation. Metadata may be nil in listed entries.
//   - Delete removes the object's data (on a versioned S3 bucket, the
//     current version by its id), never just hides it behind a delete
//     marker. Delete of a missing key returns ErrNotFound; of an object
//     under retention it returns ErrLocked and the object stays readable.
//   - Metadata keys are lower-case ASCII letters, digits and '-'; values are
//     printable ASCII. Backends may refuse other metadata.
//   - Every method may be called concurrently.
type Backend interface {
	// Put stores r under key. It reads r to EOF.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error
	// Get opens the object for reading. The caller closes the reader. info
	// carries size and metadata, as Stat would.
	Get(ctx context.Context, key string) (rc io.ReadCloser, info ObjectInfo, err error)
	// Stat returns size, modification time and metadata without the body.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List walks the objects under prefix (see the contract above).
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes one object.
	Delete(ctx context.Context, key string) error
	// Location describes the repository for messages: never with secrets.
	Location() string
	// Close releases resources; the backend is unusable afterwards.
	Close() error
}

// PutOptions are the per-call options of Put.
type PutOptions struct {
	// IfNotExists makes Put an atomic create: if key exists, Put returns
	// ErrExists and leaves the stored object untouched.
	IfNotExists bool
	// Size is the number of bytes r will yield, or -1 (or 0 with an empty
	// reader) when unknown. Backends use it to pick a single request over a
	// multipart stream; it is only a hint.
	Size int64
	// Metadata is stored with the object and returned by Stat and Get.
	Metadata map[string]string
	// Retention, when set, locks the object (S3 Object Lock) until the given
	// time. Backends that cannot lock objects return an error wrapping
	// ErrUnsupported rather than silently storing an unlocked object.
	Retention *Retention
	// Token, with IfNotExists, is a value unique to this put that a backend
	// may store with the object (S3: PutTokenKey): a create refused over
	// an object carrying it is this put's own earlier attempt, whose
	// answer was lost, and succeeds. "": the backend makes one per call;
	// the retry decorator sets one for all its attempts.
	Token string
}

// PutTokenKey is the metadata key an S3 object's PutOptions.Token goes
// under. Stat and Get leave it out of ObjectInfo.Metadata.
const PutTokenKey = "walvault-put"

// ReservedMetadataBytes is the room of an object's user metadata (S3:
// 2 KB) that backends may take for themselves (PutTokenKey), which
// callers filling it to the limit leave free.
const ReservedMetadataBytes = 64

// NewPutToken is a random PutOptions.Token.
func NewPutToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RetentionMode is an S3 Object Lock mode.
type RetentionMode string

const (
	// Governance lets a principal with s3:BypassGovernanceRetention delete early.
	Governance RetentionMode = "GOVERNANCE"
	// Compliance lets nobody delete the object before Until, not even root.
	Compliance RetentionMode = "COMPLIANCE"
)

// Retention is an Object Lock retention to apply to a new object.
type Retention struct {
	Mode  RetentionMode
	Until time.Time
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64 // stored bytes
	ModTime time.Time
	// Metadata as given to Put; may be nil in List results.
	Metadata map[string]string
	// RetainUntil is the Object Lock retain-until date, zero when unlocked or
	// unknown (Get and List may not report it; Stat does).
	RetainUntil time.Time
}
