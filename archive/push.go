package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/membuf"
	"github.com/walvault/walvault/internal/parhash"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Options are wal-push's settings, resolved by cmd.
type Options struct {
	// Compression is the codec segments are stored in (zstd at ZstdLevel;
	// 0: its default). Each object records its own, so the setting may
	// change at any time: a segment archived in another codec is found
	// under that codec's key and settled against (see archivedCopyKey), so
	// it is stored once.
	Compression repository.Compression
	ZstdLevel   int
	Host        string // recorded with each object
	Version     string // walvault version, recorded with each object
	// Lock is the Object Lock policy: each object (walvault.json when this
	// push creates the repository, then the WAL file) is locked until Now
	// plus Lock.Days. It must be the policy walvault.json records, or the
	// push is refused (repository.ErrLockPolicy). The zero value is off.
	Lock repository.LockPolicy
	// Recipients, when set, encrypts every object to these age keys
	// (after compression). The repository must be encrypted too, or the
	// push is refused (repository.ErrEncryptionSettings), and the other
	// way round.
	Recipients *crypt.Recipients
	// IdentityCacheTTL turns on the identity cache in pg_wal/walvault (see
	// identitycache.go): a segment whose cluster matches an identity read
	// from walvault.json less than this long ago is pushed without reading
	// walvault.json again. 0 reads it on every push.
	IdentityCacheTTL time.Duration
	// SystemID and PGMajor name the cluster of history files pushed from
	// outside a data directory (wal-receive's spool, which learnt them
	// from the server); from pg_wal, the data directory's pg_control does.
	SystemID string
	PGMajor  int
	Now      func() time.Time // nil means time.Now
	Log      *slog.Logger     // nil discards
}

// Result says what a push did.
type Result struct {
	File            wal.FileName
	Key             string
	RawSize         int64
	StoredSize      int64 // bytes stored (compressed); -1 when not known
	SHA256          string
	AlreadyArchived bool // the same content was already in the repository
}

// ErrWrongCluster: the segment belongs to another cluster than the one the
// repository was created for (repository.Identity.CheckCluster says so).
var ErrWrongCluster = repository.ErrWrongCluster

