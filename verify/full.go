package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// fullItem is one object for --full to re-read: a WAL object or a backup
// part.
type fullItem struct {
	key      string
	wal      *walObject
	part     *repository.BackupPart
	backupID string
}

// queue hands an item to the workers, waiting while they are all busy: the
// listing never runs far ahead of the reading.
func (s *scan) queue(ctx context.Context, it fullItem) error {
	select {
	case s.work <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scan) worker(ctx context.Context) error {
	for it := range s.work {
		var err error
		if it.part != nil {
			err = s.checkPart(ctx, it)
		} else {
			err = s.checkWALObject(ctx, it)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readResult is what streaming one object through decompress and sha256
// gave.
type readResult struct {
	stored, raw int64
	sha256      string // of the raw bytes, or with storedSum of the stored ones
	head        []byte // the first wal.HeaderSize raw bytes (fewer if shorter)
	// decodeErr: the body did not decompress (damaged data, not a storage
	// failure).
	decodeErr error
}

// readThrough streams rc through the decoder of c and a sha256, reading at
// most limit+1 raw bytes. Storage failures are returned as errors; a body
// that does not decode is a result.
//
// With storedLimit >= 0 the sha256 is of the stored bytes instead (a
// backup part with a stored sum): all of them, also any the decoder left
// after its frame, up to storedLimit+1; the raw bytes are only counted.
//
// An encrypted object (meta says so) is decrypted with ids first, and its
// keyed fingerprint checked at its end (repository.OpenBody): a mismatch
// or a changed ciphertext is a decodeErr. No identity for it is an error:
// its content cannot be verified.
func readThrough(rc io.Reader, c repository.Compression, limit, storedLimit int64, ids *crypt.Identities, meta map[string]string) (readResult, error) {
	counted := &countingReader{r: rc}
	var in io.Reader = counted
	var stored *repository.StoredHash
	if storedLimit >= 0 {
		stored = repository.NewStoredHash(counted)
		in = stored
	}
	body, err := repository.OpenBody(storage.TagStreamErrors(in), c, ids, meta)
	if errors.Is(err, crypt.ErrTampered) {
		return readResult{decodeErr: err}, nil
	}
	if err != nil {
		return readResult{}, err
	}
	// The raw bytes of a part summed on its stored bytes are only counted.
	h := sha256.New()
	var raw io.Writer = h
	if stored != nil {
		raw = io.Discard
	}
	head := &headKeeper{}
	n, err := io.Copy(io.MultiWriter(raw, head), io.LimitReader(body, limit+1))
	res := readResult{raw: n, head: head.b}
	switch {
	case storage.StreamError(err) != nil:
		return readResult{}, storage.StreamError(err)
	case err != nil:
		res.decodeErr = err
	}
	if stored != nil {
		var serr error
		if res.sha256, _, serr = stored.Finish(storedLimit); serr != nil {
			return readResult{}, serr
		}
	} else {
		res.sha256 = hex.EncodeToString(h.Sum(nil))
	}
	res.stored = counted.n
	return res, nil
}

// headKeeper keeps the first wal.HeaderSize bytes written to it.
type headKeeper struct{ b []byte }

func (k *headKeeper) Write(p []byte) (int, error) {
	if room := wal.HeaderSize - len(k.b); room > 0 {
		k.b = append(k.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (s *scan) count(stored int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.Summary.ObjectsRead++
	s.r.Summary.BytesRead += stored
}

// checkWALObject re-reads one WAL object and compares it with the sha256
// and raw size recorded in its metadata.
func (s *scan) checkWALObject(ctx context.Context, it fullItem) error {
	rc, info, err := s.b.Get(ctx, it.key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // deleted since the listing (retention)
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", it.key, s.b.Location(), err)
	}
	defer rc.Close()
	wantSum := info.Metadata[repository.MetaSHA256]
	wantRaw, ok := repository.WALMetadata(info.Metadata)
	if !ok {
		s.count(0)
		s.problem(Finding{Kind: KindWALMetadata, Key: it.key,
			Detail: fmt.Sprintf("%s has no valid sha256/raw-size metadata, so wal-fetch refuses it: it was not written by walvault, or its metadata was lost", it.key)})
		return nil
	}
	if mc := info.Metadata[repository.MetaCompression]; mc != "" && mc != string(it.wal.compression) {
		s.count(0)
		s.problem(Finding{Kind: KindWALMetadata, Key: it.key,
			Detail: fmt.Sprintf("%s is marked as compressed with %q but its key says %q: it was not written by walvault or was replaced", it.key, mc, it.wal.compression)})
		return nil
	}
	res, err := readThrough(rc, it.wal.compression, wantRaw, -1, s.opts.Identities, info.Metadata)
	if s.undecryptable(it.key, err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", it.key, s.b.Location(), err)
	}
	s.count(res.stored)
	name := it.wal.file.String()
	switch {
	case res.decodeErr != nil:
		s.problem(Finding{Kind: KindWALChecksum, Key: it.key,
			Detail: fmt.Sprintf("%s (%s) does not decompress: %v: the object is damaged; %s", it.key, name, res.decodeErr, s.walRemedy(it.wal.file))})
	case res.raw != wantRaw:
		s.problem(Finding{Kind: KindWALChecksum, Key: it.key,
			Detail: fmt.Sprintf("%s (%s) decompresses to %s bytes, its metadata says %d: the object is damaged; %s", it.key, name, sizeWord(res.raw, wantRaw), wantRaw, s.walRemedy(it.wal.file))})
	case !repository.EncryptedObject(info.Metadata) && res.sha256 != wantSum:
		s.problem(Finding{Kind: KindWALChecksum, Key: it.key,
			Detail: fmt.Sprintf("%s (%s) has sha256 %s, its metadata says %s: the object is damaged; %s", it.key, name, res.sha256, wantSum, s.walRemedy(it.wal.file))})
	case it.wal.file.Kind == wal.KindSegment && res.raw != int64(s.id.WALSegmentSize):
		s.problem(Finding{Kind: KindWALChecksum, Key: it.key,
			Detail: fmt.Sprintf("%s (%s) holds %d bytes, but the repository's segments are %d bytes", it.key, name, res.raw, s.id.WALSegmentSize)})
	default:
		// Another segment's object copied over the key, metadata and
		// all, passes every check above; PostgreSQL would take its page
		// address for the end of WAL.
		if why := s.headerMismatch(it.wal.file, res.head); why != "" {
			s.problem(Finding{Kind: KindWALHeader, Key: it.key,
				Detail: fmt.Sprintf("%s (%s): %s: another object was stored under its key, and wal-fetch refuses it; %s", it.key, name, why, s.walRemedy(it.wal.file))})
		}
	}
	return nil
}

// headerMismatch says why a segment's (or partial's) first bytes do not
// belong to file in this repository, "" when they do or it has no header.
func (s *scan) headerMismatch(file wal.FileName, head []byte) string {
	if file.Kind != wal.KindSegment && file.Kind != wal.KindPartial {
		return ""
	}
	h, err := wal.ReadHeaderOf(bytes.NewReader(head), file.Segment)
	if err != nil {
		return err.Error()
	}
	if id := strconv.FormatUint(h.SystemID, 10); s.id.SystemID != "" && id != s.id.SystemID {
		return fmt.Sprintf("its header says cluster %s, the repository's is %s", id, s.id.SystemID)
	}
	return ""
}

// walRemedy says what a damaged WAL file means for a restore. In a bucket
// that keeps versions, wal-fetch serves the newest older version that
// passes its checks (walvault never overwrites, so a newer version is not
// walvault's).
func (s *scan) walRemedy(f wal.FileName) string {
	if f.Kind != wal.KindSegment && f.Kind != wal.KindPartial {
		return "restore it from a copy if you have one"
	}
	if _, versioned := storage.AsVersioned(s.b); versioned {
		return "if the bucket keeps an older version of the key that is walvault's (aws s3api list-object-versions), wal-fetch serves that one (delete the newer versions once no lock keeps them); otherwise a restore that needs it will stop there: take a new backup"
	}
	return "a restore that needs it will stop there; take a new backup"
}

// checkPart re-reads one backup part and compares it with its manifest
// entry.
func (s *scan) checkPart(ctx context.Context, it fullItem) error {
	p := it.part
	rc, _, err := s.b.Get(ctx, p.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // deleted since the listing
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", p.Key, s.b.Location(), err)
	}
	defer rc.Close()
	// The sum the manifest records: of the stored bytes, or of the raw
	// ones (a backup written before stored sums).
	storedLimit, want := int64(-1), p.SHA256
	if p.StoredSHA256 != "" {
		storedLimit, want = p.StoredSize, p.StoredSHA256
	}
	res, err := readThrough(rc, p.Compression, p.RawSize, storedLimit, s.opts.Identities, p.Meta())
	if s.undecryptable(p.Key, err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", p.Key, s.b.Location(), err)
	}
	s.count(res.stored)
	var why string
	switch {
	case res.decodeErr != nil:
		why = fmt.Sprintf("does not decompress: %v", res.decodeErr)
	case res.raw != p.RawSize:
		why = fmt.Sprintf("decompresses to %s bytes, the manifest says %d", sizeWord(res.raw, p.RawSize), p.RawSize)
	case p.Encryption == "" && res.sha256 != want:
		why = fmt.Sprintf("has sha256 %s, the manifest says %s", res.sha256, want)
	default:
		return nil
	}
	s.problem(Finding{Kind: KindPartChecksum, Key: p.Key, BackupID: it.backupID,
		Detail: fmt.Sprintf("backup %s: part %s %s: the backup is damaged; restore another backup, and take a new one", it.backupID, p.Key, why)})
	return nil
}

// undecryptable counts an object --full could not read because no key at
// hand decrypts it (an identity file from before a key rotation, or none),
// so the others are still read; reportUndecryptable says so once.
func (s *scan) undecryptable(key string, err error) bool {
	if !errors.Is(err, crypt.ErrNoIdentity) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notDecrypted == 0 {
		s.firstNotDecrypted, s.firstNotDecryptedErr = key, err
	}
	s.notDecrypted++
	return true
}

// reportUndecryptable reports the objects --full could not decrypt: their
// content was not checked, so the repository was not verified whole (a
// problem: a weekly verify --full with an identity file from before a
// key rotation must not pass).
func (s *scan) reportUndecryptable() {
	if s.notDecrypted == 0 {
		return
	}
	s.problem(Finding{Kind: KindNotDecrypted, Key: s.firstNotDecrypted,
		Detail: fmt.Sprintf("--full could not check %s, which no key in the identity file decrypts (the first, %s: %v); give decrypt-with an identity file that holds their keys (walvault keys lists which key each backup and WAL run needs)",
			units.Plural(s.notDecrypted, "encrypted object"), s.firstNotDecrypted, s.firstNotDecryptedErr)})
}

// sizeWord prints a size read through a limit of want+1 ("more than N").
func sizeWord(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return strconv.FormatInt(n, 10)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
