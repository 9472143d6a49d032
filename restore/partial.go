package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// openPartial is the last resort of a fetch that found no archived segment:
// when wal-receive stored partials of the segment (repository.PartialPrefix),
// the newest one is served under the segment's full name, zero-padded to
// the segment size. PostgreSQL replays it up to the partial's end, where it
// meets zeros (an invalid record: the end of WAL in this source), asks for
// the next segment, which is missing, and ends recovery there. That is
// PostgreSQL's own rule for a .partial file: its content is valid WAL up
// to some point, and recovery may use it as the last segment only.
//
// The prefetcher is never given a partial (fetch's forPrefetch): a segment
// cached ahead must be the complete one.
//
// miss is returned unchanged when there is no partial to serve.
func openPartial(ctx context.Context, b storage.Backend, file wal.FileName, ids *crypt.Identities, miss error) (io.ReadCloser, storage.ObjectInfo, repository.Compression, error) {
	if file.Kind != wal.KindSegment {
		return nil, storage.ObjectInfo{}, "", miss
	}
	parts, err := repository.ListPartials(ctx, b, file.Segment)
	if err != nil {
		return nil, storage.ObjectInfo{}, "", fmt.Errorf("list partials of %s in %s: %w", file, b.Location(), err)
	}
	if len(parts) == 0 {
		return nil, storage.ObjectInfo{}, "", miss
	}
	newest := parts[len(parts)-1]
	id, err := repository.LoadIdentity(ctx, b)
	if err != nil {
		return nil, storage.ObjectInfo{}, "", fmt.Errorf("read %s from %s: %w", repository.IdentityKey, b.Location(), err)
	}
	padded, err := readPartial(ctx, b, newest, id.WALSegmentSize, ids)
	if err != nil {
		return nil, storage.ObjectInfo{}, "", err
	}
	sum := sha256.Sum256(padded)
	info := storage.ObjectInfo{Key: newest.Key, Size: int64(len(padded)), Metadata: map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.Itoa(len(padded)),
		repository.MetaCompression: string(repository.None),
	}}
	return io.NopCloser(bytes.NewReader(padded)), info, repository.None, nil
}

// partialMayServe says whether a fetch of file into dest may be answered
// with a partial. Not into a standby's pg_wal: a standby streams, and a
// partial older than what it streamed would be renamed over its own copy
// of the segment (PostgreSQL prefers the archive), losing WAL it had
// replayed, and, with archive_mode = always, be archived again under the
// segment's full name (explore25c F1, F2). Nor where pg_wal already holds
// the segment: recovery reads that copy when the archive has none.
func partialMayServe(dest string, file wal.FileName) bool {
	dataDir, ok := recoveryDataDir(dest)
	if !ok {
		return true // not a data directory's pg_wal: a fetch by hand
	}
	if _, err := os.Stat(filepath.Join(dataDir, standbySignal)); err == nil {
		return false // a standby (InStandby)
	}
	_, err := os.Lstat(filepath.Join(dataDir, "pg_wal", file.String()))
	return errors.Is(err, fs.ErrNotExist)
}

// readPartial downloads a partial, checks it against its metadata and
// returns it zero-padded to segSize bytes. An encrypted partial is
// decrypted with ids, and its keyed fingerprint checked at its end
// (repository.OpenBody).
func readPartial(ctx context.Context, b storage.Backend, p repository.Partial, segSize uint32, ids *crypt.Identities) ([]byte, error) {
	rc, info, err := b.Get(ctx, p.Key)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", p.Key, b.Location(), err)
	}
	defer rc.Close()
	rawSize, err := strconv.ParseInt(info.Metadata[repository.MetaRawSize], 10, 64)
	if err != nil || rawSize <= 0 || rawSize > int64(segSize) {
		return nil, fmt.Errorf("%w: %s in %s has no valid raw-size metadata", ErrCorrupt, p.Key, b.Location())
	}
	body, err := repository.OpenBody(storage.TagStreamErrors(rc), p.Compression, ids, info.Metadata)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", p.Key, b.Location(), err)
	}
	buf := make([]byte, segSize)
	n, err := io.ReadFull(io.LimitReader(body, rawSize+1), buf[:rawSize])
	if err != nil {
		return nil, fmt.Errorf("%w: read %s from %s (%d of %d bytes): %w", errorKind(err), p.Key, b.Location(), n, rawSize, err)
	}
	extra, err := io.Copy(io.Discard, io.LimitReader(body, 1))
	if extra != 0 {
		return nil, fmt.Errorf("%w: %s in %s is longer than its raw-size %d", ErrCorrupt, p.Key, b.Location(), rawSize)
	}
	if err != nil { // the end of an encrypted body, where its fingerprint is checked
		return nil, fmt.Errorf("%w: read %s from %s: %w", errorKind(err), p.Key, b.Location(), err)
	}
	if repository.EncryptedObject(info.Metadata) {
		return buf, nil
	}
	if got := sha256.Sum256(buf[:rawSize]); hex.EncodeToString(got[:]) != info.Metadata[repository.MetaSHA256] {
		return nil, fmt.Errorf("%w: %s in %s does not match its recorded sha256", ErrCorrupt, p.Key, b.Location())
	}
	return buf, nil
}