// Push archives the file at path (archive_command's %p, relative to the data
// directory or absolute). It returns nil only once the object is durable in
// the repository, or was already there with the same content.
func Push(ctx context.Context, b storage.Backend, path string, opts Options) (Result, error) {
	opts = opts.withDefaults()
	name := filepath.Base(path)
	file, err := wal.Classify(name)
	if err != nil {
		return Result{}, fmt.Errorf("%w (archive_command passes %%p, the path of a file in pg_wal)", err)
	}
	f, err := openRegular(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if err := checkMarkedForArchive(path); err != nil {
		return Result{}, err
	}
	var history []wal.HistoryEntry
	if file.Kind == wal.KindTimelineHistory {
		if history, err = checkHistoryFile(f, path, file); err != nil {
			return Result{}, err
		}
	}

	res := Result{File: file}
	meta := baseMetadata(file, opts)
	if repository.Compressed(file.Kind) {
		hdr, err := checkSegment(f, file)
		if err != nil {
			return Result{}, err
		}
		meta[repository.MetaSystemID] = strconv.FormatUint(hdr.SystemID, 10)
		return pushSegment(ctx, b, f, path, hdr, res, meta, opts)
	}
	// History and backup history files carry no system identifier: the
	// data directory whose pg_wal holds them says whose they are. The
	// repository's lock policy binds them too. Before the first segment
	// there is no policy yet: the configured one goes.
	id, err := repository.LoadIdentity(ctx, b)
	switch {
	case err == nil:
		if sysID, major, ok := historyCluster(path, opts); ok {
			// Another cluster's history would redirect recovery to
			// latest onto its timeline (pg_upgrade, a new initdb or a
			// clone with the old archive settings).
			if err := id.CheckCluster(sysID, major, b.Location()); err != nil {
				return Result{}, fmt.Errorf("%s: %w (nothing was archived)", file, err)
			}
			meta[repository.MetaSystemID] = sysID
		}
		if err := checkRepositoryLock(id, opts, b.Location()); err != nil {
			return Result{}, err
		}
		if _, err := repository.RecordRecipients(ctx, b, id, opts.Recipients, opts.Host, opts.Now(), opts.Lock.Retention(opts.Now())); err != nil {
			return Result{}, err
		}
	case !errors.Is(err, storage.ErrNotFound):
		return Result{}, fmt.Errorf("read repository identity from %s: %w", b.Location(), err)
	default:
		cache := identityCacheFor(path, b.Location(), opts.IdentityCacheTTL)
		if seen := cache.lastVerified(); !seen.IsZero() {
			return Result{}, goneError(&repository.GoneError{Location: b.Location(), Seen: seen}, cache.path())
		}
		// The first object of a new repository may be a history file (a
		// promoted server pointed at a new prefix archives its timeline's
		// first): its record of the cluster lets the first segment's push
		// create walvault.json over it.
		if sysID, _, ok := historyCluster(path, opts); ok {
			meta[repository.MetaSystemID] = sysID
		}
		// A new repository: its first object waits for the proof. The
		// probe is dated by the real clock, the one the server judges
		// its retention by.
		if _, err := repository.ProveCapabilities(ctx, b, repository.NewProbe(opts.Host, time.Now()), opts.Lock); err != nil {
			return Result{}, err
		}
	}
	body, err := encodeFile(f, path, opts.codec(repository.None), &res, meta)
	if err != nil {
		return Result{}, err
	}
	if history != nil {
		// Readable without the identity, so that verify, check, info and
		// the exporter follow timelines in an encrypted repository too.
		// Clear ones get it as well: one format, whatever the encryption;
		// their readers trust the content, which PostgreSQL reads.
		repository.DescribeHistory(meta, history)
	}
	// As for segments (archivedCopyKey): a copy already there is settled
	// against, not left to a conditional create the server may ignore.
	switch _, err := b.Stat(ctx, res.Key); {
	case err == nil:
		closeBody(body)
		return settleConflict(ctx, b, res, meta, opts.Log)
	case !errors.Is(err, storage.ErrNotFound):
		closeBody(body)
		return Result{}, fmt.Errorf("%s not archived: asking %s whether it already holds a copy failed: %w", res.File, b.Location(), err)
	}
	return upload(ctx, b, body, res, meta, opts, identityCache{})
}

// goneError adds to a repository.GoneError how to start anew on purpose:
// the evidence is this pg_wal's identity cache entry.
func goneError(gone *repository.GoneError, cachePath string) error {
	return fmt.Errorf("%w; to start a new repository at this location on purpose, delete %s (this server's record of the old one)", gone, cachePath)
}

// isLocalDirectory says whether b, under its decorators, is a file://
// repository, where a disk that is not mounted shows as an empty
// directory.
func isLocalDirectory(b storage.Backend) bool {
	return strings.HasPrefix(b.Location(), "file://")
}

// serverCluster is the system identifier and major version of the data
// directory whose pg_wal holds path (archive_command's %p: pg_wal/NAME,
// relative to the data directory); ok is false when path lies elsewhere
// (a file pushed by hand) or its pg_control cannot be read.
func serverCluster(path string, log *slog.Logger) (sysID string, major int, ok bool) {
	abs, err := filepath.Abs(path)
	if err != nil || filepath.Base(filepath.Dir(abs)) != "pg_wal" {
		return "", 0, false
	}
	dataDir := filepath.Dir(filepath.Dir(abs))
	sysID, err = pg.ControlSystemID(dataDir)
	if err != nil {
		log.Debug("the cluster of the data directory is not known; pushed without comparing it", "data_dir", dataDir, "error", err)
		return "", 0, false
	}
	return sysID, pg.DataDirMajor(dataDir), true
}

// historyCluster is the cluster a history or backup history file at path
// belongs to: the data directory's whose pg_wal holds it, or else the one
// opts names (wal-receive's).
func historyCluster(path string, opts Options) (sysID string, major int, ok bool) {
	if sysID, major, ok := serverCluster(path, opts.Log); ok {
		return sysID, major, true
	}
	return opts.SystemID, opts.PGMajor, opts.SystemID != ""
}

// baseMetadata is the metadata every archived file carries; the encoding
// adds its checksum, sizes and compression.
func baseMetadata(file wal.FileName, opts Options) map[string]string {
	return map[string]string{
		repository.MetaTimeline: fmt.Sprintf("%08X", uint32(file.Timeline)),
		repository.MetaHost:     opts.Host,
		repository.MetaPushedAt: opts.Now().UTC().Format(time.RFC3339),
		repository.MetaWalvault: opts.Version,
	}
}

// pushSegment pushes a WAL segment (or .partial) whose header was checked
// against its name. The repository identity says whether the segment may go
// there and how it is compressed. Unless the identity cache has it, it is
// read from walvault.json while the segment is being compressed and hashed,
// so the round trip costs no time; nothing is uploaded before it was checked.
func pushSegment(ctx context.Context, b storage.Backend, f *os.File, path string, hdr wal.Header, res Result, meta map[string]string, opts Options) (Result, error) {
	cache := identityCacheFor(path, b.Location(), opts.IdentityCacheTTL)
	id, cached := cache.load(opts.Now())
	if cached && (checkIdentity(id, hdr, res.File, b.Location()) != nil || id.CheckLock(opts.Lock, b.Location()) != nil || id.CheckEncryption(opts.Recipients, b.Location()) != nil) {
		cached = false // never refused on the cache's word: the repository decides
	}
	if cached && !id.Records(opts.Recipients) {
		cached = false // a new key: verifyIdentity records it first
	}
	if cached && isLocalDirectory(b) {
		// A stat costs nothing here, and a disk unmounted under a
		// file:// repository leaves an empty directory: no cached
		// identity may send segments there.
		if _, err := b.Stat(ctx, repository.IdentityKey); err != nil {
			cached = false
		}
	}
	if cached {
		opts.Log.Debug("repository identity from the cache", "repository", b.Location(), "path", cache.path())
	}
	// Whether another codec's key holds the segment is asked while it is
	// encoded, so the answer costs no time.
	other := make(chan otherCopy, 1)
	go func() {
		key, err := archivedCopyKey(ctx, b, res.File, opts.Compression)
		other <- otherCopy{key, err}
	}()

	type checked struct {
		id  repository.Identity
		err error
	}
	var verified chan checked
	if !cached {
		verified = make(chan checked, 1)
		file := res.File
		go func() {
			id, err := verifyIdentity(ctx, b, hdr, file, opts, cache)
			verified <- checked{id, err}
		}()
	}
	body, encErr := encodeFile(f, path, opts.codec(opts.Compression), &res, meta)
	found := <-other // always waited for: nothing outlives Push
	if verified != nil {
		v := <-verified
		if v.err != nil {
			closeBody(body)
			return Result{}, v.err
		}
		id = v.id
		if err := cache.store(id, opts.Now()); err != nil {
			opts.Log.Warn("cannot cache the repository identity; the next push reads it again", "err", err)
		}
	}
	if encErr != nil {
		return Result{}, encErr
	}
	var out Result
	var err error
	switch {
	case found.err != nil:
		closeBody(body)
		err = found.err
	case found.key != "":
		closeBody(body)
		res.Key = found.key
		if out, err = settleConflict(ctx, b, res, meta, opts.Log); err != nil {
			if derr := cache.drop(); derr != nil {
				opts.Log.Warn("cannot drop the cached repository identity", "err", derr)
			}
		}
	default:
		out, err = upload(ctx, b, body, res, meta, opts, cache)
	}
	if cached && errors.Is(err, ErrConflict) {
		// The cache spared the identity check; a conflict may mean the
		// repository was replaced by another cluster's. Ask it.
		if _, verr := verifyIdentity(ctx, b, hdr, res.File, opts, cache); verr != nil {
			return Result{}, verr
		}
	}
	return out, err
}

// verifyIdentity reads the repository identity (creating it from the
// segment's header in an empty repository, unless cache says a repository
// was there: then it is gone) and checks that the segment and the
// configured lock policy belong there.
func verifyIdentity(ctx context.Context, b storage.Backend, hdr wal.Header, file wal.FileName, opts Options, cache identityCache) (repository.Identity, error) {
	want := repository.NewIdentity(hdr.SystemID, hdr.SegmentSize, hdr.PGMajor, opts.Compression, opts.Host, opts.Now()).WithLock(opts.Lock).WithEncryption(opts.Recipients)
	id, err := repository.EnsureProvenIdentity(ctx, b, want, opts.Lock.Retention(opts.Now()), cache.lastVerified())
	var refused *repository.CapabilityError
	var lost *repository.IdentityLostError
	var gone *repository.GoneError
	if errors.As(err, &gone) {
		return repository.Identity{}, goneError(gone, cache.path())
	}
	if errors.As(err, &refused) || errors.As(err, &lost) {
		return repository.Identity{}, err // one line, naming the repository already
	}
	if err != nil {
		return repository.Identity{}, fmt.Errorf("read repository identity from %s: %w", b.Location(), err)
	}
	id.WarnRecreated(opts.Log, b.Location())
	if err := checkIdentity(id, hdr, file, b.Location()); err != nil {
		return repository.Identity{}, err
	}
	if err := checkRepositoryLock(id, opts, b.Location()); err != nil {
		return repository.Identity{}, err
	}
	return repository.RecordRecipients(ctx, b, id, opts.Recipients, opts.Host, opts.Now(), opts.Lock.Retention(opts.Now()))
}

// encodeFile reads the file into its stored body in codec c, and fills
// in res and meta: key, sizes, checksum (or, encrypted, the plaintext's
// keyed fingerprints instead).
func encodeFile(f *os.File, path string, c repository.Codec, res *Result, meta map[string]string) (sizedReader, error) {
	var body sizedReader
	var sum, fingerprints string
	var size int64
	var err error
	encodeSlots <- struct{}{}
	defer func() { <-encodeSlots }()
	if c.Encrypted() {
		body, sum, fingerprints, size, err = encodeEncrypted(f, filepath.Base(path), c)
	} else {
		body, sum, size, err = encode(f, filepath.Base(path), c)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	res.Key = repository.WALKey(res.File, c.Compression)
	res.RawSize, res.SHA256, res.StoredSize = size, sum, body.Size()
	meta[repository.MetaCompression] = string(c.Compression)
	meta[repository.MetaSHA256] = sum
	meta[repository.MetaRawSize] = strconv.FormatInt(size, 10)
	c.Describe(meta, fingerprints)
	return body, nil
}

// encodeSlots bounds the files one process encodes at once. Encoding is
// CPU-bound and each encode already uses every core (encodeLZ4), so more at
// once only holds more read buffers: a push with upload-concurrency 64
// would otherwise read 65 segments side by side, 8 MiB of blocks each.
// The uploads, which wait on the network, still all run in parallel.
var encodeSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)/2))

