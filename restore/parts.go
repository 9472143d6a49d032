package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// partStream reads the parts of one archive, in order, as one stream of raw
// (decompressed) bytes: a tar stream may cross part boundaries. Each part is
// checked as its end is reached: its raw size and the sha256 of its raw
// bytes must match the manifest, else Read fails with an error wrapping
// ErrCorrupt that names the part. Bytes of a part are handed out before
// that part is verified, so a consumer must treat everything it wrote as
// unverified until Read returns io.EOF.
//
// RestoreBackup hands it a backend wrapped by seeHidden, so a part hidden
// behind a delete marker is read from its newest version (with a warning);
// a part is missing only when no version of it holds data.
type partStream struct {
	ctx      context.Context
	b        storage.Backend
	backupID string
	parts    []repository.BackupPart
	next     int
	cur      *openPart
	total    int64 // raw bytes read so far, all parts
	failed   error // a part failed its check: the stream is over
}

type openPart struct {
	part repository.BackupPart
	rc   io.ReadCloser
	body io.Reader // decoded, limited to RawSize+1 bytes
	h    hash.Hash
	n    int64
}

func newPartStream(ctx context.Context, b storage.Backend, backupID string, parts []repository.BackupPart) *partStream {
	return &partStream{ctx: ctx, b: b, backupID: backupID, parts: parts}
}

// Read implements io.Reader.
func (s *partStream) Read(p []byte) (int, error) {
	if s.failed != nil {
		return 0, s.failed
	}
	for {
		if s.cur == nil {
			if s.next == len(s.parts) {
				return 0, io.EOF
			}
			if err := s.open(s.parts[s.next]); err != nil {
				return 0, err
			}
			s.next++
		}
		n, err := s.cur.body.Read(p)
		if n > 0 {
			s.cur.h.Write(p[:n])
			s.cur.n += int64(n)
			s.total += int64(n)
		}
		switch {
		case err == io.EOF:
			if verr := s.finish(); verr != nil {
				// Withhold the part's last bytes: nobody gets to use
				// data from a part known to be bad.
				s.failed = verr
				return 0, verr
			}
			if n > 0 {
				return n, nil
			}
		case err != nil:
			part := s.cur.part
			s.Close()
			return n, fmt.Errorf("%w: read part %s of backup %s from %s: %w", errorKind(err), part.Key, s.backupID, s.b.Location(), err)
		case n > 0:
			return n, nil
		}
	}
}

func (s *partStream) open(part repository.BackupPart) error {
	if !strings.HasPrefix(part.Key, repository.BackupPrefix(s.backupID)) {
		return fmt.Errorf("%w: the manifest of backup %s lists part %q outside the backup's folder %s: the manifest is damaged", ErrCorrupt, s.backupID, part.Key, repository.BackupPrefix(s.backupID))
	}
	if part.RawSize < 0 || len(part.SHA256) != sha256.Size*2 {
		return fmt.Errorf("%w: the manifest of backup %s lists part %s without a valid size and sha256: the manifest is damaged", ErrCorrupt, s.backupID, part.Key)
	}
	rc, info, err := s.b.Get(s.ctx, part.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: part %s of backup %s is missing from %s (%w): the backup is damaged; restore another backup", ErrCorrupt, part.Key, s.backupID, s.b.Location(), err)
	}
	if err != nil {
		return fmt.Errorf("fetch part %s of backup %s from %s: %w", part.Key, s.backupID, s.b.Location(), err)
	}
	if part.StoredSize > 0 && info.Size > 0 && info.Size != part.StoredSize {
		rc.Close()
		return fmt.Errorf("%w: part %s of backup %s in %s has %d bytes, the manifest says %d: the backup is damaged", ErrCorrupt, part.Key, s.backupID, s.b.Location(), info.Size, part.StoredSize)
	}
	body, err := part.Compression.NewReader(transportReader{rc})
	if err != nil {
		rc.Close()
		return fmt.Errorf("part %s of backup %s: %w", part.Key, s.backupID, err)
	}
	s.cur = &openPart{part: part, rc: rc, body: io.LimitReader(body, part.RawSize+1), h: sha256.New()}
	return nil
}

// finish checks the part just read to its end and closes it.
func (s *partStream) finish() error {
	c := s.cur
	s.Close()
	if c.n != c.part.RawSize {
		return fmt.Errorf("%w: part %s of backup %s from %s decompressed to %s bytes, the manifest says %d: the backup is damaged; restore another backup",
			ErrCorrupt, c.part.Key, s.backupID, s.b.Location(), sizeWord(c.n, c.part.RawSize), c.part.RawSize)
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != c.part.SHA256 {
		return fmt.Errorf("%w: part %s of backup %s from %s has sha256 %s, the manifest says %s: the backup is damaged; restore another backup",
			ErrCorrupt, c.part.Key, s.backupID, s.b.Location(), got, c.part.SHA256)
	}
	return nil
}

// drainCurrent reads the part being read to its end and verifies it. It
// returns nil when that cannot be told (the storage stream failed).
func (s *partStream) drainCurrent() error {
	c := s.cur
	if c == nil {
		return s.failed
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := c.body.Read(buf)
		c.h.Write(buf[:n])
		c.n += int64(n)
		s.total += int64(n)
		switch {
		case err == io.EOF:
			s.failed = s.finish()
			return s.failed
		case err != nil && errors.Is(errorKind(err), ErrCorrupt):
			s.Close()
			return fmt.Errorf("%w: read part %s of backup %s from %s: %w", ErrCorrupt, c.part.Key, s.backupID, s.b.Location(), err)
		case err != nil:
			s.Close()
			return nil
		}
	}
}

// sizeWord prints a size read through a limit of want+1 ("more than N").
func sizeWord(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// Close releases the part being read, if any.
func (s *partStream) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.rc.Close()
	s.cur = nil
	return err
}
