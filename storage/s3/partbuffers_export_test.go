package s3

// PartBuffersOut is how many part buffers b's Puts hold now.
func PartBuffersOut(b *Backend) int { return len(b.partSlots) }
