// Package s3 is the storage.Backend on Amazon S3 and S3-compatible servers
// (Versity S3 Gateway, MinIO, Ceph RGW), built on aws-sdk-go-v2.
//
// Read s3.go first (Config, New, the HTTP client), then put.go (single and
// multipart uploads, conditional create, Object Lock) and errors.go (how SDK
// errors become storage.ErrNotFound, ErrExists, ErrLocked, ErrUnsupported or
// permanent errors). lock.go checks a bucket's Object Lock before a Put
// with retention; delete.go deletes by version id.
//
// What it does:
//
//   - Credentials come only from the standard AWS chain
//     (config.LoadDefaultConfig); they are never part of Config, of an
//     error or of Location.
//   - Put sends objects up to PartSize in one PutObject and larger streams
//     as a multipart upload. Memory per Put is at most PartSize x
//     Concurrency (64 MiB with the defaults). IfNotExists is If-None-Match: *
//     on PutObject and on CompleteMultipartUpload, so the create is atomic on
//     the server; 412 (and 409 ConditionalRequestConflict) become
//     storage.ErrExists. A failed multipart upload is aborted.
//   - Retention sets ObjectLockMode and ObjectLockRetainUntilDate with a
//     CRC32 checksum, which S3 requires on Object Lock writes. On a bucket
//     without Object Lock the server refuses and Put returns
//     storage.ErrUnsupported.
//   - storage.ErrNotFound means S3 said the key is missing (NoSuchKey, or a
//     HEAD 404 after HeadBucket confirmed the bucket). 403 is never "not
//     found": S3 answers 403 for a missing key when the caller lacks
//     s3:ListBucket, so it is a permanent error with a permissions hint.
//   - The SDK retries at most 3 attempts; walvault's retry decorator
//     (storage.WithRetry) retries whole operations. Dial (5s), TLS handshake
//     (10s) and response header (30s) timeouts keep a dead server from
//     hanging a call; the caller's context bounds the rest.
//
// Versioned and Object Lock buckets: Delete removes the current version by
// its version id, so a locked version is refused (storage.ErrLocked) rather
// than hidden behind a delete marker, which is what a DELETE without a
// version id does there. Older, noncurrent versions of a key (left when it
// was overwritten, which walvault's write-once layout avoids) are not
// removed and one of them becomes current again; pruning noncurrent versions
// is left to a later change or a bucket lifecycle rule.
//
// What it must not do: read configuration from the environment itself
// (beyond the AWS chain), log, or keep package-level state.
package s3
