package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// manifestCheck checks restored files against PostgreSQL's backup_manifest
// while they are written, so no second reading pass is needed: each
// regular file of the archives must be listed, have the listed size, and
// its bytes, as they go to disk, the listed checksum (CRC-32C by default,
// or whichever algorithm the manifest records); at the end every listed
// file must have been seen. That is what `pg_verifybackup -n` proves by
// reading the files back, with the same paths ignored (VerifyDataDir's
// ignore rules). For a version 2 manifest (PostgreSQL 17 and later) the
// System-Identifier must also match global/pg_control's and the backup's.
//
// Memory: about 40 bytes per listed file plus its checksum (4 bytes for
// CRC-32C), whatever the sizes: paths are kept as 64-bit hashes; the
// manifest is read again only to name missing files.
type manifestCheck struct {
	root     *os.Root // holds backup_manifest
	ignore   []string
	seed     maphash.Seed
	systemID string // the manifest's System-Identifier ("" in version 1)

	mu     sync.Mutex // extraction of several archives runs at once
	index  map[uint64]int32
	files  []expectedFile
	sums   []byte // every listed checksum, decoded
	unseen int    // listed files not ignored and not yet seen
	stats  VerifyStats
}

// expectedFile is one file backup_manifest lists.
type expectedFile struct {
	size    int64
	sumOff  uint32
	sumLen  uint8
	alg     uint8 // index into manifestAlgorithms
	seen    bool
	ignored bool
}

// manifestAlgorithms are the Checksum-Algorithm values PostgreSQL writes
// (pg_basebackup --manifest-checksums), all supported.
var manifestAlgorithms = []string{"NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"}

// errDuplicatePath stops loading when two listed paths hash alike.
var errDuplicatePath = errors.New("duplicate path")

// loadManifestCheck reads backup_manifest from root, where it is still
// under its hidden name pgManifestPartial (checking its own
// Manifest-Checksum and that every file's algorithm is one walvault can
// compute) and returns the check; ignore adds paths to the defaults.
func loadManifestCheck(ctx context.Context, root *os.Root, ignore []string) (*manifestCheck, error) {
	for attempt := 0; ; attempt++ {
		c := &manifestCheck{root: root, seed: maphash.MakeSeed(), index: map[uint64]int32{}}
		c.ignore = cleanIgnore(ignore)
		dup, err := c.load(ctx)
		if !errors.Is(err, errDuplicatePath) {
			return c, err
		}
		// Two paths with one hash: the same path listed twice, or (about
		// once in 2^64 pairs) a collision that another seed undoes.
		if attempt == 2 {
			return nil, fmt.Errorf("%w: %s lists %s twice: the manifest is damaged", ErrVerify, pgManifestFile, dup)
		}
	}
}

func (c *manifestCheck) load(ctx context.Context) (dup string, err error) {
	f, err := c.root.Open(pgManifestPartial)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer f.Close()
	lh := &lineHasher{h: sha256.New()}
	body := io.TeeReader(f, lh)
	mh, err := readManifest(ctx, body, func(mf manifestFile) error {
		p, err := mf.cleanPath()
		if err != nil {
			return err
		}
		key := maphash.String(c.seed, p)
		if _, ok := c.index[key]; ok {
			dup = p
			return errDuplicatePath
		}
		e := expectedFile{size: mf.Size, ignored: ignoredBy(c.ignore, p)}
		if e.size < 0 {
			return fmt.Errorf("%w: %s gives %s the size %d", ErrVerify, pgManifestFile, p, e.size)
		}
		alg := strings.ToUpper(mf.Algorithm)
		if alg == "" {
			alg = "NONE"
		}
		i := indexOf(manifestAlgorithms, alg)
		if i < 0 {
			return fmt.Errorf("%w: %s checks %s with the checksum algorithm %q, which walvault cannot compute (it knows %s); restore with --verify=pg_verifybackup and a pg_verifybackup that knows it",
				ErrVerify, pgManifestFile, p, mf.Algorithm, strings.Join(manifestAlgorithms, ", "))
		}
		e.alg = uint8(i)
		if alg != "NONE" {
			sum, err := hex.DecodeString(mf.Checksum)
			h, _ := newManifestHash(alg)
			if err != nil || len(sum) != h.Size() {
				return fmt.Errorf("%w: %s gives %s the %s checksum %q, not %d hex bytes", ErrVerify, pgManifestFile, p, alg, mf.Checksum, h.Size())
			}
			e.sumOff, e.sumLen = uint32(len(c.sums)), uint8(len(sum))
			c.sums = append(c.sums, sum...)
		}
		if len(c.files) >= 1<<31-1 {
			return fmt.Errorf("%w: %s lists more than 2^31 files", ErrVerify, pgManifestFile)
		}
		c.index[key] = int32(len(c.files))
		c.files = append(c.files, e)
		if !e.ignored {
			c.unseen++
		}
		return nil
	})
	if err != nil {
		return dup, err
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return "", fmt.Errorf("read %s: %w", pgManifestFile, err)
	}
	if err := lh.check(mh.checksum); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrVerify, pgManifestFile, err)
	}
	c.systemID = mh.systemID
	return "", nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// checkSystemID refuses a manifest of another cluster than the backup's
