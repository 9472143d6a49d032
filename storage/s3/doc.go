// Package s3 is the storage.Backend on Amazon S3 and S3-compatible servers
// (Versity S3 Gateway, MinIO, Ceph RGW), built on aws-sdk-go-v2.
//
// Read s3.go first (Config, New, the HTTP client), then put.go (single and
// multipart uploads, conditional create, Object Lock) and errors.go (how SDK
// errors become storage.ErrNotFound, ErrExists, ErrLocked, ErrUnsupported or
// permanent errors); get.go and ranged.go read objects. lock.go checks a
// bucket's Object Lock before a Put with retention; delete.go deletes by
// version id; versioned.go sees through delete markers (storage.Versioned).
//
// What it does:
//
//   - Credentials come only from the standard AWS chain
//     (config.LoadDefaultConfig); they are never part of Config, of an
//     error or of Location.
//   - Put sends objects up to PartSize in one PutObject and larger streams
//     as a multipart upload, created while its second part is read. All
//     Puts of a Backend hold at most PartSize x Concurrency (64 MiB with
//     the defaults). IfNotExists is If-None-Match: *
//     on PutObject and on CompleteMultipartUpload, so the create is atomic on
//     the server; 412 (and 409 ConditionalRequestConflict) become
//     storage.ErrExists. A failed multipart upload is aborted, on a
//     context of its own when the caller's was cancelled (Ctrl-C). One
//     that cannot be (the server is unreachable, or the process was
//     killed) is left for uploads.go: ListUploads and AbortUpload
//     (storage.Uploads), which verify and delete use.
//   - Get asks for the first 8 MiB only (a compressed WAL segment is one
//     request). A larger object streams that answer while its later 8 MiB
//     chunks download in parallel (ranged.go), each held to the first
//     answer's ETag with If-Match and checked for its range and length, and
//     is handed out strictly in order; a changed object or a short chunk is
//     a read error. The Gets of a Backend share 4 chunk buffers (32 MiB);
//     one that finds none free reads its next ranges itself. A server that
//     ignores Range gets one request, as before; an object without a strong
//     ETag (none, or a weak one, which If-Match never matches) is asked for
//     again whole.
//   - Retention sets ObjectLockMode and ObjectLockRetainUntilDate with a
//     CRC32 checksum, which S3 requires on Object Lock writes. On a bucket
//     without Object Lock the server refuses and Put returns
//     storage.ErrUnsupported.
//   - storage.ErrNotFound means S3 said the key is missing (NoSuchKey, or a
//     HEAD 404 once HeadBucket confirmed the bucket: asked beside the
//     Backend's first HEAD and remembered once found, see bucketcheck.go,
//     so an absent key costs one round trip; a HeadBucket 404 is checked
//     with a listing, whose answer has a body, before the bucket is called
//     missing). 403 is never "not
//     found": S3 answers 403 for a missing key when the caller lacks
//     s3:ListBucket, so it is a permanent error with a permissions hint.
//   - One retry budget per call: the SDK's retryer is off, and walvault's
//     retry decorator (storage.WithRetry) retries whole operations, knowing
//     deadlines, rewindable bodies, typed answers and the versioned calls.
//     The requests of a multipart upload keep the SDK's retryer (3
//     attempts): a part is all the decorator cannot redo (it redoes a whole
//     Put, and a streamed one not at all); so do a Get's requests after its
//     first (the decorator redoes only that one). Only a seekable body over
//     1 GiB, sent in parts, gets both. Dial (5s), TLS handshake
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
// Servers answer the same request differently; outcomes are read from what
// the request and the object's headers say, not from one server's status
// (dialect_test.go feeds each documented answer to the real client):
//
//   - A refused DELETE (any 4xx but 404, throttling, bad credentials and
//     clock skew) of a version whose HEAD shows a legal hold ON or a
//     retain-until date in force (up to 15 minutes past, the clock skew S3
//     allows) is storage.ErrLocked: AWS and Ceph RGW say
//     403 AccessDenied, MinIO 400 InvalidRequest "Object is WORM
//     protected", R2 403 ObjectLockedByBucketPolicy, others 409. A refusal
//     of a version HEAD shows unlocked is a plain error. Only when HEAD
//     carries no Object Lock header at all (R2's bucket lock rules, or AWS
//     without s3:GetObjectRetention) do R2's code or a message naming the
//     lock decide.
//   - Throttling and server faults (SlowDown, TooManyRequests, 429,
//     ServiceUnavailable, InternalError, other 5xx) are transient whatever
//     their status, as are the 4xx answers that ask to try again (400
//     RequestTimeout and IncompleteBody, 408, 409 OperationAborted and
//     ConditionalRequestConflict). Every other 4xx is permanent, whether
//     walvault knows its code or not. 403 RequestTimeTooSkewed is
//     permanent and says the host's clock is off.
//   - A DNS "no such host" for <bucket>.<endpoint host> while the
//     endpoint's host resolves is permanent and names s3-path-style;
//     other "no such host" failures are retried (see unresolvedHost).
//
// Hidden objects (versioned.go): anyone with walvault's own credentials
// can send a DELETE without a version id. In a versioned bucket S3 answers
// with success and a delete marker: the object disappears from GET, HEAD
// and listings, while its locked version survives (a DELETE of that
// version by its id is refused while the retention lasts). ListHidden finds
// such keys with ListObjectVersions, GetHidden reads the newest data
// version by its id, and Unhide deletes the key's delete markers by their
// ids (markers are never locked; on AWS this needs s3:DeleteObjectVersion).
// A PUT over a key likewise only adds a version: Versions lists a key's
// data versions (ListObjectVersions with the key as prefix) and GetVersion
// reads one by its id, so a reader can reach the original below.
//
// Versity S3 Gateway v1.8.0 quirks, checked against the gateway:
//
//   - HEAD and GET send no x-amz-object-lock-* headers for a noncurrent
//     version (and GET none for the current one); GetObjectRetention with a
//     version id does answer, so ListHidden uses it for RetainUntil.
//   - ListObjectVersions repeats the last entry of a truncated page at the
//     start of the next one; walkVersions skips entries already seen.
//   - LastModified of a noncurrent version or delete marker is the time it
//     was moved aside when a newer one arrived, not when it was written:
//     Unhide removes every delete marker of a key rather than comparing
//     times.
//   - A conditional create (If-None-Match: *) of a key whose current
//     version is a delete marker fails with 412, as if the object existed.
//     Servers may differ here; walvault settles either answer by reading
//     what is stored, hidden versions included.
//   - DELETE of a locked version by its id is 403 AccessDenied ("object
//     protected by object lock"); with x-amz-bypass-governance-retention
//     the gateway's root user may delete a GOVERNANCE version.
//   - An unknown access key is 404 XAdminUserNotFound (bodiless for HEAD
//     and HeadBucket), a credentials error; a request signed for another
//     region is 400 AuthorizationHeaderMalformed quoting the regions in
//     double quotes (AWS and MinIO use single ones), bodiless for HEAD,
//     without x-amz-bucket-region.
//
// What it must not do: read configuration from the environment itself
// (beyond the AWS chain), log, or keep package-level state.
package s3
