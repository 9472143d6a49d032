// Package archive is wal-push: it checks a file PostgreSQL hands to
// archive_command, compresses it, and stores it in the repository exactly
// once. Read push.go first; conflict.go says what happens when the name is
// already taken, identitycache.go what a push may skip when it remembers the
// repository's identity, and lz4frame.go how a segment is compressed and
// hashed on all cores at once.
//
// With Options.Lock every object is written under S3 Object Lock, and a
// push whose policy is not the one walvault.json records is refused.
//
// It must never overwrite an archived object, never report success before
// the object is durable, and never read configuration itself: cmd/ passes
// Options.
package archive
