package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// archiveNamePattern is what PostgreSQL names its tar streams: "base.tar"
// and "<tablespace oid>.tar". Anything else is refused before it becomes
// part of a key.
var archiveNamePattern = regexp.MustCompile(`^(base|[1-9][0-9]*)\.tar$`)

// uploader stores the objects of one backup.
type uploader struct {
	b           storage.Backend
	id          string
	compression repository.Compression
	partSize    int64
	meta        map[string]string // stored with every object
	// lock locks every object until now() plus its days; zero is off.
	lock repository.LockPolicy
	now  func() time.Time // nil means time.Now
	// counted is told how many raw bytes of an archive were read; may be nil.
	counted func(n int64)
}

// archive cuts the tar stream r into parts of partSize raw bytes and
// stores each as it arrives. Parts are plain byte ranges: a restore
// concatenates them. An archive always has at least one part; a part is
// never empty unless the whole archive is.
func (u *uploader) archive(ctx context.Context, name string, r io.Reader) ([]repository.BackupPart, error) {
	if !archiveNamePattern.MatchString(name) {
		return nil, fmt.Errorf("PostgreSQL sent an archive named %q; walvault expects base.tar or <oid>.tar", name)
	}
	src := &countingReader{r: r, counted: u.counted}
	var parts []repository.BackupPart
	for seq := 0; ; seq++ {
		body := io.LimitReader(src, u.partSize)
		if seq > 0 {
			// Is there anything left? Read one byte ahead so the last part
			// is never an empty object.
			var one [1]byte
			n, err := io.ReadFull(src, one[:])
			if errors.Is(err, io.EOF) {
				return parts, nil
			}
			if err != nil {
				return nil, src.wrap(name, err)
			}
			body = io.MultiReader(bytes.NewReader(one[:n]), io.LimitReader(src, u.partSize-1))
		}
		key := repository.BackupPartKey(u.id, name, seq, u.compression)
		part, err := u.put(ctx, key, body, u.compression)
		if err != nil {
			return nil, src.wrap(name, err)
		}
		parts = append(parts, part)
		if part.RawSize < u.partSize {
			return parts, nil // the stream ended inside this part
		}
	}
}

// put streams r through sha256 and the compressor into one conditional Put,
// via a pipe: Put runs in its own goroutine and reads what this goroutine
// writes. If either side fails, closing the pipe ends the other, and put
// returns only after the goroutine has.
func (u *uploader) put(ctx context.Context, key string, r io.Reader, c repository.Compression) (repository.BackupPart, error) {
	if err := storage.ValidateKey(key); err != nil {
		return repository.BackupPart{}, err
	}
	now := u.now
	if now == nil {
		now = time.Now
	}
	putOpts := storage.PutOptions{IfNotExists: true, Size: -1, Metadata: u.meta, Retention: u.lock.Retention(now())}
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() {
		err := u.b.Put(ctx, key, pr, putOpts)
		// Put has returned: anything still written goes nowhere.
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errPutReturned)
		}
		putDone <- err
	}()

	stored := &countingWriter{w: pw}
	h := sha256.New()
	src := &sourceReader{r: io.TeeReader(r, h)}
	raw, copyErr := compressInto(stored, src, c)
	pw.CloseWithError(copyErr) // nil: the Put sees EOF
	putErr := <-putDone

	switch {
	case src.err != nil: // the stream from PostgreSQL failed: that is the cause
		return repository.BackupPart{}, src.err
	case putErr != nil:
		return repository.BackupPart{}, fmt.Errorf("store %s: %w", key, putErr)
	case copyErr != nil:
		return repository.BackupPart{}, fmt.Errorf("store %s: %w", key, copyErr)
	}
	return repository.BackupPart{
		Key:         key,
		Compression: c,
		RawSize:     raw,
		StoredSize:  stored.n,
		SHA256:      hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// errPutReturned is what writes into a part's pipe get once Put has
// returned without error: a backend that stops reading early must not make
// a truncated part look stored.
var errPutReturned = errors.New("storage ended the upload before the whole part was sent")

// compressInto copies src into w through compression c and flushes it. It
// returns the number of raw bytes copied.
func compressInto(w io.Writer, src io.Reader, c repository.Compression) (int64, error) {
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
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
