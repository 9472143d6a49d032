// Package open is the one place that lists the storage backends: it turns a
// repository URL (file:///path or s3://bucket/prefix) into a storage.Backend.
// Backends do not register themselves; adding one means adding a case here.
package open
