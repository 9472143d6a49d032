package restore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/parhash"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// Read-ahead of a part stream. Each part is fetched by a goroutine of its
// own (download and decompression), hashed on another (parhash), and
// handed to the reader through a queue of chunks. While part N is being
// read, part N+1 (up to partsAhead parts) is already being fetched.
//
// Memory per part stream is bounded, whatever the part or backup size:
// each part being fetched (1+partsAhead of them) holds at most partQueue
// queued chunks, one withheld (the last one read, kept until the next read
// tells it is not the part's end) and one being filled: 4 x 1 MiB, plus
// its lz4 decoder (about 2 MiB) and its parhash queue (about 2 MiB); the
// reader holds one more chunk. That is about 2 x 8 + 1 = 17 MiB per
// archive; RestoreBackup extracts at most maxParallelArchives (4) archives
// at once: about 68 MiB in all, the storage client's own buffers aside.
// A chunk holds a whole lz4 block (backup-push writes 1 MiB blocks), so
// the decoder writes straight into it instead of into a buffer of its own
// and then copying (BenchmarkPartStream: about a tenth less CPU).
const (
	partChunk  = 1 << 20
	partQueue  = 2
	partsAhead = 1
)

var partChunks = sync.Pool{New: func() any { b := make([]byte, partChunk); return &b }}

// partStream reads the parts of one archive, in order, as one stream of raw
// (decompressed) bytes: a tar stream may cross part boundaries. Each part is
// checked as its end is reached: its raw size and the sha256 of its raw
// bytes must match the manifest, else Read fails with an error wrapping
// ErrCorrupt that names the part. Bytes of a part are handed out before
// that part is verified, so a consumer must treat everything it wrote as
// unverified until Read returns io.EOF. The last chunk of a part is
// withheld until the part is verified: nobody gets to use the end of a
// part known to be bad. Parts are fetched ahead (see partsAhead), but
// their bytes and errors reach the reader strictly in order.
//
// Verified tells how far the stream is proven: the raw offset up to which
// every byte handed out belongs to a part whose size and sha256 matched.
// The extractor promotes a file out of staging only once its last byte
// lies below it (see stager).
//
// RestoreBackup hands it a backend wrapped by seeHidden, so a part hidden
// behind a delete marker is read from its newest version (with a warning);
// a part is missing only when no version of it holds data.
type partStream struct {
	ctx      context.Context // cancelled by Close: ends the fetches
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	b        storage.Backend
	backupID string
	parts    []repository.BackupPart
	ids      *crypt.Identities // decrypt encrypted parts; nil: none configured
	fetches  []*partFetch      // started, not yet read to their end; the first is being read
	started  int               // parts whose fetch was started
	chunk    *[]byte           // the chunk being handed out
	rest     []byte            // what is left of it
	total    int64             // raw bytes read so far, all parts
	verified atomic.Int64      // raw offset up to which every part is verified
	failed   error             // a part failed: the stream is over
	chunks   *parhash.Chunks   // the raw-sum hashers', shared by the parts in turn
}

// partFetch is one part being fetched.
type partFetch struct {
	part repository.BackupPart
	out  chan fetched // data, then one final error: io.EOF when verified
}

type fetched struct {
	buf  *[]byte
	n    int
	last bool // the part's last chunk: sent only once the part is verified
	err  error
}

func newPartStream(ctx context.Context, b storage.Backend, backupID string, parts []repository.BackupPart) *partStream {
	ctx, cancel := context.WithCancel(ctx)
	return &partStream{ctx: ctx, cancel: cancel, b: b, backupID: backupID, parts: parts, chunks: parhash.NewChunks()}
}

// fill starts fetches until partsAhead parts beyond the one being read are
// under way.
func (s *partStream) fill() {
	for s.started < len(s.parts) && len(s.fetches) <= partsAhead {
		f := &partFetch{part: s.parts[s.started], out: make(chan fetched, partQueue)}
		s.started++
		s.fetches = append(s.fetches, f)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.fetch(f)
		}()
	}
}

