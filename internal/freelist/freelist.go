package freelist

// List hands out buffers of Size bytes and keeps up to the bound it was
// made with of those given back.
type List struct {
	size int
	free chan *[]byte
}

// New keeps up to keep buffers (at least one) of size bytes.
func New(size, keep int) *List {
	return &List{size: size, free: make(chan *[]byte, max(keep, 1))}
}

// Get returns a kept buffer, or a new one, of the list's size.
func (l *List) Get() *[]byte {
	select {
	case b := <-l.free:
		*b = (*b)[:l.size]
		return b
	default:
		b := make([]byte, l.size)
		return &b
	}
}

// Put keeps b for a later Get, or leaves it to the collector when the
// list is full (more were out at once than usual).
func (l *List) Put(b *[]byte) {
	select {
	case l.free <- b:
	default:
	}
}
