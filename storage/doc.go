// Package storage is the repository's storage contract: the small Backend
// interface every backend implements, the typed errors callers test with
// errors.Is, and decorators (retry) that add behaviour around any backend.
//
// It must not know about WAL, backups or configuration files; those live in
// archive/, restore/ and cmd/. Read backend.go first, then errors.go.
// Concrete backends live in storage/file and storage/s3; storage/open turns a
// repository URL into one; storage/storagetest is the conformance suite every
// backend passes.
package storage
