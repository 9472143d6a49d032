package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// pgManifestFile is PostgreSQL's backup manifest in a restored data
// directory.
const pgManifestFile = "backup_manifest"

// pgManifestPartial is where restore writes backup_manifest until its
// checksum is verified.
const pgManifestPartial = "." + pgManifestFile + ".walvault-partial"

// ErrVerify: the restored files do not match PostgreSQL's backup_manifest.
var ErrVerify = errors.New("restored files do not match backup_manifest")

// defaultVerifyIgnore is what pg_verifybackup ignores unless told otherwise.
var defaultVerifyIgnore = []string{"backup_manifest", "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal"}

// VerifyStats says what VerifyDataDir checked.
type VerifyStats struct {
	Files int
	Bytes int64
}

// maxVerifyProblems bounds how many problems an error lists.
const maxVerifyProblems = 10

// VerifyDataDir checks a restored data directory against its
// backup_manifest the way `pg_verifybackup -n` does: the manifest's own
// checksum, then every listed file's size and checksum (SHA-224/256/384/512
// or CRC-32C), then that no file is present that the manifest does not list.
// Paths in ignore (relative, "/"-separated; a directory covers everything
// beneath it) are skipped, on top of pg_verifybackup's defaults
// (backup_manifest, pg_wal, postgresql.auto.conf, recovery.signal,
// standby.signal). pg_tblspc/<oid> links are followed. The manifest is
// streamed: memory stays small whatever the number of files.
func VerifyDataDir(ctx context.Context, dataDir string, ignore []string) (VerifyStats, error) {
	v := &verifier{ctx: ctx, dir: dataDir, seed: maphash.MakeSeed(), listed: map[uint64]struct{}{}, ignore: cleanIgnore(ignore)}
	f, err := os.Open(filepath.Join(dataDir, pgManifestFile))
	if err != nil {
		return VerifyStats{}, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer f.Close()
	lh := &lineHasher{h: sha256.New()}
	body := io.TeeReader(f, lh)
	mh, err := readManifest(ctx, body, v.checkFile)
	if err != nil {
		return v.stats, err
	}
	checksum := mh.checksum
	if _, err := io.Copy(io.Discard, body); err != nil {
		return v.stats, fmt.Errorf("read %s: %w", pgManifestFile, err)
	}
	if err := lh.check(checksum); err != nil {
		return v.stats, fmt.Errorf("%w: %s: %w", ErrVerify, pgManifestFile, err)
	}
	if err := v.findUnlisted(); err != nil {
		return v.stats, err
	}
	if v.problems > 0 {
		more := ""
		if v.problems > len(v.details) {
			more = fmt.Sprintf("\n(and %d more)", v.problems-len(v.details))
		}
		return v.stats, fmt.Errorf("%w: %d problems in %s:\n%s%s", ErrVerify, v.problems, dataDir, strings.Join(v.details, "\n"), more)
	}
	return v.stats, nil
}

type verifier struct {
	ctx      context.Context
	dir      string
	ignore   []string
	seed     maphash.Seed
	listed   map[uint64]struct{} // hashes of listed paths (8 bytes a file)
	stats    VerifyStats
	problems int
	details  []string
	buf      []byte
}

func (v *verifier) problem(format string, args ...any) {
	v.problems++
	if len(v.details) < maxVerifyProblems {
		v.details = append(v.details, fmt.Sprintf(format, args...))
	}
}

func (v *verifier) ignored(p string) bool { return ignoredBy(v.ignore, p) }

// cleanIgnore is pg_verifybackup's default ignore list plus extra paths,
// as clean relative slash paths.
func cleanIgnore(extra []string) []string {
	var out []string
	for _, p := range append(append([]string(nil), defaultVerifyIgnore...), extra...) {
		out = append(out, strings.Trim(path.Clean(filepath.ToSlash(p)), "/"))
	}
	return out
}

// ignoredBy reports whether p is, or lies beneath, a path of ignore.
func ignoredBy(ignore []string, p string) bool {
	for _, ig := range ignore {
		if p == ig || strings.HasPrefix(p, ig+"/") {
			return true
		}
	}
	return false
}

// manifestFile is one entry of the manifest's "Files" array.
type manifestFile struct {
	Path        string `json:"Path"`
	EncodedPath string `json:"Encoded-Path"`
	Size        int64  `json:"Size"`
	Modified    string `json:"Last-Modified"`
	Algorithm   string `json:"Checksum-Algorithm"`
	Checksum    string `json:"Checksum"`
}

// manifestHeader is what a manifest says besides its files.
type manifestHeader struct {
	version  string
	systemID string // version 2 only: the cluster's system identifier
	checksum string // Manifest-Checksum
	// walRanges is the WAL-Ranges array as written, for a combined
	// manifest (writeCombinedManifest) to carry on.
	walRanges json.RawMessage
}

// readManifest walks the manifest's top-level object, handing each file
// entry to file as it is decoded, and returns the rest.
func readManifest(ctx context.Context, r io.Reader, file func(manifestFile) error) (manifestHeader, error) {
	var mh manifestHeader
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s is not a valid PostgreSQL backup manifest: %s", ErrVerify, pgManifestFile, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return mh, bad("it does not start with a JSON object")
	}
	var version json.Number
	sawFiles := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return mh, bad("%v", err)
		}
		key, _ := tok.(string)
		switch key {
		case "PostgreSQL-Backup-Manifest-Version":
			if err := dec.Decode(&version); err != nil {
				return mh, bad("version: %v", err)
			}
			if version != "1" && version != "2" {
				return mh, bad("manifest version %s is not supported (1 and 2 are)", version)
			}
		case "System-Identifier": // version 2 (PostgreSQL 17 and later)
			var id json.Number
			if err := dec.Decode(&id); err != nil {
				return mh, bad("System-Identifier: %v", err)
			}
			if _, err := strconv.ParseUint(id.String(), 10, 64); err != nil {
				return mh, bad("System-Identifier %s is not a 64-bit unsigned number", id)
			}
			mh.systemID = id.String()
		case "Files":
			sawFiles = true
			if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
				return mh, bad("Files is not an array")
			}
			for dec.More() {
				if err := ctx.Err(); err != nil {
					return mh, err
				}
				var mf manifestFile
				if err := dec.Decode(&mf); err != nil {
					return mh, bad("file entry: %v", err)
				}
				if err := file(mf); err != nil {
					return mh, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return mh, bad("%v", err)
			}
		case "Manifest-Checksum":
			if err := dec.Decode(&mh.checksum); err != nil {
				return mh, bad("Manifest-Checksum: %v", err)
			}
		default: // WAL-Ranges (not checked: -n), newer keys
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return mh, bad("%s: %v", key, err)
			}
			if key == "WAL-Ranges" {
				mh.walRanges = skip
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return mh, bad("%v", err)
	}
	if version == "" || !sawFiles || mh.checksum == "" {
		return mh, bad("it lacks PostgreSQL-Backup-Manifest-Version, Files or Manifest-Checksum")
	}
	mh.version = version.String()
	return mh, nil
}

