package basebackup

import (
	"hash"
	"io"
	"sync"
)

// bufPipe is a pipe with a bounded buffer of up to bufPipeChunks chunks of
// bufPipeChunk bytes: the compressor writes a part into it while the part's
// Put waits for the previous part's Put to read its body to the end (see
// readToEnd), so reading from the server and compressing go on meanwhile
// without two Puts filling part buffers at once.
type bufPipe struct {
	ch     chan []byte   // full chunks; closed by CloseWithError
	werr   error         // set before ch is closed: nil means EOF
	fill   []byte        // the chunk being filled by Write
	rdone  chan struct{} // closed by the reader's CloseWithError
	rerr   error         // set before rdone is closed
	once   sync.Once
	cur    []byte // the chunk being read
	curBuf []byte // its whole buffer, for the pool
	// sum, when set, hashes every chunk as the reader takes it: the bytes
	// that go to storage, without a copy of their own. Read it only once
	// the reader is done.
	sum hash.Hash
	// beforeEOF, when set, runs before the reader is given io.EOF; an
	// error is given instead. A Put cannot store an object before it has
	// seen its body's end, so this orders what the Puts store.
	beforeEOF func() error
	eof       chan struct{} // closed once the reader was given io.EOF
	sawEOF    bool          // the reader's side only
}

const (
	bufPipeChunk  = 256 << 10
	bufPipeChunks = 16 // 4 MiB: of lz4 output, tens of MiB of tar
)

var bufPipeChunkPool = sync.Pool{New: func() any { b := make([]byte, 0, bufPipeChunk); return &b }}

func newBufPipe() *bufPipe {
	return &bufPipe{ch: make(chan []byte, bufPipeChunks), rdone: make(chan struct{}), eof: make(chan struct{})}
}

// readToEnd is closed once the reader was given io.EOF: it read every
// byte written, and will read no more.
func (p *bufPipe) readToEnd() <-chan struct{} { return p.eof }

// Write copies p into the buffer; it blocks while the buffer is full and
// fails once the reader closed its end.
func (p *bufPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.fill == nil {
			p.fill = (*bufPipeChunkPool.Get().(*[]byte))[:0]
		}
		k := min(len(b), cap(p.fill)-len(p.fill))
		p.fill = append(p.fill, b[:k]...)
		b, n = b[k:], n+k
		if len(p.fill) == cap(p.fill) {
			if err := p.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *bufPipe) send() error {
	select {
	case <-p.rdone:
		return p.rerr
	default:
	}
	select {
	case p.ch <- p.fill:
		p.fill = nil
		return nil
	case <-p.rdone:
		return p.rerr
	}
}

// CloseWrite ends the writer's side: the reader sees err, or io.EOF when
// err is nil, after what was written. Call it once. It returns the error
// of handing over the last bytes (the reader closed its end first).
func (p *bufPipe) CloseWrite(err error) error {
	var serr error
	if err == nil && len(p.fill) > 0 {
		serr = p.send()
		err = serr
	}
	p.werr = err
	close(p.ch)
	return serr
}

// unread reports whether bytes written were never read. Call it only once
// both sides are done: it drops what is left.
func (p *bufPipe) unread() bool {
	left := len(p.cur) > 0
	for c := range p.ch {
		if len(c) > 0 {
			left = true
		}
	}
	return left
}

// Read reads what was written, in order.
func (p *bufPipe) Read(b []byte) (int, error) {
	select {
	case <-p.rdone:
		return 0, p.rerr
	default:
	}
	for len(p.cur) == 0 {
		if p.curBuf != nil {
			b := p.curBuf
			bufPipeChunkPool.Put(&b)
			p.curBuf = nil
		}
		c, ok := <-p.ch
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, p.end()
		}
		if p.sum != nil {
			p.sum.Write(c)
		}
		p.cur, p.curBuf = c, c[:0]
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// end is what the reader gets once every byte written was read: io.EOF,
// unless beforeEOF says otherwise.
func (p *bufPipe) end() error {
	if p.beforeEOF != nil {
		if err := p.beforeEOF(); err != nil {
			return err
		}
	}
	if !p.sawEOF {
		p.sawEOF = true
		close(p.eof)
	}
	return io.EOF
}

// CloseRead ends the reader's side: writes fail with err from then on.
// The buffered chunks are dropped.
func (p *bufPipe) CloseRead(err error) {
	p.once.Do(func() {
		p.rerr = err
		close(p.rdone)
	})
}
