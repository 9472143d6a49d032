package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/parhash"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// archiveNamePattern is what PostgreSQL names its tar streams: "base.tar"
// and "<tablespace oid>.tar". Anything else is refused before it becomes
// part of a key.
// Compiled on first use, as package initialisation runs in every process.
var archiveNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(base|[1-9][0-9]*)\.tar$`) })

// uploader stores the objects of one backup.
type uploader struct {
	b           storage.Backend
	id          string
	compression repository.Compression
	level       int // zstd's level; 0: its default
	// recipients, when set, encrypts every object after compression.
	recipients *crypt.Recipients
	partSize   int64
	meta       map[string]string // stored with every object
	// lock locks every object until now() plus its days; zero is off.
	lock repository.LockPolicy
	now  func() time.Time // nil means time.Now
	// counted is told how many raw bytes of an archive were read; may be nil.
	counted func(n int64)
	// failed, when set, is told at once of a Put that fails, with the
	// error: the backup is lost then, and its caller stops reading from
	// PostgreSQL rather than waiting for a read that may never end
	// (PostgreSQL waits for archive_command before it ends a backup, and
	// the outage that failed the Put may block that too).
	failed func(error)
}

// maxPartsInFlight is how many parts of one archive may be under way at
// once: while part N's Put finishes (the backend sends its last buffers,
// fsyncs, completes the object), part N+1 is already being read from the
// server and compressed, into a bounded buffer (bufPipe, 4 MiB) that its
// Put starts reading once part N's Put has read its body to the end (not
// once it has returned: over a network its last part uploads and its
// completion take round trips, which the 4 MiB would not cover). So two
// Puts may overlap, but only one reads its body at a time: the other only
// sends what it has read and completes its object. The storage bounds its
// buffers across its Puts (S3: concurrency x part size in all, backup-push's
// default 3 x 5 MiB, shared by overlapping Puts; see storage/s3's
// partBuffer), so memory is bounded whatever the archive size: those
// buffers, two bufPipes, the compressor's and the hasher's (parhash: 2 MiB).
const maxPartsInFlight = 2

// archive cuts the tar stream r into parts of partSize raw bytes and
// stores each as it arrives. Parts are plain byte ranges: a restore
// concatenates them. An archive always has at least one part; a part is
// never empty unless the whole archive is.
//
// Up to maxPartsInFlight parts are under way at once (each Put starts
// once the previous one has read its body, and no Put sees the end of its
// body before the previous one has returned, so none stores its object
// after one that failed); they are recorded in order, each with its own
// size and sha256. If any fails, the others are cancelled and waited for, no later
// part is stored, and archive returns the error of the first failing part.
func (u *uploader) archive(ctx context.Context, name string, r io.Reader) ([]repository.BackupPart, error) {
	finish, err := u.startArchive(ctx, name, r)
	if err != nil {
		return nil, err
	}
	return finish()
}

// startArchive is archive up to the end of r: it returns once r is read to
// its end and every part is handed to its Put, and finish then waits for
// the Puts still running (the last one's final requests: over a network,
// a round trip or more that the caller may overlap with other work) and
// returns the parts. finish must be called once, and no Put outlives it;
// on an error nothing is left running and there is no finish.
func (u *uploader) startArchive(ctx context.Context, name string, r io.Reader) (finish func() ([]repository.BackupPart, error), err error) {
	if !archiveNamePattern().MatchString(name) {
		return nil, fmt.Errorf("PostgreSQL sent an archive named %q; walvault expects base.tar or <oid>.tar", name)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer func() {
		if finish == nil {
			cancel(nil)
		}
	}()
	src := &countingReader{r: r, counted: u.counted}
	var (
		parts    []repository.BackupPart
		inFlight []*pendingPart // oldest first
	)
	// collect waits for the oldest part in flight and records it.
	collect := func() error {
		p := inFlight[0]
		inFlight = inFlight[1:]
		part, err := p.wait()
		if err != nil {
			return err
		}
		parts = append(parts, part)
		return nil
	}
	// fail cancels the parts in flight and waits for every Put: none
	// outlives archive. The cause is the first failing part in order that
	// was not merely cancelled because another failed.
	fail := func(err error) error {
		cancel(err)
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range inFlight {
			if _, perr := p.wait(); perr != nil {
				errs = append(errs, perr)
			}
		}
		inFlight = nil
		if len(errs) == 0 {
			errs = append(errs, errors.New("upload failed"))
		}
		err = errs[0]
		for _, e := range errs {
			if !errors.Is(e, context.Canceled) {
				err = e
				break
			}
		}
		return src.wrap(name, err)
	}
	for seq := 0; ; seq++ {
		body := io.LimitReader(src, u.partSize)
		if seq > 0 {
			// Is there anything left? Read one byte ahead so the last part
			// is never an empty object.
			var one [1]byte
			n, err := io.ReadFull(src, one[:])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fail(err)
			}
			body = io.MultiReader(bytes.NewReader(one[:n]), io.LimitReader(src, u.partSize-1))
		}
		for len(inFlight) >= maxPartsInFlight {
			if err := collect(); err != nil {
				return nil, fail(err)
			}
		}
		key := repository.BackupPartKey(u.id, name, seq, u.compression)
		var prev *pendingPart
		if len(inFlight) > 0 {
			prev = inFlight[len(inFlight)-1]
		}
		p, err := u.start(ctx, key, body, u.compression, prev)
		if err != nil {
			return nil, fail(err)
		}
		inFlight = append(inFlight, p)
		if p.err != nil {
			return nil, fail(nil)
		}
		if p.raw < u.partSize {
			break // the stream ended inside this part
		}
	}
	return func() ([]repository.BackupPart, error) {
		defer cancel(nil)
		for len(inFlight) > 0 {
			if err := collect(); err != nil {
				return nil, fail(err)
			}
		}
		return parts, nil
	}, nil
}

// put stores r as one object and returns its record once stored.
func (u *uploader) put(ctx context.Context, key string, r io.Reader, c repository.Compression) (repository.BackupPart, error) {
	p, err := u.start(ctx, key, r, c, nil)
	if err != nil {
		return repository.BackupPart{}, err
	}
	return p.wait()
}

// pendingPart is a part whose bytes have all been handed to its Put (or
// that failed while handing them over), with its Put perhaps still running.
type pendingPart struct {
	part    repository.BackupPart
	raw     int64
	srcErr  error      // the stream from PostgreSQL failed: the cause
	err     error      // the compressor's (or the pipe's) error
	putDone chan error // the Put's result; read once by wait
	// returned is closed once the Put has returned (or will never run),
	// with its error in putErr.
	returned chan struct{}
	putErr   error
	pipe     *bufPipe
	key      string
}

// stored waits for the Put to return and says whether it failed (with
// context.Canceled: the cause is that Put's error, which its own wait
// reports), or ctx ended first.
func (p *pendingPart) stored(ctx context.Context) error {
	select {
	case <-p.returned:
		if p.putErr != nil {
			return context.Canceled
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait waits for the Put and returns the part's record or the error.
func (p *pendingPart) wait() (repository.BackupPart, error) {
	putErr := <-p.putDone
	if putErr == nil && p.err == nil && p.pipe.unread() {
		// The writer finished into the buffer, but Put returned
		// before reading it all.
		p.err = errPutReturned
	}
	switch {
	case p.srcErr != nil:
		return repository.BackupPart{}, p.srcErr
	case putErr != nil:
		return repository.BackupPart{}, fmt.Errorf("store %s: %w", p.key, putErr)
	case p.err != nil:
		return repository.BackupPart{}, fmt.Errorf("store %s: %w", p.key, p.err)
	}
	if p.pipe.sum != nil {
		// Put read every byte written (unread said so): the sum is of
		// the whole object as stored.
		p.part.StoredSHA256 = hex.EncodeToString(p.pipe.sum.Sum(nil))
	}
	return p.part, nil
}

// start streams r through the compressor into one conditional Put. The
// Put runs in its own goroutine, once prev (the previous part's Put; nil:
// none) has read its body to the end, and reads from a bounded pipe what
// this goroutine writes; the pipe gives it the end of its body only once
// prev has returned without error, so no part is stored after one that
// failed (a Put stores nothing before its body's end). The part's sha256
// is of its stored bytes, taken by the pipe as the Put reads them (on the
// Put's goroutine, beside the compressor, and over a ninth of the raw
// bytes with lz4); an encrypted part instead hashes its raw bytes on a
// goroutine of its own (parhash), for its fingerprints. start returns once r is read to its end (or failed); the
// Put may still be running: pendingPart.wait waits for it. If either side
// fails, closing the pipe ends the other.
func (u *uploader) start(ctx context.Context, key string, r io.Reader, c repository.Compression, prev *pendingPart) (*pendingPart, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	now := u.now
	if now == nil {
		now = time.Now
	}
	codec := repository.Codec{Compression: c, Level: u.level, Recipients: u.recipients}
	meta := u.meta
	if codec.Encrypted() {
		meta = maps.Clone(u.meta)
		codec.DescribeRecipients(meta)
	}
	putOpts := storage.PutOptions{IfNotExists: true, Size: -1, Metadata: meta, Retention: u.lock.Retention(now())}
	pipe := newBufPipe()
	if prev != nil {
		pipe.beforeEOF = func() error { return prev.stored(ctx) }
	}
	p := &pendingPart{putDone: make(chan error, 1), returned: make(chan struct{}), key: key, pipe: pipe}
	go func() {
		var err error
		if prev != nil {
			// prev's Put takes no more buffers once it has read its body:
			// this one may fill its own meanwhile.
			select {
			case <-prev.pipe.readToEnd():
			case <-prev.returned:
			case <-ctx.Done():
			}
			select {
			case <-prev.returned:
				if prev.putErr != nil {
					// Never store a part after one that failed.
					err = context.Canceled
				}
			default:
			}
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = u.b.Put(ctx, key, pipe, putOpts)
			if err != nil && u.failed != nil && ctx.Err() == nil {
				u.failed(fmt.Errorf("store %s: %w", key, err))
			}
		}
		// Put has returned: anything still written goes nowhere.
		if err != nil {
			pipe.CloseRead(err)
		} else {
			pipe.CloseRead(errPutReturned)
		}
		p.putErr = err
		close(p.returned)
		p.putDone <- err
	}()

	stored := &countingWriter{w: pipe, ctx: ctx}
	src := &sourceReader{r: r}
	var rawHash *parhash.Writer
	if codec.Encrypted() {
		rawHash = parhash.New(sha256.New(), nil)
		src.r = io.TeeReader(r, rawHash)
	} else {
		pipe.sum = sha256.New()
	}
	raw, copyErr := compressInto(stored, src, codec)
	if cerr := pipe.CloseWrite(copyErr); copyErr == nil { // nil: the Put sees EOF
		copyErr = cerr
	}
	p.srcErr, p.err = src.err, copyErr
	if p.srcErr != nil && p.err == nil {
		p.err = p.srcErr
	}
	p.raw = raw
	// StoredSHA256 is added by wait, once the Put has read every byte.
	p.part = repository.BackupPart{
		Key:         key,
		Compression: c,
		RawSize:     raw,
		StoredSize:  stored.n,
	}
	if rawHash != nil {
		// No plaintext sha256 in the clear manifest: see Codec.Describe.
		// The fingerprints come from it, not from a second pass.
		sum, _ := rawHash.Sum()
		p.part.Encryption, p.part.Fingerprints = crypt.Scheme, u.recipients.FingerprintsOf(sum)
	}
	return p, nil
}

// errPutReturned is what writes into a part's pipe get once Put has
// returned without error: a backend that stops reading early must not make
// a truncated part look stored.
var errPutReturned = errors.New("storage ended the upload before the whole part was sent")

// compressInto copies src into w through compression c and flushes it. It
// returns the number of raw bytes copied.
func compressInto(w io.Writer, src io.Reader, c repository.Codec) (int64, error) {
	zw, err := c.NewWriter(w)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(zw, src)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// sourceReader remembers a read error, so put can tell a failing source
// from a failing storage.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// countingReader counts the raw bytes of an archive as they pass and
// remembers the source's own error.
type countingReader struct {
	r       io.Reader
	counted func(int64)
	err     error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.counted != nil {
		c.counted(int64(n))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// wrap names the archive in an error, unless the error came from the
// stream from PostgreSQL, whose message already says what happened.
func (c *countingReader) wrap(name string, err error) error {
	if c.err != nil && errors.Is(err, c.err) {
		return err
	}
	return fmt.Errorf("archive %s: %w", name, err)
}

// countingWriter counts the bytes written into the pipe: the stored size.
type countingWriter struct {
	w   io.Writer
	n   int64
	ctx context.Context // a cancelled upload stops compressing at once
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