// closeBody ends the compressing goroutine of a streamed body.
func closeBody(body sizedReader) {
	if c, ok := body.(io.Closer); ok {
		c.Close()
	}
}

// upload stores body with a conditional create. An existing object is
// success if it holds the same file, a conflict otherwise. A failed or
// conflicting upload drops the identity cache entry, so that the next push
// asks the repository again.
func upload(ctx context.Context, b storage.Backend, body sizedReader, res Result, meta map[string]string, opts Options, cache identityCache) (Result, error) {
	err := b.Put(ctx, res.Key, body, storage.PutOptions{IfNotExists: true, Metadata: meta, Size: body.Size(), Retention: opts.Lock.Retention(opts.Now())})
	closeBody(body) // ends the compressing goroutine if Put stopped early
	switch {
	case errors.Is(err, storage.ErrExists):
		res, err = settleConflict(ctx, b, res, meta, opts.Log)
	case err != nil:
		err = fmt.Errorf("upload %s to %s: %w", res.File, b.Location(), err)
	}
	if err != nil {
		if derr := cache.drop(); derr != nil {
			opts.Log.Warn("cannot drop the cached repository identity", "err", derr)
		}
		return Result{}, err
	}
	return res, nil
}

// maxInMemory is the largest file encoded in memory in one pass. Default
// 16 MiB segments fit; larger segment sizes take the two-pass stream so
// memory stays bounded whatever the configuration.
const maxInMemory = 16 << 20

