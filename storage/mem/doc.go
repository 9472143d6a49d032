// Package mem is a storage.Backend in memory, for tests: it passes the
// storagetest conformance suite and plays a versioned S3 bucket with
// Object Lock, so unit tests need neither a disk nor a server.
//
// Like such a bucket it keeps versions: Put adds one, Delete removes the
// current one by its id (refused with storage.ErrLocked while it is
// retained), and Hide adds a delete marker, as an attacker's DELETE without
// a version id does. It implements storage.Versioned: ListHidden,
// GetHidden and Unhide over those markers, and Versions and GetVersion,
// which reach the versions a Put without IfNotExists (an overwrite) left
// below the current one. A conditional create of a hidden key is refused
// with storage.ErrExists, as Versity S3 Gateway does (see storage/s3's
// doc.go).
//
// SetClock replaces the clock that dates objects and ends retentions, so a
// test can pass a lock's end without waiting for it.
//
// Bodies are held in memory whole: keep test objects small.
package mem
