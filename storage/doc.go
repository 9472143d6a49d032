// Package storage is the repository's storage contract: the small Backend
// interface every backend implements, the typed errors callers test with
// errors.Is, and decorators that add behaviour around any backend.
//
// Decorators, one concern per file: retry.go (backoff, one retry budget
// per call), hidden.go (read-through of objects hidden by delete markers),
// count.go (calls counted, for tests and measurements). stack.go's Stack
// is the one place that stacks them, in one order; storage/open's Stacked
// is how commands get a stacked backend. Each decorator is
// storage.Versioned exactly when what it wraps is, so the versioned calls
// go through the same layers. uploads.go's Uploads (S3's incomplete
// multipart uploads, a directory's temp files) is found through the
// decorators with AsUploads and not retried by them.
//
// It must not know about WAL, backups or configuration files; those live in
// archive/, restore/ and cmd/. Read backend.go first, then errors.go.
// Concrete backends live in storage/file, storage/s3 and storage/mem (in
// memory, for tests); storage/open turns a repository URL into one;
// storage/storagetest is the conformance suite every backend passes, and
// holds the fault-injecting backend tests use.
package storage
