package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Encoded is a segment's stored form prepared by the caller: wal-receive
// builds it chunk by chunk as WAL arrives, so completing a segment need
// not read and compress it all again.
type Encoded struct {
	Body        []byte                 // the stored object
	Compression repository.Compression // Body's encoding
	SHA256      string                 // hex sha256 of the raw segment
	RawSize     int64
	// Fingerprints are the raw segment's keyed fingerprints when Body is
	// also encrypted, to Options.Recipients (crypt.Fingerprinter.Sum).
	Fingerprints string
}

// ErrOtherCompression: the repository cannot take an Encoded body as it
// is (it is encrypted, and the body only compressed); push the file
// instead.
var ErrOtherCompression = errors.New("the repository uses another compression")

// PushEncoded archives the complete segment file, whose raw bytes are in f,
// from enc: the same checks of the header against the name and of the
// repository's identity, the same key, metadata and conditional create as
// Push. The caller vouches that enc encodes f's content; the sha256 it
// records is what every later fetch checks against.
func PushEncoded(ctx context.Context, b storage.Backend, f *os.File, file wal.FileName, enc Encoded, opts Options) (Result, error) {
	opts = opts.withDefaults()
	if file.Kind != wal.KindSegment {
		return Result{}, fmt.Errorf("PushEncoded takes a complete segment, not a %s", file.Kind)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Result{}, err
	}
	hdr, err := checkSegment(f, file)
	if err != nil {
		return Result{}, err
	}
	if enc.RawSize != int64(hdr.SegmentSize) {
		return Result{}, fmt.Errorf("%s: the encoded body holds %d bytes, the segment %d", file, enc.RawSize, hdr.SegmentSize)
	}
	if _, err := verifyIdentity(ctx, b, hdr, file, opts, identityCache{}); err != nil {
		return Result{}, err
	}
	if (opts.Recipients != nil) != (enc.Fingerprints != "") {
		// Encrypted in a clear repository or the other way round: push
		// the file, which the repository's settings decide.
		return Result{}, fmt.Errorf("%w (the body's encryption differs from the settings)", ErrOtherCompression)
	}
	other, err := archivedCopyKey(ctx, b, file, enc.Compression)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		File:       file,
		Key:        repository.WALKey(file, enc.Compression),
		RawSize:    enc.RawSize,
		StoredSize: int64(len(enc.Body)),
		SHA256:     enc.SHA256,
	}
	meta := baseMetadata(file, opts)
	meta[repository.MetaSystemID] = strconv.FormatUint(hdr.SystemID, 10)
	meta[repository.MetaCompression] = string(enc.Compression)
	meta[repository.MetaSHA256] = enc.SHA256
	meta[repository.MetaRawSize] = strconv.FormatInt(enc.RawSize, 10)
	opts.codec(enc.Compression).Describe(meta, enc.Fingerprints)
	if other != "" {
		res.Key = other
		return settleConflict(ctx, b, res, meta, opts.Log)
	}
	return upload(ctx, b, bytes.NewReader(enc.Body), res, meta, opts, identityCache{})
}