// (version 2 manifests say which; version 1 ones do not).
func (c *manifestCheck) checkSystemID(backupID, systemID string) error {
	if c == nil || c.systemID == "" || systemID == "" || c.systemID == systemID {
		return nil
	}
	return fmt.Errorf("%w: %s of backup %s is for the cluster with system identifier %s, the backup for %s: the backup is damaged", ErrVerify, pgManifestFile, backupID, c.systemID, systemID)
}

// begin starts checking the file p (the manifest's path) of size bytes, as
// the archive announces it. It refuses a file the manifest does not list
// (unless ignored), one seen before, or one of another size. A nil check
// checks nothing.
func (c *manifestCheck) begin(p string, size int64) (*fileCheck, error) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[maphash.String(c.seed, p)]
	if !ok {
		if ignoredBy(c.ignore, p) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s is in the backup but not in %s", ErrVerify, p, pgManifestFile)
	}
	e := &c.files[i]
	if e.seen {
		return nil, fmt.Errorf("%w: %s appears twice in the backup", ErrVerify, p)
	}
	e.seen = true
	if e.ignored {
		return nil, nil
	}
	c.unseen--
	if size != e.size {
		return nil, fmt.Errorf("%w: %s has %d bytes in the backup, %s says %d", ErrVerify, p, size, pgManifestFile, e.size)
	}
	alg := manifestAlgorithms[e.alg]
	h, _ := newManifestHash(alg)
	return &fileCheck{c: c, path: p, alg: alg, h: h, want: c.sums[e.sumOff : e.sumOff+uint32(e.sumLen)], size: size}, nil
}

// whole checks a file held in memory.
func (c *manifestCheck) whole(p string, data []byte) error {
	fc, err := c.begin(p, int64(len(data)))
	if err != nil {
		return err
	}
	fc.write(data)
	return fc.finish()
}

// finish checks that every listed file was seen, naming the first few
// missing ones.
func (c *manifestCheck) finish(ctx context.Context) (VerifyStats, error) {
	if c == nil {
		return VerifyStats{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unseen == 0 {
		return c.stats, nil
	}
	var missing []string
	f, err := c.root.Open(pgManifestPartial)
	if err == nil {
		_, err = readManifest(ctx, f, func(mf manifestFile) error {
			p, err := mf.cleanPath()
			if err != nil {
				return err
			}
			if e := c.files[c.index[maphash.String(c.seed, p)]]; !e.seen && !e.ignored && len(missing) < maxVerifyProblems {
				missing = append(missing, p)
			}
			return nil
		})
		f.Close()
	}
	if err != nil {
		return c.stats, fmt.Errorf("%w: %d files listed in %s are not in the backup (reading it again to name them: %w)", ErrVerify, c.unseen, pgManifestFile, err)
	}
	more := ""
	if c.unseen > len(missing) {
		more = fmt.Sprintf(" (and %d more)", c.unseen-len(missing))
	}
	return c.stats, fmt.Errorf("%w: %d files listed in %s are not in the backup: %s%s", ErrVerify, c.unseen, pgManifestFile, strings.Join(missing, ", "), more)
}

// fileCheck checks one file as its bytes are written. Its methods do
// nothing on nil (a file not checked).
type fileCheck struct {
	c     *manifestCheck
	path  string
	alg   string
	h     hash.Hash // nil for NONE
	want  []byte
	size  int64
	n     int64
	start [8]byte // the first bytes: pg_control's system identifier
}

func (f *fileCheck) write(p []byte) {
	if f == nil {
		return
	}
	if f.n < int64(len(f.start)) {
		copy(f.start[f.n:], p)
	}
	f.n += int64(len(p))
	if f.h != nil {
		f.h.Write(p)
	}
}

// verifiedSum is the file's length and CRC-32C once finish has found them
// to be the manifest's; not known for a file not checked or listed with
// another algorithm.
func (f *fileCheck) verifiedSum() fileSum {
	if f == nil || f.alg != "CRC32C" || len(f.want) != 4 || f.n != f.size {
		return fileSum{}
	}
	return fileSum{size: f.size, crc: binary.LittleEndian.Uint32(f.want), known: true}
}

// finish compares what was written with the manifest.
func (f *fileCheck) finish() error {
	if f == nil {
		return nil
	}
	if f.n != f.size {
		return fmt.Errorf("%w: %d bytes of %s were written, %s says %d", ErrVerify, f.n, f.path, pgManifestFile, f.size)
	}
	if f.h != nil {
		if got := f.h.Sum(nil); !bytes.Equal(got, f.want) {
			return fmt.Errorf("%w: %s has %s checksum %x as written, %s says %x: the backup is damaged; restore another backup", ErrVerify, f.path, f.alg, got, pgManifestFile, f.want)
		}
	}
	// pg_verifybackup (17 and later) checks the same: the control file's
	// first field is the system identifier, in the server's byte order.
	if f.path == pgControlName && f.c.systemID != "" {
		if f.n < int64(len(f.start)) {
			return fmt.Errorf("%w: %s is too short to hold a system identifier", ErrVerify, pgControlName)
		}
		if got := strconv.FormatUint(binary.NativeEndian.Uint64(f.start[:]), 10); got != f.c.systemID {
			return fmt.Errorf("%w: %s has system identifier %s, %s says %s: the backup is damaged", ErrVerify, pgControlName, got, pgManifestFile, f.c.systemID)
		}
	}
	f.c.mu.Lock()
	f.c.stats.Files++
	f.c.stats.Bytes += f.n
	f.c.mu.Unlock()
	return nil
}