// Read implements io.Reader.
func (s *partStream) Read(p []byte) (int, error) {
	if err := s.next(); err != nil {
		return 0, err
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	s.total += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo: io.Copy into the extractor's pipe hands
// w each chunk as it is, a copy less than through Read.
func (s *partStream) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for {
		if err := s.next(); err != nil {
			if err == io.EOF {
				err = nil
			}
			return written, err
		}
		n, err := w.Write(s.rest)
		s.rest = s.rest[n:]
		s.total += int64(n)
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
}

// next makes s.rest the next bytes to hand out, or returns why there are
// none: io.EOF once every part is read and verified.
func (s *partStream) next() error {
	if s.failed != nil {
		return s.failed
	}
	for len(s.rest) == 0 {
		s.release()
		s.fill()
		if len(s.fetches) == 0 {
			return io.EOF
		}
		f := s.fetches[0]
		var c fetched
		select {
		case c = <-f.out:
		case <-s.ctx.Done():
			c = fetched{err: s.ctx.Err()}
		}
		switch {
		case c.err == io.EOF: // the part is read and verified
			s.fetches = s.fetches[1:]
			s.verified.Store(s.total)
		case c.err != nil:
			s.failed = c.err
			s.Close()
			return c.err
		default:
			s.chunk, s.rest = c.buf, (*c.buf)[:c.n]
			if c.last {
				s.verified.Store(s.total + int64(c.n))
			}
		}
	}
	return nil
}

// Verified is the raw offset up to which the stream is verified: every
// part ending at or before it matched its size and sha256. It may be read
// from any goroutine.
func (s *partStream) Verified() int64 { return s.verified.Load() }

// release returns the chunk handed out to the pool.
func (s *partStream) release() {
	if s.chunk != nil {
		partChunks.Put(s.chunk)
		s.chunk, s.rest = nil, nil
	}
}

// fetch downloads, decompresses and verifies one part into f.out. It ends
// when the part is sent, when it failed, or when the stream is closed.
func (s *partStream) fetch(f *partFetch) {
	send := func(c fetched) bool {
		select {
		case f.out <- c:
			return true
		case <-s.ctx.Done():
			if c.buf != nil {
				partChunks.Put(c.buf)
			}
			return false
		}
	}
	part := f.part
	// A part with a stored sum is hashed as its stored bytes are read
	// (stored); one from an older backup on its raw bytes (h).
	var stored *storedCheck
	if part.StoredSHA256 != "" {
		stored = &storedCheck{h: sha256.New()}
	}
	body, rc, err := s.open(part, stored)
	if err != nil {
		send(fetched{err: err})
		return
	}
	defer func() { rc.Close() }() // the last body opened
	var h partHasher = parhash.New(sha256.New(), s.chunks)
	if part.Encryption != "" || stored != nil {
		// No raw hash: an encrypted part's body (OpenBody) checks its
		// fingerprint, from a sha256 pass of its own; stored hashes the
		// others.
		h = noHash{}
	}
	var (
		pending   fetched // withheld: the latest chunk, sent once more follows
		n         int64
		refetches int
	)
	for {
		buf := partChunks.Get().(*[]byte)
		k, rerr := io.ReadFull(body, *buf)
		if k > 0 {
			h.Write((*buf)[:k])
			n += int64(k)
			if pending.buf != nil && !send(pending) {
				partChunks.Put(buf)
				h.Sum()
				return
			}
			pending = fetched{buf: buf, n: k}
		} else {
			partChunks.Put(buf)
		}
		if (rerr == io.EOF || rerr == io.ErrUnexpectedEOF) && stored != nil {
			// The decoder is done; what it left of the stored bytes
			// (none, unless something follows its frame) counts too.
			rerr = cmp.Or(stored.drain(part.StoredSize), rerr)
		}
		switch {
		case rerr == nil:
			continue
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			sum, _ := h.Sum()
			if verr := s.verify(part, n, sum, stored); verr != nil {
				if pending.buf != nil {
					partChunks.Put(pending.buf)
				}
				send(fetched{err: verr})
				return
			}
			pending.last = true
			if pending.buf != nil && !send(pending) {
				return
			}
			send(fetched{err: io.EOF})
			return
		default:
			// A download that broke is read again from where it broke.
			for storage.StreamError(rerr) != nil && refetches < maxPartRefetches {
				refetches++
				nbody, nrc, err := s.reopenAt(part, stored, n, refetches)
				if err == nil {
					rc.Close()
					body, rc, rerr = nbody, nrc, nil
					break
				}
				rerr = err
			}
			if rerr == nil {
				continue
			}
			h.Sum()
			if pending.buf != nil && !send(pending) {
				return
			}
			send(fetched{err: fmt.Errorf("%w: read part %s of backup %s from %s: %w", errorKind(rerr), part.Key, s.backupID, s.b.Location(), rerr)})
			return
		}
	}
}

// maxPartRefetches is how often a part whose download broke mid-body (a
// reset connection, a stalled transfer: storage.StreamError) is fetched
// again before the restore fails: the retry layer only retries opening an
// object, and one cut connection must not end a restore of hours.
const maxPartRefetches = 5

// reopenAt opens part again after its download broke (attempt counts
// from 1), after a backoff, and skips the skip raw bytes already read. The
// sha256 of the whole part is still checked at its end (with a stored
// sum, stored goes on hashing where the broken body stopped).
func (s *partStream) reopenAt(part repository.BackupPart, stored *storedCheck, skip int64, attempt int) (io.Reader, io.Closer, error) {
	delay := min(storage.DefaultRetryPolicy.BaseDelay<<(attempt-1), storage.DefaultRetryPolicy.MaxDelay)
	t := time.NewTimer(delay)
	select {
	case <-s.ctx.Done():
		t.Stop()
		return nil, nil, s.ctx.Err()
	case <-t.C:
	}
	body, rc, err := s.open(part, stored)
	if err != nil {
		return nil, nil, err
	}
	if _, err := io.CopyN(io.Discard, body, skip); err != nil {
		rc.Close()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // shorter than what was read before
		}
		return nil, nil, err
	}
	return body, rc, nil
}

// open checks part's record and starts reading it: body is its decoded
// bytes, limited to RawSize+1; rc is what to close. stored, when not nil,
// hashes the stored bytes on their way to the decoder.
func (s *partStream) open(part repository.BackupPart, stored *storedCheck) (io.Reader, io.Closer, error) {
	if !strings.HasPrefix(part.Key, repository.BackupPrefix(s.backupID)) {
		return nil, nil, fmt.Errorf("%w: the manifest of backup %s lists part %q outside the backup's folder %s: the manifest is damaged", ErrCorrupt, s.backupID, part.Key, repository.BackupPrefix(s.backupID))
	}
	if part.RawSize < 0 || !part.HasChecksum() {
		return nil, nil, fmt.Errorf("%w: the manifest of backup %s lists part %s without a valid size and sha256: the manifest is damaged", ErrCorrupt, s.backupID, part.Key)
	}
	rc, info, err := s.b.Get(s.ctx, part.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: part %s of backup %s is missing from %s (%w): the backup is damaged; restore another backup", ErrCorrupt, part.Key, s.backupID, s.b.Location(), err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fetch part %s of backup %s from %s: %w", part.Key, s.backupID, s.b.Location(), err)
	}
	if part.StoredSize > 0 && info.Size > 0 && info.Size != part.StoredSize {
		rc.Close()
		return nil, nil, fmt.Errorf("%w: part %s of backup %s in %s has %d bytes, the manifest says %d: the backup is damaged", ErrCorrupt, part.Key, s.backupID, s.b.Location(), info.Size, part.StoredSize)
	}
	in := storage.TagStreamErrors(rc)
	if stored != nil {
		// Above the tag: a mismatch found here is no storage failure.
		in = stored.reader(in)
	}
	body, err := repository.OpenBody(in, part.Compression, s.ids, part.Meta())
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("part %s of backup %s: %w", part.Key, s.backupID, err)
	}
	return io.LimitReader(body, part.RawSize+1), rc, nil
}