// encode reads the file once, hashing it on one core while it is
// compressed into memory on the others: the checksum must be known before
// the upload starts (S3 sends metadata before the body), and the stored body
// and its checksum come from the very same bytes. Larger files are hashed
// first and then streamed (see streamBody).
func encode(f *os.File, name string, c repository.Codec) (body sizedReader, sum string, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, "", 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", 0, err
	}
	if fi.Size() > maxInMemory {
		return streamBody(f, name, c)
	}
	if c.Compression == repository.LZ4 {
		buf, digest, n, err := encodeLZ4(f)
		if err != nil {
			return nil, "", 0, err
		}
		return buf, hex.EncodeToString(digest), n, nil
	}
	// Chunks, not one growing slice: memory follows the compressed size
	// without a doubling copy, and the body can be rewound for a retry.
	var buf membuf.Buffer
	zw, err := c.NewWriter(&buf)
	if err != nil {
		return nil, "", 0, err
	}
	hasher := parhash.New(sha256.New(), nil)
	_, err = io.Copy(io.MultiWriter(zw, hasher), f)
	digest, n := hasher.Sum()
	if err != nil {
		return nil, "", 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, "", 0, err
	}
	return &buf, hex.EncodeToString(digest), n, nil
}

// sizedReader is a body whose stored size is known (Size) or -1.
type sizedReader interface {
	io.Reader
	Size() int64
}