// cleanPath is the entry's path (decoded from Encoded-Path when given),
// refused when it is not a clean relative path.
func (mf manifestFile) cleanPath() (string, error) {
	p := mf.Path
	if mf.EncodedPath != "" {
		raw, err := hex.DecodeString(mf.EncodedPath)
		if err != nil {
			return "", fmt.Errorf("%w: %s: invalid Encoded-Path %q", ErrVerify, pgManifestFile, mf.EncodedPath)
		}
		p = string(raw)
	}
	if p == "" || path.IsAbs(p) || !isLocal(path.Clean(p)) || path.Clean(p) != p {
		return "", fmt.Errorf("%w: %s lists the unsafe path %q", ErrVerify, pgManifestFile, p)
	}
	return p, nil
}

// checkFile verifies one listed file.
func (v *verifier) checkFile(mf manifestFile) error {
	p, err := mf.cleanPath()
	if err != nil {
		return err
	}
	v.listed[maphash.String(v.seed, p)] = struct{}{}
	if v.ignored(p) {
		return nil
	}
	h, err := newManifestHash(mf.Algorithm)
	if err != nil {
		return fmt.Errorf("%w: %s: file %s: %w", ErrVerify, pgManifestFile, p, err)
	}
	f, err := os.Open(filepath.Join(v.dir, filepath.FromSlash(p)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			v.problem("%s is in the manifest but not on disk", p)
			return nil
		}
		return fmt.Errorf("verify %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		v.problem("%s is not a regular file", p)
		return nil
	}
	if fi.Size() != mf.Size {
		v.problem("%s has size %d on disk but size %d in the manifest", p, fi.Size(), mf.Size)
		return nil
	}
	if h == nil {
		v.stats.Files++
		return nil
	}
	if v.buf == nil {
		v.buf = make([]byte, 1<<20)
	}
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, v.buf)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p, err)
	}
	if n != mf.Size {
		v.problem("%s changed size while being read", p)
		return nil
	}
	got := h.Sum(nil)
	if !strings.EqualFold(hex.EncodeToString(got), mf.Checksum) {
		v.problem("%s has %s checksum %x on disk but %s in the manifest", p, mf.Algorithm, got, mf.Checksum)
		return nil
	}
	v.stats.Files++
	v.stats.Bytes += n
	return nil
}

