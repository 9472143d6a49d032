package s3

// partBuffers hands out part buffers of one size and keeps up to cap(free)
// returned ones for the next part. A sync.Pool would do the same but drops
// its contents at every collection, and backup-push runs under a soft
// memory limit that makes collections frequent: each part then cost a new
// zeroed allocation of the part size and its page faults (about 0.6 s of
// CPU per 1.5 GiB backup).
type partBuffers struct {
	size int64
	free chan *[]byte
}

func newPartBuffers(size int64, keep int) *partBuffers {
	return &partBuffers{size: size, free: make(chan *[]byte, max(keep, 1))}
}

func (p *partBuffers) get() *[]byte {
	select {
	case buf := <-p.free:
		return buf
	default:
		buf := make([]byte, p.size)
		return &buf
	}
}

// put keeps buf for reuse, or leaves it to the collector when enough are
// kept already (more Puts ran at once than usual).
func (p *partBuffers) put(buf *[]byte) {
	select {
	case p.free <- buf:
	default:
	}
}
