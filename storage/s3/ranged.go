package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/freelist"
	"github.com/walvault/walvault/storage"
)

// Ranged reads. One connection carries only so much over a long round trip
// (TCP's window grows slowly, and an idle connection starts again from slow
// start), so Get reads an object larger than one chunk over several.
const (
	// getChunkSize is the range Get asks for first, and the size of each
	// later range: a compressed WAL segment fits (one request), a 16 MiB
	// one that does not compress is two. Larger chunks pay a round trip
	// less often but hold more memory each.
	getChunkSize = 8 << 20
	// getBuffers is how many chunk buffers the Gets of one Backend hold
	// together, at most (32 MiB): restore reads up to 8 parts at once and
	// wal-fetch prefetches beside it, and memory must not grow with them.
	getBuffers = 4
	// getAhead is how many chunks one Get downloads ahead of its reader at
	// most, so one large Get leaves a buffer to another.
	getAhead = 3
	// getDirectChunks is how many chunks a Get that finds no free buffer
	// reads in its one request: long enough that the round trip it waits
	// for is a small part of it.
	getDirectChunks = 4
)

// setGetChunks sizes Get's chunks and the budget of buffers all the Gets of
// b share; buffers 0 makes every Get read its ranges itself.
func (b *Backend) setGetChunks(size int64, buffers int) {
	b.getChunk = size
	b.getBudget = make(chan struct{}, buffers)
	b.getBuffers = freelist.New(int(size), buffers)
}

// takeBuffer takes a chunk buffer from the budget, or returns nil when all
// are out: it never waits.
func (b *Backend) takeBuffer() *[]byte {
	select {
	case b.getBudget <- struct{}{}:
		return b.getBuffers.Get()
	default:
		return nil
	}
}

func (b *Backend) returnBuffer(buf *[]byte) {
	b.getBuffers.Put(buf)
	<-b.getBudget
}

// rangedBody hands out an object read in ranges, strictly in order: first
// the first answer's body, then each later chunk, either downloaded ahead
// into a buffer from the Backend's budget or, when none was free, read by a
// request of its own when the reader gets there. Every later request
// carries If-Match with the first answer's ETag, so bytes of a replaced
// object are refused (412), never mixed in; each answer's ETag, range and
// length are checked, and the reader reports EOF only after exactly size
// bytes.
//
// Read and Close may run at once: Close cancels the requests first, so a
// Read waiting on one returns, then takes mu to give the buffers back.
type rangedBody struct {
	b      *Backend
	key    string
	in     s3.GetObjectInput // the first request, without its range
	etag   string
	size   int64
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the downloads ahead

	mu     sync.Mutex
	pos    int64         // offset of the next byte handed out
	end    int64         // end of the range being read
	stream io.ReadCloser // the range being read, when streamed
	// streamFrom is where stream's body starts, resumes how often the
	// streamed range was asked for again after an attempt that moved
	// less than resumeProgress (resumeStream).
	streamFrom int64
	resumes    int
	chunk      *chunk   // the range being read, when downloaded ahead
	ahead      []*chunk // downloads under way, in order, from end on
	next       int64    // where the first range not yet asked for starts
	err        error    // sticky
}

// chunk is a range downloaded ahead into buf. err and buf's bytes are the
// download's until done is closed.
type chunk struct {
	off, n int64
	buf    *[]byte
	done   chan struct{}
	err    error
}

func (b *Backend) newRangedBody(ctx context.Context, cancel context.CancelFunc, key string, in s3.GetObjectInput, etag string, size int64, first io.ReadCloser, firstLen int64) *rangedBody {
	r := &rangedBody{b: b, key: key, in: in, etag: etag, size: size, ctx: ctx, cancel: cancel,
		stream: first, end: firstLen, next: firstLen}
	r.fill()
	return r
}

// fill starts downloads of the next chunks while buffers are free.
func (r *rangedBody) fill() {
	for len(r.ahead) < getAhead && r.next < r.size {
		buf := r.b.takeBuffer()
		if buf == nil {
			return
		}
		c := &chunk{off: r.next, n: min(r.b.getChunk, r.size-r.next), buf: buf, done: make(chan struct{})}
		r.next += c.n
		r.ahead = append(r.ahead, c)
		r.wg.Add(1)
		go r.download(c)
	}
}