// newManifestHash returns the hash a manifest entry uses (nil for NONE).
func newManifestHash(alg string) (hash.Hash, error) {
	switch strings.ToUpper(alg) {
	case "", "NONE":
		return nil, nil
	case "SHA224":
		return sha256.New224(), nil
	case "SHA256":
		return sha256.New(), nil
	case "SHA384":
		return sha512.New384(), nil
	case "SHA512":
		return sha512.New(), nil
	case "CRC32C":
		return &crc32c{h: crc32.New(crc32.MakeTable(crc32.Castagnoli))}, nil
	}
	return nil, fmt.Errorf("unknown checksum algorithm %q", alg)
}

// crc32c is PostgreSQL's manifest CRC-32C: the standard Castagnoli CRC,
// printed as its four bytes in the server's (little-endian) memory order.
type crc32c struct{ h hash.Hash32 }

func (c *crc32c) Write(p []byte) (int, error) { return c.h.Write(p) }
func (c *crc32c) Sum(b []byte) []byte         { return binary.LittleEndian.AppendUint32(b, c.h.Sum32()) }
func (c *crc32c) Reset()                      { c.h.Reset() }
func (c *crc32c) Size() int                   { return 4 }
func (c *crc32c) BlockSize() int              { return c.h.BlockSize() }

// findUnlisted walks the data directory (and the tablespaces its
// pg_tblspc links reach) for regular files the manifest does not list.
func (v *verifier) findUnlisted() error {
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if err := v.ctx.Err(); err != nil {
				return err
			}
			r, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			name := path.Join(rel, filepath.ToSlash(r))
			if name == "." {
				return nil
			}
			if v.ignored(name) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0 && rel == "." && tablespaceLinkPattern().MatchString(name):
				return walk(p+string(filepath.Separator), name)
			case d.Type().IsRegular():
				if _, ok := v.listed[maphash.String(v.seed, name)]; !ok {
					v.problem("%s is on disk but not in the manifest", name)
				}
			}
			return nil
		})
	}
	return walk(v.dir, ".")
}

// lineHasher hashes what passes through it up to and including the
// second-to-last line break: the part of a backup manifest its
// Manifest-Checksum covers (everything but the last line).
type lineHasher struct {
	h       hash.Hash
	held    []byte // bytes after the last hashed one
	hasLine bool   // held holds a complete line
	lines   int
}

func (l *lineHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.held = append(l.held, p...)
			break
		}
		l.held = append(l.held, p[:i+1]...)
		p = p[i+1:]
		l.lines++
		if l.hasLine {
			j := bytes.IndexByte(l.held, '\n')
			l.h.Write(l.held[:j+1])
			l.held = append(l.held[:0], l.held[j+1:]...)
		}
		l.hasLine = true
	}
	if len(l.held) > 16<<20 {
		return 0, errors.New("a line longer than 16 MiB")
	}
	return n, nil
}

// check compares the hash with the manifest's own checksum.
func (l *lineHasher) check(want string) error {
	if l.lines < 2 {
		return errors.New("expected at least two lines")
	}
	if len(l.held) == 0 || l.held[len(l.held)-1] != '\n' || bytes.Count(l.held, []byte{'\n'}) != 1 {
		return errors.New("the last line does not end with a line break")
	}
	if got := hex.EncodeToString(l.h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("manifest checksum mismatch: computed %s, the manifest says %s (the manifest itself is damaged)", got, want)
	}
	return nil
}
