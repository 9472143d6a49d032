// Package repository knows the on-storage format of a walvault repository:
// where each kind of object lives (layout.go), the repository identity
// written once by the first push (identity.go) with its Object Lock policy
// (lock.go), how object bodies are compressed (compression.go), and which
// of its objects a delete marker hides (hidden.go).
//
// It must not talk to PostgreSQL or read configuration; it only turns domain
// values into keys and bytes, on top of any storage.Backend.
//
//	walvault.json                      identity: format, system id, segment size, compression, lock policy
//	wal/TTTTTTTT/<24-hex-name>[.lz4]   one object per segment (and .partial)
//	wal/TTTTTTTT/<name>.backup         backup history files, uncompressed
//	wal/TTTTTTTT.history               timeline history files, uncompressed
package repository