// rangeResumes bounds how often a chunk whose body broke is asked for
// again from where it broke after an attempt that moved less than
// resumeProgress: one that moved at least that much does not count, so a
// link that cuts every connection after a megabyte still gets the object
// whole (explore25b F3), and one that moves next to nothing gives up.
const rangeResumes = 5

// resumeProgress is what an attempt must move not to count against
// rangeResumes.
const resumeProgress = 64 << 10

func (r *rangedBody) download(c *chunk) {
	defer r.wg.Done()
	defer close(c.done)
	var got int64
	weak := 0 // attempts that moved less than resumeProgress
	for attempt := 1; ; attempt++ {
		body, err := r.open(c.off+got, c.n-got)
		if err != nil {
			c.err = err
			return
		}
		n, err := io.ReadFull(body, (*c.buf)[got:c.n])
		body.Close()
		got += int64(n)
		if err == nil {
			return
		}
		// A body that broke mid-range (a connection cut after so many
		// bytes, a proxy's idle limit): the rest is asked for from where
		// it broke, of the same version (If-Match), while each attempt
		// moves bytes. Starting the range over would never get past a
		// link that cuts every connection at the same point.
		if n < resumeProgress {
			weak++
		}
		if n == 0 || weak >= rangeResumes || r.ctx.Err() != nil {
			c.err = r.readError(c.off, c.n, err)
			return
		}
		if log := storage.CallLog(r.ctx, r.b.log); log != nil {
			log.Debug("a range of the object broke; asking for the rest", "key", r.key, "from", c.off+got, "to", c.off+c.n-1, "attempt", attempt, "err", err)
		}
	}
}

// open asks for n bytes from off, of the version the first answer was of.
func (r *rangedBody) open(off, n int64) (io.ReadCloser, error) {
	in := r.in
	in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	conditional := !r.b.ifMatchRefused.Load()
	if conditional {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.b.client.GetObject(r.ctx, &in, r.b.rangeRetries)
	if err != nil && conditional && isNotImplemented(err) {
		// No documented S3 server refuses If-Match on a GET, but one that
		// did would otherwise fail every object over one chunk. Without
		// it, check still refuses the bytes of a replaced object by the
		// ETag each answer must then carry: the server sends them anyway.
		r.b.ifMatchRefused.Store(true)
		conditional, in.IfMatch = false, nil
		out, err = r.b.client.GetObject(r.ctx, &in, r.b.rangeRetries)
	}
	if err != nil {
		if isPreconditionFailed(err) {
			err = fmt.Errorf("the object changed while it was read (its ETag is no longer %s): %w", r.etag, err)
		} else {
			err = r.b.translate(err)
		}
		return nil, storage.OpError("get", r.key, fmt.Errorf("bytes %d-%d: %w", off, off+n-1, err))
	}
	if err := r.check(out, off, n, conditional); err != nil {
		out.Body.Close()
		return nil, storage.OpError("get", r.key, fmt.Errorf("bytes %d-%d: %w", off, off+n-1, err))
	}
	return out.Body, nil
}

// check refuses an answer that is not exactly the range asked for, of the
// object the first answer was of. An answer to a request without If-Match
// (conditional false) must carry the ETag: nothing else ties it to the
// first answer's object.
func (r *rangedBody) check(out *s3.GetObjectOutput, off, n int64, conditional bool) error {
	etag := aws.ToString(out.ETag)
	if etag == "" && !conditional {
		return errors.New("the server takes no If-Match and answered a range without an ETag: cannot tell the object did not change while it was read")
	}
	if etag != "" && etag != r.etag {
		return fmt.Errorf("the object changed while it was read: ETag %s, then %s", r.etag, etag)
	}
	cr := aws.ToString(out.ContentRange)
	start, end, total, ok := parseContentRange(cr)
	if !ok || start != off || end != off+n-1 || total != r.size {
		return fmt.Errorf("the server answered with Content-Range %q, want bytes %d-%d/%d", cr, off, off+n-1, r.size)
	}
	if got := out.ContentLength; got != nil && *got != n { // none: a chunked answer, read to its length
		return fmt.Errorf("the server answered with %d bytes, want %d", got, n)
	}
	return nil
}

// readError is a failed read of the range of n bytes from off: a body that
// ended early is an error too, never a short object.
func (r *rangedBody) readError(off, n int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("the body ended early: %w", io.ErrUnexpectedEOF)
	}
	return storage.OpError("get", r.key, fmt.Errorf("reading bytes %d-%d: %w", off, off+n-1, err))
}

