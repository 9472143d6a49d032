package s3

// SetVersionsPageSize makes ListObjectVersions pages hold at most n
// entries, so tests cross page boundaries with a handful of objects.
func SetVersionsPageSize(b *Backend, n int32) { b.versionsPageSize = n }