// verify checks the size and sha256 of a part read to its end: the sum of
// its stored bytes (stored, read to their end) when its record has one,
// else of its raw bytes (rawSum).
func (s *partStream) verify(part repository.BackupPart, n int64, rawSum []byte, stored *storedCheck) error {
	if n != part.RawSize {
		return fmt.Errorf("%w: part %s of backup %s from %s decompressed to %s bytes, the manifest says %d: the backup is damaged; restore another backup",
			ErrCorrupt, part.Key, s.backupID, s.b.Location(), sizeWord(n, part.RawSize), part.RawSize)
	}
	got, want := hex.EncodeToString(rawSum), part.SHA256
	if stored != nil {
		if err := stored.complete(); err != nil {
			return fmt.Errorf("%w: part %s of backup %s from %s: %w: the backup is damaged; restore another backup", ErrCorrupt, part.Key, s.backupID, s.b.Location(), err)
		}
		got, want = hex.EncodeToString(stored.h.Sum(nil)), part.StoredSHA256
		if stored.n != part.StoredSize {
			return fmt.Errorf("%w: part %s of backup %s from %s has %s stored bytes, the manifest says %d: the backup is damaged; restore another backup",
				ErrCorrupt, part.Key, s.backupID, s.b.Location(), sizeWord(stored.n, part.StoredSize), part.StoredSize)
		}
	}
	// An encrypted part has no sha256: OpenBody checked its fingerprint.
	if (part.Encryption == "" || stored != nil) && got != want {
		return fmt.Errorf("%w: part %s of backup %s from %s has sha256 %s, the manifest says %s: the backup is damaged; restore another backup",
			ErrCorrupt, part.Key, s.backupID, s.b.Location(), got, want)
	}
	return nil
}

// drainCurrent reads the part being read to its end and verifies it. It
// returns nil when that cannot be told (the storage stream failed).
func (s *partStream) drainCurrent() error {
	if s.failed != nil || len(s.fetches) == 0 {
		return s.failed
	}
	s.release()
	f := s.fetches[0]
	for {
		var c fetched
		select {
		case c = <-f.out:
		case <-s.ctx.Done():
			return nil
		}
		switch {
		case c.err == io.EOF:
			s.fetches = s.fetches[1:]
			return nil
		case c.err != nil && errors.Is(c.err, ErrCorrupt):
			s.failed = c.err
			s.Close()
			return c.err
		case c.err != nil:
			s.Close()
			return nil
		}
		s.total += int64(c.n)
		partChunks.Put(c.buf)
	}
}

// sizeWord prints a size read through a limit of want+1 ("more than N").
func sizeWord(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// Close stops every fetch and waits for them to end. Read returns an error
// after it. It may be called more than once.
func (s *partStream) Close() error {
	s.cancel()
	s.wg.Wait()
	for _, f := range s.fetches {
		for {
			select {
			case c := <-f.out:
				if c.buf != nil {
					partChunks.Put(c.buf)
				}
				continue
			default:
			}
			break
		}
	}
	s.fetches = nil
	s.release()
	if s.failed == nil {
		s.failed = errAborted
	}
	return nil
}