func (r *rangedBody) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	for r.pos == r.end {
		if r.pos == r.size {
			return 0, io.EOF
		}
		if err := r.advance(); err != nil {
			r.fail(err)
			return 0, err
		}
	}
	r.fill()
	p = p[:min(int64(len(p)), r.end-r.pos)]
	var n int
	if r.chunk != nil {
		n = copy(p, (*r.chunk.buf)[r.pos-r.chunk.off:])
	} else {
		var err error
		n, err = r.stream.Read(p)
		if err != nil && (err != io.EOF || r.pos+int64(n) < r.end) {
			if rerr := r.resumeStream(r.pos+int64(n), err); rerr != nil {
				r.fail(rerr)
			}
		}
	}
	r.pos += int64(n)
	if r.pos == r.end {
		r.release()
	}
	if n > 0 {
		return n, nil
	}
	return 0, r.err
}

// resumeStream asks for the rest of the streamed range from at, where its
// body broke with cause, of the same version (If-Match), as download does
// for a chunk: up to rangeResumes times a range, while each attempt moves
// bytes. It returns the error that ends the read when it may not.
func (r *rangedBody) resumeStream(at int64, cause error) error {
	if at-r.streamFrom < resumeProgress {
		r.resumes++
	}
	if at == r.streamFrom || r.resumes >= rangeResumes || r.ctx.Err() != nil {
		return r.readError(at, r.end-at, cause)
	}
	r.stream.Close()
	r.stream = nil
	body, err := r.open(at, r.end-at)
	if err != nil {
		return err
	}
	if log := storage.CallLog(r.ctx, r.b.log); log != nil {
		log.Debug("a range of the object broke; asking for the rest", "key", r.key, "from", at, "to", r.end-1, "err", cause)
	}
	r.stream, r.streamFrom = body, at
	return nil
}

// fail makes err the answer to every later Read and stops the downloads:
// nothing after the failed range will be handed out.
func (r *rangedBody) fail(err error) {
	r.err = err
	r.cancel()
}

// advance moves to the range from end on, which a download ahead holds or
// else a request of the reader's own reads.
func (r *rangedBody) advance() error {
	if len(r.ahead) > 0 {
		c := r.ahead[0]
		r.ahead = r.ahead[1:]
		<-c.done // ends: its request is on r.ctx
		r.chunk, r.end = c, c.off+c.n
		return c.err
	}
	n := min(getDirectChunks*r.b.getChunk, r.size-r.end)
	body, err := r.open(r.end, n)
	if err != nil {
		return err
	}
	r.stream, r.streamFrom, r.resumes = body, r.end, 0
	r.end += n
	r.next = r.end
	return nil
}

// release gives back what holds the range just read.
func (r *rangedBody) release() {
	if r.stream != nil {
		r.stream.Close()
		r.stream = nil
	}
	if r.chunk != nil {
		r.b.returnBuffer(r.chunk.buf)
		r.chunk = nil
	}
}

// Close ends the requests in flight, waits for the downloads to stop and
// gives their buffers back.
func (r *rangedBody) Close() error {
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wg.Wait()
	r.release()
	for _, c := range r.ahead {
		r.b.returnBuffer(c.buf)
	}
	r.ahead = nil
	if r.err == nil {
		r.err = storage.OpError("get", r.key, errors.New("read after Close"))
	}
	return nil
}

// parseContentRange reads "bytes START-END/TOTAL"; ok is false for anything
// else, an unknown total ("*") included.
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, totalText, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	startText, endText, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err [3]error
	start, err[0] = strconv.ParseInt(startText, 10, 64)
	end, err[1] = strconv.ParseInt(endText, 10, 64)
	total, err[2] = strconv.ParseInt(totalText, 10, 64)
	if errors.Join(err[:]...) != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// isRangeNotSatisfiable reports a 416: a range of an empty object.
func isRangeNotSatisfiable(err error) bool {
	code, status := errorCode(err)
	return code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable
}