// streamBody is the two-pass path for files too large to hold: hash first,
// then compress while uploading. The second pass re-hashes and fails before
// EOF if the file changed in between, so the stored body always matches its
// metadata.
func streamBody(f *os.File, name string, c repository.Codec) (sizedReader, string, int64, error) {
	sum, size, err := hashFile(f)
	if err != nil {
		return nil, "", 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", 0, err
	}
	src := &verifyingReader{r: f, h: sha256.New(), want: sum, wantSize: size, name: name}
	if c.Compression == repository.None {
		return &unknownSize{src, size}, sum, size, nil
	}
	pr, pw := io.Pipe()
	go func() {
		zw, err := c.NewWriter(pw)
		if err == nil {
			_, err = io.Copy(zw, src)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	return &unknownSize{pr, -1}, sum, size, nil
}

type unknownSize struct {
	io.Reader
	size int64
}

func (u *unknownSize) Size() int64 { return u.size }

// Close stops a pipe's writer if the reader gave up before EOF.
func (u *unknownSize) Close() error {
	if pr, ok := u.Reader.(*io.PipeReader); ok {
		return pr.CloseWithError(errors.New("upload ended"))
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Compression == "" {
		o.Compression = repository.LZ4
	}
	return o
}

// codec is how bodies in compression c are stored under these options.
func (o Options) codec(c repository.Compression) repository.Codec {
	return repository.Codec{Compression: c, Level: o.ZstdLevel, Recipients: o.Recipients}
}

// openRegular opens path and refuses anything but a regular file, with a
// message that says what to check.
// ErrNotMarked: a file in pg_wal that PostgreSQL has not marked for
// archiving (checkMarkedForArchive).
var ErrNotMarked = errors.New("not marked for archiving by PostgreSQL")

// checkMarkedForArchive refuses a file of a pg_wal (a directory beside
// its archive_status) that PostgreSQL has neither marked .ready, as it
// does before it runs archive_command, nor archived (.done). Such a
// segment is still being written, or was recycled ahead under a future
// name: its bytes are not what they will be, and once archived under its
// name the complete segment would be refused for good (never overwrite),
// archiving would stop, and pg_wal would fill. A file elsewhere (a copy,
// pg_receivewal's directory) has no such marks and is not checked.
func checkMarkedForArchive(path string) error {
	status := filepath.Join(filepath.Dir(path), "archive_status")
	if fi, err := os.Stat(status); err != nil || !fi.IsDir() {
		return nil
	}
	name := filepath.Base(path)
	for _, mark := range []string{".ready", ".done"} {
		if _, err := os.Stat(filepath.Join(status, name+mark)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: %s has neither archive_status/%s.ready nor .done beside it: PostgreSQL may still be writing it, and archives it itself once it is complete: do not push it by hand, which would store the unfinished file and refuse the complete one for good; not archived (a file of a server that is stopped for good, complete by then, may be pushed by hand once copied out of pg_wal)", ErrNotMarked, path, name)
}

// maxHistoryFile bounds what wal-push reads of a timeline history file to
// check it: a line is a few dozen bytes per ancestor timeline.
const maxHistoryFile = 16 << 20

// checkHistoryFile refuses a timeline history file PostgreSQL would not
// read as its name's history (wal.ParseHistory, wal.CheckHistory, and at
// least one ancestor: timeline 1 has no history file). Archived, such a
// file would stay in the repository for good, and every later look at
// the timelines (check, drill, a recovery to the latest timeline) would
// stumble on it. f is left at its start. It returns the entries.
func checkHistoryFile(f *os.File, path string, file wal.FileName) ([]wal.HistoryEntry, error) {
	entries, err := wal.ParseHistory(io.LimitReader(f, maxHistoryFile))
	if err == nil && len(entries) == 0 {
		err = errors.New("it lists no parent timeline")
	}
	if err == nil {
		err = wal.CheckHistory(file.Timeline, entries)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is not a timeline history file PostgreSQL would read: %w; not archived", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return entries, nil
}

func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		wd, _ := os.Getwd()
		return nil, fmt.Errorf("%s does not exist (working directory %s): archive_command must be 'walvault wal-push %%p', which PostgreSQL runs in the data directory", path, wd)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return f, nil
}

// checkSegment reads the segment's long page header and checks it and the
// file's size against the name.
func checkSegment(f *os.File, file wal.FileName) (wal.Header, error) {
	hdr, err := wal.ReadHeader(f)
	if err != nil {
		return wal.Header{}, fmt.Errorf("%s: %w", file, err)
	}
	if err := hdr.Check(file.Segment); err != nil {
		return wal.Header{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return wal.Header{}, err
	}
	if fi.Size() != int64(hdr.SegmentSize) {
		return wal.Header{}, fmt.Errorf("%s is %d bytes, but its header says segments are %d bytes: the file is truncated or not a WAL segment; nothing was archived", file, fi.Size(), hdr.SegmentSize)
	}
	return hdr, nil
}

// checkRepositoryLock refuses a push under another lock policy than the
// repository's, and warns when walvault.json was found only hidden.
func checkRepositoryLock(id repository.Identity, opts Options, location string) error {
	if id.Hidden {
		opts.Log.Warn(repository.IdentityKey+" is hidden by a delete marker (someone deleted it without a version id); archiving goes on with its hidden version",
			"key", repository.IdentityKey, "hint", "run `walvault repair` to make it visible again")
	}
	if id.Overwritten != "" {
		opts.Log.Warn(repository.IdentityKey+" was written over; archiving goes on with walvault's first version", "why", id.Overwritten, "hint", repository.IdentityOverwrittenFix)
	}
	if err := id.CheckLock(opts.Lock, location); err != nil {
		return err
	}
	return id.CheckEncryption(opts.Recipients, location)
}

func checkIdentity(id repository.Identity, hdr wal.Header, file wal.FileName, location string) error {
	if err := id.CheckCluster(strconv.FormatUint(hdr.SystemID, 10), hdr.PGMajor, location); err != nil {
		return fmt.Errorf("%s: %w (nothing was archived)", file, err)
	}
	if hdr.SegmentSize != id.WALSegmentSize {
		return fmt.Errorf("%s has WAL segment size %d, but repository %s holds segments of %d bytes: use a new repository prefix (nothing was archived)",
			file, hdr.SegmentSize, location, id.WALSegmentSize)
	}
	return nil
}

func hashFile(f *os.File) (string, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// verifyingReader passes bytes through while hashing them, and turns EOF into
// an error if what it read is not what the first pass hashed.
type verifyingReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	want     string
	wantSize int64
	name     string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want || v.n != v.wantSize {
			return n, fmt.Errorf("%s changed while it was being archived (sha256 %s, %d bytes, then %s, %d bytes): nothing was stored; PostgreSQL will retry", v.name, v.want, v.wantSize, got, v.n)
		}
	}
	return n, err
}
