package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/parhash"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// FetchOptions are wal-fetch's settings, resolved by cmd.
type FetchOptions struct {
	// Compression is tried first; the other encodings are tried when the
	// object is not found under it.
	Compression repository.Compression
	// Identities decrypt the objects of an encrypted repository (nil:
	// none configured, and an encrypted object fails naming its keys).
	Identities *crypt.Identities
	Log        *slog.Logger
	// PrefetchWait bounds how long FetchCached waits for a prefetcher
	// that is downloading the same file before downloading it itself (0:
	// PrefetchWait).
	PrefetchWait time.Duration
	// AcceptGap answers "missing" for a segment missing while later ones
	// are archived, as for any missing file: recovery then ends at the
	// gap (restore --accept-gap). Without it such a miss is a *GapError.
	AcceptGap bool
}

// GapError: the segment PostgreSQL asked for is missing while a later
// one of its timeline is archived. Answering "missing" would end recovery
// there and leave the later WAL out; the storage may also just not have
// shown an object it holds (a replica lagging behind, a load balancer
// sending the request elsewhere), or a push ahead may have stored the
// later segment first, so asking again can help.
type GapError struct {
	Segment  wal.FileName
	Later    string // the later segment's key
	Location string
	// Listed: the file's own key lists this many versions, though no
	// request served it.
	Listed int
}

func (e *GapError) Error() string {
	if e.Listed > 0 {
		return fmt.Sprintf("%s is not served by %s, though its listing shows %d version(s) of it: a storage that did not show an object it holds; refusing to tell PostgreSQL it is missing, which would end recovery here", e.Segment, e.Location, e.Listed)
	}
	if e.Segment.Kind == wal.KindTimelineHistory {
		return fmt.Sprintf("%s is not in the archive at %s, though WAL of its timeline is (%s): a storage that did not show an object it holds, or a lost history file; refusing to tell PostgreSQL it is missing, which would make recovery pass that timeline by", e.Segment, e.Location, path.Base(e.Later))
	}
	return fmt.Sprintf("%s is not in the archive at %s, though the later %s is: a gap in the archive, a storage that did not show an object it holds, or a push ahead that stored the later segment first; refusing to tell PostgreSQL it is missing, which would end recovery here and leave out the WAL after it. If the segment is lost for good, restore with --accept-gap to end recovery at the gap (it gives restore_command's wal-fetch --accept-gap)",
		e.Segment, e.Location, path.Base(e.Later))
}

// FetchResult says what a fetch wrote.
type FetchResult struct {
	Key        string
	RawSize    int64
	StoredSize int64
	SHA256     string

	// checkpoints: the SHA-256 states at chunk boundaries, asked for by
	// the prefetcher (see sumRecord).
	checkpoints checkpoints
}

// ErrCorrupt: the archived object does not match its recorded checksum or
// size. Nothing was written to the destination.
var ErrCorrupt = errors.New("archived file is corrupt")

// Fetch writes the archived file name (restore_command's %f) to dest (%p).
// If the repository says the file is absent, the error wraps
// storage.ErrNotFound and nothing is written. dest appears only complete and
// verified: the body goes to a temporary file beside it, is checked against
// the recorded sha256 and size, then renamed into place.
//
// A file hidden behind a delete marker in a versioned bucket is still
// fetched, from its newest version, with a warning (see seeHidden): it is
// missing only when neither a visible nor a hidden version exists. One
// whose current version fails the checks is fetched from its newest older
// version that passes them, with a warning (see fetchOverwritten).
func Fetch(ctx context.Context, b storage.Backend, name, dest string, opts FetchOptions) (FetchResult, error) {
	return fetch(ctx, b, name, dest, opts, false)
}

// fetch is Fetch, or with forPrefetch the prefetcher's download: only the
// complete, visible, current object (a partial, a file hidden behind a
// delete marker or an overwritten one is left to wal-fetch itself, which
// serves it with what it must say), with the SHA-256 states at chunk
// boundaries recorded in the result at no extra hashing.
func fetch(ctx context.Context, b storage.Backend, name, dest string, opts FetchOptions, forPrefetch bool) (FetchResult, error) {
	if !forPrefetch {
		b = seeHidden(b, opts.Log)
	}
	file, err := wal.Classify(name)
	if err != nil {
		return FetchResult{}, fmt.Errorf("%w (restore_command passes %%f, the name of the file PostgreSQL wants)", err)
	}
	if file.Kind == wal.KindTimelineHistory && file.Timeline == 1 {
		// PostgreSQL never writes one, but asks for it at every promotion
		// from timeline 1: answered without the storage, which may be
		// out just then (a failed answer would stop the promotion).
		return FetchResult{}, fmt.Errorf("%s: timeline 1 has no history file (%w)", name, storage.ErrNotFound)
	}
	// Whether the key holds more than one version is asked beside the
	// object itself (see fetchShadowed), for the key the preferred codec
	// gives.
	versions := listVersions(ctx, b, repository.WALKey(file, opts.Compression))
	rc, info, compression, servedVersions, err := open(ctx, b, file, opts.Compression, opts.Log, forPrefetch, versions)
	preferredListed, _ := versions() // on a miss: whether the key still lists versions
	partial := false
	if errors.Is(err, storage.ErrNotFound) && !forPrefetch {
		if partialMayServe(dest, file) { // wal-receive's newest partial, if any (partial.go)
			rc, info, compression, err = openPartial(ctx, b, file, opts.Identities, err)
			partial = err == nil
		}
		if errors.Is(err, storage.ErrNotFound) {
			if gerr := missingNotEnd(ctx, b, file, preferredListed, opts.AcceptGap); gerr != nil {
				return FetchResult{}, gerr
			}
		}
	}
	if err != nil {
		return FetchResult{}, err
	}
	if !partial {
		listed, listErr := servedVersions()
		if listErr != nil {
			if err := versionsUnlisted(ctx, b, info.Key, listErr, forPrefetch, opts.Log); err != nil {
				rc.Close()
				return FetchResult{}, err
			}
		}
		if len(listed) > 1 {
			rc.Close()
			if forPrefetch {
				// Left to wal-fetch itself, which says what it serves.
				return FetchResult{}, fmt.Errorf("%w: %s holds %d versions: left to wal-fetch", ErrCorrupt, info.Key, len(listed))
			}
			res, err := fetchShadowed(ctx, b, info.Key, file, compression, dest, opts, listed)
			if !errors.Is(err, errVersionsRefused) {
				return res, err
			}
			// The storage lists the versions but will not read them:
			// the current one, as where it keeps none.
			if rc, info, compression, _, err = open(ctx, b, file, opts.Compression, opts.Log, forPrefetch, versions); err != nil {
				return FetchResult{}, err
			}
		}
	}
	res, err := writeObject(rc, info, compression, file, b.Location(), dest, opts, forPrefetch)
	if errors.Is(err, ErrCorrupt) && !forPrefetch && !partial {
		return fetchOverwritten(ctx, b, info.Key, file, compression, dest, opts, err)
	}
	return res, err
}

// missingNotEnd says whether a file every key of which is absent is still
// no end of the archive (a *GapError, or the error of the question): its key
// lists versions (listed: the storage did not serve an object it holds);
// a segment's timeline has a later segment or partial archived (a gap,
// unless accept); a history file's timeline has WAL archived (PostgreSQL
// archives the history first: it did not show).
func missingNotEnd(ctx context.Context, b storage.Backend, file wal.FileName, listed []storage.ObjectVersion, accept bool) error {
	switch {
	case len(listed) > 0:
		return &GapError{Segment: file, Later: repository.WALKey(file, repository.None), Location: b.Location(), Listed: len(listed)}
	case file.Kind == wal.KindSegment && !accept:
		later, err := repository.LaterSegment(ctx, b, file)
		if err != nil {
			return fmt.Errorf("%s is not in the archive at %s; looking for later segments (which would make it a gap, not the end of the archive) failed: %w", file, b.Location(), err)
		}
		if later != "" {
			return &GapError{Segment: file, Later: later, Location: b.Location()}
		}
	case file.Kind == wal.KindTimelineHistory:
		some, err := repository.TimelineHasWAL(ctx, b, file.Timeline)
		if err != nil {
			return fmt.Errorf("%s is not in the archive at %s; looking for WAL of timeline %d (which would make it missing, not absent) failed: %w", file, b.Location(), file.Timeline, err)
		}
		if some != "" {
			return &GapError{Segment: file, Later: some, Location: b.Location()}
		}
	}
	return nil
}

// versionsUnlisted decides what a failed listing of key's versions means
// for its fetch: the prefetcher caches nothing it could not check; a
// listing that failed for a while is a storage error (the fetch fails
// rather than serve a version it could not check); one the storage
// refuses for good is an error in a repository under Object Lock (where a
// newer version put over a locked one must be seen) and, elsewhere,
// leaves the current version served.
func versionsUnlisted(ctx context.Context, b storage.Backend, key string, listErr error, forPrefetch bool, log *slog.Logger) error {
	if forPrefetch {
		return fmt.Errorf("%w: the versions of %s could not be listed (%v): left to wal-fetch", ErrCorrupt, key, listErr)
	}
	locked := func() bool {
		id, err := repository.LoadIdentity(ctx, b)
		return err == nil && id.Lock().Enabled()
	}
	return listingFailed(b, key, listErr, locked, "end a recovery early", log)
}

// listingFailed is the verdict on a failed listing of key's versions,
// read to find a version someone put over walvault's: one that failed for
// a while is a storage error (nothing is used that could not be checked);
// one the storage refuses for good is an error in a repository under
// Object Lock (locked, asked only then), where such a version must be
// seen, and elsewhere leaves the current version used. harm says what a
// version put over the key could do.
func listingFailed(b storage.Backend, key string, listErr error, locked func() bool, harm string, log *slog.Logger) error {
	switch {
	case !storage.IsPermanent(listErr):
		return fmt.Errorf("list the versions of %s in %s (a newer version put over it could %s): %w", key, b.Location(), harm, listErr)
	case locked():
		return fmt.Errorf("the storage refuses to list the versions of %s (%v), and the repository is under Object Lock, where a newer version put over a locked one could %s: %s", key, listErr, harm, storage.VersionsHint)
	}
	logOrDiscard(log).Debug("cannot list the versions of the object; using its current one", "key", key, "error", listErr)
	return nil
}

// listVersions starts listing key's data versions where the storage keeps
// them (a versioned bucket; with Object Lock, always), and returns how to
// wait for the answer: nil versions where it keeps none.
func listVersions(ctx context.Context, b storage.Backend, key string) func() ([]storage.ObjectVersion, error) {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return func() ([]storage.ObjectVersion, error) { return nil, nil }
	}
	type answer struct {
		vs  []storage.ObjectVersion
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		vs, err := v.Versions(ctx, key)
		ch <- answer{vs, err}
	}()
	return sync.OnceValues(func() ([]storage.ObjectVersion, error) {
		a := <-ch
		return a.vs, a.err
	})
}

// errVersionsRefused: the storage refuses to read old versions.
var errVersionsRefused = errors.New("versions refused")

// fetchShadowed serves a WAL key that holds more than one data version.
// walvault writes each WAL key once (a conditional create), so the oldest
// version is walvault's and every newer one someone else's, put over it:
// an attacker with the host's credentials cannot delete a locked
// original, but can put a newer version whose metadata passes the checks
// and so end a recovery early; or a person deleted the object without a
// version id and pushed another file in its place. The oldest version
// that passes the checks is served, with a warning; when none does, the
// current version's verdict is the error. A storage that refuses to read
// versions gives errVersionsRefused, after a warning.
func fetchShadowed(ctx context.Context, b storage.Backend, key string, file wal.FileName, compression repository.Compression, dest string, opts FetchOptions, versions []storage.ObjectVersion) (FetchResult, error) {
	log := logOrDiscard(opts.Log)
	oldestFirst := slices.Clone(versions)
	slices.Reverse(oldestFirst)
	res, id, verdict, err := firstPassing(ctx, b, key, oldestFirst, file, compression, dest, opts)
	var refused *versionsRefusedError
	switch {
	case errors.As(err, &refused):
		log.Warn("cannot read the versions of an object that holds more than one; serving its current version",
			"key", key, "versions", len(versions), "error", refused.err, "hint", storage.VersionsHint)
		return FetchResult{}, errVersionsRefused
	case err != nil:
		return FetchResult{}, fmt.Errorf("%s holds %d versions; %w", key, len(versions), err)
	case id != "":
		log.Warn("object overwritten: it holds versions walvault did not write (it writes each WAL file once); serving its oldest version that passes the checks",
			"key", key, "version", id, "versions", len(versions),
			"hint", "the versions of this key newer than the one used are not walvault's: the credentials that wrote them may be compromised; delete those versions by their version ids (once their lock, if any, expires)")
		return res, nil
	case verdict == nil:
		verdict = fmt.Errorf("%w: %s: none of its versions is left", ErrCorrupt, key)
	}
	return FetchResult{}, verdict
}

// versionsRefusedError: the storage permanently refuses to read an
// object's versions.
type versionsRefusedError struct{ err error }

func (e *versionsRefusedError) Error() string { return e.err.Error() }

// firstPassing writes to dest the first of key's versions, in the order
// given, that passes the checks, and says which (id); verdict is the last
// checked version's ErrCorrupt when none passes. err is a storage error
// reading a version (a *versionsRefusedError when the storage refuses
// versions for good), or another failure to write dest.
func firstPassing(ctx context.Context, b storage.Backend, key string, versions []storage.ObjectVersion, file wal.FileName, compression repository.Compression, dest string, opts FetchOptions) (res FetchResult, id string, verdict, err error) {
	v, _ := storage.AsVersioned(b)
	for _, ver := range versions {
		rc, info, err := v.GetVersion(ctx, key, ver.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // deleted since the listing
		case err != nil && storage.IsPermanent(err):
			return FetchResult{}, "", nil, &versionsRefusedError{fmt.Errorf("%w: %w", storage.ErrVersionsRefused, err)}
		case err != nil:
			return FetchResult{}, "", nil, fmt.Errorf("reading version %s from %s failed: %w", ver.ID, b.Location(), err)
		}
		info.Key = key
		res, err := writeObject(rc, info, compression, file, b.Location(), dest, opts, false)
		switch {
		case err == nil:
			return res, ver.ID, nil, nil
		case !errors.Is(err, ErrCorrupt):
			return FetchResult{}, "", nil, err
		}
		verdict = err
	}
	return FetchResult{}, "", verdict, nil
}

// logOrDiscard is log, or a logger that discards when it is nil.
func logOrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// writeObject checks the object rc reads (info and compression are open's)
// against its metadata while writing it to dest through writeVerified, and
// a segment's header against file, the name asked for. It closes rc.
func writeObject(rc io.ReadCloser, info storage.ObjectInfo, compression repository.Compression, file wal.FileName, location, dest string, opts FetchOptions, forPrefetch bool) (FetchResult, error) {
	defer rc.Close()
	res := FetchResult{Key: info.Key, StoredSize: info.Size, SHA256: info.Metadata[repository.MetaSHA256]}
	rawSize, ok := repository.WALMetadata(info.Metadata)
	if !ok {
		return FetchResult{}, fmt.Errorf("%w: %s in %s has no valid sha256/raw-size metadata, so it cannot be verified: it was not written by walvault, its metadata was lost (a copy by a tool that drops S3 user metadata), or a proxy between walvault and the storage strips the x-amz-meta-* headers (walvault verify, from another host, tells which)", ErrCorrupt, info.Key, location)
	}
	res.RawSize = rawSize
	if stored := info.Metadata[repository.MetaCompression]; stored != "" && stored != string(compression) {
		return FetchResult{}, fmt.Errorf("%w: %s in %s is marked as compressed with %q but its key says %q: the object was not written by walvault or was replaced", ErrCorrupt, info.Key, location, stored, compression)
	}
	// An encrypted object has no sha256: its keyed fingerprint is checked
	// on the sha256 writeVerified computes anyway (or, version 1, by the
	// body at its end), and that sha256 is the result's (the prefetcher's
	// record).
	body, fingerprint, err := repository.OpenBodyDigest(storage.TagStreamErrors(rc), compression, opts.Identities, info.Metadata)
	if errors.Is(err, crypt.ErrNoIdentity) && file.Kind == wal.KindTimelineHistory {
		if res, ok := historyFromMetadata(info, file, location, dest, err, opts.Log); ok {
			return res, nil
		}
	}
	if errors.Is(err, crypt.ErrTampered) {
		return FetchResult{}, fmt.Errorf("%w: %s in %s: %w; nothing was written to %s", ErrCorrupt, info.Key, location, err, dest)
	}
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s from %s: %w", info.Key, location, err)
	}
	defer body.Close() // before rc's: a decoder left waiting then sees its source end
	var h hash.Hash = sha256.New()
	var cp *checkpointHash
	if forPrefetch {
		cp = newCheckpointHash(res.RawSize)
		h = cp
	}
	sum, err := writeVerified(dest, body, res, location, h, fingerprint, segmentHeaderCheck(file))
	if err != nil {
		return FetchResult{}, err
	}
	res.SHA256 = sum
	if cp != nil {
		res.checkpoints = cp.result()
	}
	return res, nil
}

// historyFromMetadata writes the history file of file's timeline from its
// object's MetaHistory when the object is encrypted to keys the identity
// file lacks (noIdentity says which): a history file written before a key
// rotation stays encrypted to the old key, and every recovery that
// crosses its timeline, or looks for the newest timeline at promotion,
// reads it, so without this the old key could never be destroyed
// (explore25d F1). The metadata holds every entry's timeline and switch
// point, all PostgreSQL reads of the file; the reasons are not kept. ok
// is false when the metadata lacks the whole list.
func historyFromMetadata(info storage.ObjectInfo, file wal.FileName, location, dest string, noIdentity error, log *slog.Logger) (res FetchResult, ok bool) {
	entries, complete, err := repository.ParseHistoryMeta(info.Metadata)
	if err != nil || !complete || wal.CheckHistory(file.Timeline, entries) != nil {
		return FetchResult{}, false
	}
	for i := range entries {
		entries[i].Reason = "reason not kept: rebuilt by walvault from the object's metadata"
	}
	var text bytes.Buffer
	if wal.FormatHistory(&text, entries) != nil {
		return FetchResult{}, false
	}
	sum := sha256.Sum256(text.Bytes())
	res = FetchResult{Key: info.Key, StoredSize: info.Size, RawSize: int64(text.Len()), SHA256: hex.EncodeToString(sum[:])}
	if _, err := writeVerified(dest, &text, res, location, sha256.New(), nil, nil); err != nil {
		return FetchResult{}, false
	}
	logOrDiscard(log).Warn("history file served from its object's metadata: the identity file cannot decrypt it (encrypted before a key rotation?); its timelines and switch points are whole, the reasons are left out",
		"key", info.Key, "why", noIdentity)
	return res, true
}

// fetchOverwritten is fetch's answer when the current version of key
// failed its checks (corrupt). walvault never overwrites an object (every
// write is a conditional create), so in a versioned bucket a key with more
// than one data version was overwritten by someone else, and the genuine
// object is among the older versions (under Object Lock the attacker could
// add a version but not alter or remove the locked one). They are tried
// newest first, with the same checks, and the first that passes is served
// with a warning. When none does, or the storage keeps no versions,
// corrupt stands; a failure to look is a storage error.
func fetchOverwritten(ctx context.Context, b storage.Backend, key string, file wal.FileName, compression repository.Compression, dest string, opts FetchOptions, corrupt error) (FetchResult, error) {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return FetchResult{}, corrupt
	}
	log := logOrDiscard(opts.Log)
	// A storage that refuses to show versions (on AWS, credentials without
	// s3:ListBucketVersions or s3:GetObjectVersion) leaves corrupt, as
	// storage.ReadHidden leaves "missing".
	refused := func(err error) (FetchResult, error) {
		log.Warn("cannot look for an older, genuine version of a corrupt object",
			"key", key, "error", err, "hint", storage.VersionsHint)
		return FetchResult{}, corrupt
	}
	versions, err := v.Versions(ctx, key)
	switch {
	case err != nil && storage.IsPermanent(err):
		return refused(fmt.Errorf("%w: %w", storage.ErrVersionsRefused, err))
	case err != nil:
		return FetchResult{}, fmt.Errorf("%v; looking for an older version of it in %s failed: %w", corrupt, b.Location(), err)
	case len(versions) < 2:
		return FetchResult{}, corrupt
	}
	// The newest is the version that just failed (or, for an object hidden
	// by a delete marker, the one storage.ReadHidden served).
	res, id, _, err := firstPassing(ctx, b, key, versions[1:], file, compression, dest, opts)
	var denied *versionsRefusedError
	switch {
	case errors.As(err, &denied):
		return refused(denied.err)
	case err != nil:
		return FetchResult{}, fmt.Errorf("%v; %w", corrupt, err)
	case id == "":
		return FetchResult{}, corrupt
	}
	log.Warn("object overwritten (someone put a newer version over walvault's, which fails its checks): using its newest older version that passes them",
		"key", key, "version", id, "error", corrupt,
		"hint", "the versions of this key newer than the one used are not walvault's: the credentials that wrote them may be compromised; delete those versions by their version ids (once their lock, if any, expires) so the genuine one is current again")
	return res, nil
}

// open finds the object under the keys it may have. Only when every key is
// authoritatively absent is the file missing. servedVersions waits for the
// listing of the served key's versions, asked beside its Get.
func open(ctx context.Context, b storage.Backend, file wal.FileName, preferred repository.Compression, log *slog.Logger, forPrefetch bool, preferredVersions func() ([]storage.ObjectVersion, error)) (rc io.ReadCloser, info storage.ObjectInfo, c repository.Compression, servedVersions func() ([]storage.ObjectVersion, error), err error) {
	candidates := []repository.Compression{repository.None}
	if repository.Compressed(file.Kind) {
		// The preferred encoding first (one request in the usual case),
		// then every other one; an unknown preference is just skipped.
		candidates = nil
		for _, c := range repository.Compressions {
			if c == preferred {
				candidates = append([]repository.Compression{c}, candidates...)
			} else {
				candidates = append(candidates, c)
			}
		}
	}
	failed := func(err error) (io.ReadCloser, storage.ObjectInfo, repository.Compression, func() ([]storage.ObjectVersion, error), error) {
		return nil, storage.ObjectInfo{}, "", nil, fmt.Errorf("fetch %s from %s: %w", file, b.Location(), err)
	}
	// walvault stores a file under one codec's key: whether another
	// codec's key holds it too (put there by someone else, and served in
	// place of walvault's when the preferred codec is its) is asked beside
	// the first request.
	var other storage.ObjectInfo
	otherErr := storage.ErrNotFound
	var asked sync.WaitGroup
	if len(candidates) > 1 {
		asked.Go(func() { other, otherErr = repository.StatWALOtherCodecs(ctx, b, file, candidates[0]) })
	}
	firstKey := repository.WALKey(file, candidates[0])
	first := getObject(ctx, b, firstKey)
	asked.Wait()
	if otherErr != nil && !errors.Is(otherErr, storage.ErrNotFound) {
		// Not knowing whether a second copy is there is not knowing
		// which copy is walvault's. When the file's own request failed
		// too (the storage is down), that is the error to show: the side
		// question's would send the DBA after codecs and delete markers
		// (explore25b F4).
		closeGot([]gotObject{first})
		if first.err != nil && !errors.Is(first.err, storage.ErrNotFound) {
			return failed(first.err)
		}
		return failed(fmt.Errorf("asking whether another codec's key holds it too: %w", otherErr))
	}
	if otherErr != nil {
		other = storage.ObjectInfo{}
	}
	firstVersions := preferredVersions
	if firstKey != repository.WALKey(file, preferred) {
		firstVersions = nil // the preference names no codec of this kind of file
	}
	if first.err == nil {
		switch {
		case other.Key != "" && forPrefetch:
			// Left to wal-fetch, which says in PostgreSQL's log which
			// copy it serves.
			first.rc.Close()
			return failed(fmt.Errorf("%w: stored under two codecs' keys (%s and %s): left to wal-fetch", ErrCorrupt, firstKey, other.Key))
		case other.Key != "":
			return twoCopies(ctx, b, file, candidates[0], first, other, firstVersions, log)
		}
		first.info.Key = firstKey
		return first.rc, first.info, candidates[0], orListed(ctx, b, firstKey, firstVersions), nil
	}
	if !errors.Is(first.err, storage.ErrNotFound) {
		return failed(first.err)
	}
	// A miss. The HEADs sent beside the Get said which other codec's key
	// holds the file, if any: that one is read (its versions listed
	// beside it).
	if other.Key != "" {
		// The preferred codec's key holds data no request served (hidden
		// behind a delete marker, where the prefetcher does not look, or a
		// 404 that was wrong) while another codec's key holds the file:
		// two copies, one not walvault's.
		if vs, _ := preferredVersions(); firstVersions != nil && len(vs) > 0 {
			if forPrefetch {
				return failed(fmt.Errorf("%w: %s holds data beside %s: left to wal-fetch", ErrCorrupt, firstKey, other.Key))
			}
			return nil, storage.ObjectInfo{}, "", nil, &GapError{Segment: file, Later: firstKey, Location: b.Location(), Listed: len(vs)}
		}
		otherVersions := listVersions(ctx, b, other.Key)
		g := getObject(ctx, b, other.Key)
		switch {
		case g.err == nil:
			g.info.Key = other.Key
			return g.rc, g.info, keyCompression(other), otherVersions, nil
		case !errors.Is(g.err, storage.ErrNotFound):
			return failed(g.err)
		}
		// Gone since the HEAD: missing, as when no key answered.
	}
	// Before saying "missing", the identity must be there: a mistyped
	// prefix or an unmounted disk looks empty, and "missing" would end
	// recovery early.
	if _, err := b.Stat(ctx, repository.IdentityKey); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.ObjectInfo{}, "", nil, fmt.Errorf("%s holds no %s, so it is not a walvault repository (or nothing was ever archived to it): check the repository URL; refusing to tell PostgreSQL that %s is missing", b.Location(), repository.IdentityKey, file)
		}
		return failed(err)
	}
	return nil, storage.ObjectInfo{}, "", nil, fmt.Errorf("%s is not in the archive at %s (%w)", file, b.Location(), storage.ErrNotFound)
}

// orListed is versions, the listing of key's versions already asked for,
// or where none was, a listing started now.
func orListed(ctx context.Context, b storage.Backend, key string, versions func() ([]storage.ObjectVersion, error)) func() ([]storage.ObjectVersion, error) {
	if versions != nil {
		return versions
	}
	return listVersions(ctx, b, key)
}

// keyCompression is the codec a WAL object is stored with: its key's
// extension, or its metadata where the key has none.
func keyCompression(info storage.ObjectInfo) repository.Compression {
	c, _ := repository.ParseCompression(info.Metadata[repository.MetaCompression])
	if _, kc, ok := repository.ParseWALKey(info.Key); ok {
		c = kc
	}
	return c
}

// twoCopies serves a file stored under two codecs' keys: walvault stores
// each once (wal-push settles against a copy under any codec's key), so
// the copy written later was put there by someone else, and the one
// written first is served, with a warning. When each key was written is
// its oldest version's time, not its current one's: someone may have put
// a newer version over walvault's key too, to make the copy beside it
// look older (the S3 contract keeps a version's LastModified; a server
// that changes it when the version becomes noncurrent is not told apart).
func twoCopies(ctx context.Context, b storage.Backend, file wal.FileName, c repository.Compression, first gotObject, other storage.ObjectInfo, firstVersions func() ([]storage.ObjectVersion, error), log *slog.Logger) (io.ReadCloser, storage.ObjectInfo, repository.Compression, func() ([]storage.ObjectVersion, error), error) {
	firstKey := repository.WALKey(file, c)
	firstListing := orListed(ctx, b, firstKey, firstVersions)
	otherListing := listVersions(ctx, b, other.Key)
	firstWritten, err1 := writtenAt(first.info.ModTime, firstListing)
	otherWritten, err2 := writtenAt(other.ModTime, otherListing)
	if err := errors.Join(err1, err2); err != nil {
		first.rc.Close()
		return nil, storage.ObjectInfo{}, "", nil, fmt.Errorf("fetch %s from %s: stored under two codecs' keys (%s and %s), and which was written first cannot be told: %w", file, b.Location(), firstKey, other.Key, err)
	}
	log = logOrDiscard(log)
	hint := "walvault stores each WAL file under one key: the copy written later was put there by someone else (the credentials that wrote it may be compromised); delete it"
	if !otherWritten.Before(firstWritten) {
		log.Warn("WAL file stored under two codecs' keys: serving the one written first", "file", file.String(), "served", firstKey, "other", other.Key, "hint", hint)
		first.info.Key = firstKey
		return first.rc, first.info, c, firstListing, nil
	}
	first.rc.Close()
	g := getObject(ctx, b, other.Key)
	if g.err != nil {
		return nil, storage.ObjectInfo{}, "", nil, fmt.Errorf("fetch %s from %s: %w", file, b.Location(), g.err)
	}
	log.Warn("WAL file stored under two codecs' keys: serving the one written first", "file", file.String(), "served", other.Key, "other", firstKey, "hint", hint)
	g.info.Key = other.Key
	return g.rc, g.info, keyCompression(other), otherListing, nil
}

// writtenAt is when a key was first written: the time of its oldest
// version listed, or current, its current version's, where the storage
// keeps no versions.
func writtenAt(current time.Time, listing func() ([]storage.ObjectVersion, error)) (time.Time, error) {
	vs, err := listing()
	if err != nil {
		return time.Time{}, err
	}
	at := current
	for _, v := range vs {
		if !v.ModTime.IsZero() && v.ModTime.Before(at) {
			at = v.ModTime
		}
	}
	return at, nil
}

// gotObject is the answer of one Get.
type gotObject struct {
	rc   io.ReadCloser
	info storage.ObjectInfo
	err  error
}

func getObject(ctx context.Context, b storage.Backend, key string) gotObject {
	rc, info, err := b.Get(ctx, key)
	return gotObject{rc, info, err}
}

// closeGot closes the bodies of the Gets that found their object.
func closeGot(gs []gotObject) {
	for _, g := range gs {
		if g.err == nil {
			g.rc.Close()
		}
	}
}

// staleTempAge is how old a temporary file of a fetch must be to be taken
// for one a killed wal-fetch left (a fetch's own deadline is minutes).
const staleTempAge = time.Hour

// removeStaleTemps removes the temporary files of earlier fetches to the
// same destination (prefix) that a killed wal-fetch left in dir, pg_wal
// as a rule, where nothing else would ever remove them; best effort.
func removeStaleTemps(dir, prefix, own string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !strings.HasPrefix(e.Name(), prefix) || p == own || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			os.Remove(p)
		}
	}
}

// segmentHeaderCheck checks the first bytes of a segment (or partial)
// against the name asked for: an object copied, metadata and all, over
// another segment's key passes its sha256, but PostgreSQL takes a wrong
// page address for the end of WAL and would end recovery there. nil for
// files without a header (history, backup history).
func segmentHeaderCheck(file wal.FileName) func(first []byte) error {
	if file.Kind != wal.KindSegment && file.Kind != wal.KindPartial {
		return nil
	}
	return func(first []byte) error {
		if _, err := wal.ReadHeaderOf(bytes.NewReader(first), file.Segment); err != nil {
			return fmt.Errorf("its header does not belong to %s (another segment's object stored under its key?): %w", file, err)
		}
		return nil
	}
}

// writeVerified hashes with h, a fresh SHA-256, and checks the digest
// against want.SHA256, or, for an encrypted body (fingerprint not nil:
// repository.OpenBodyDigest's), with fingerprint, and the file's first
// bytes with checkHeader (nil: none). It returns the sha256 written.
func writeVerified(dest string, body io.Reader, want FetchResult, location string, h hash.Hash, fingerprint func(sha256 []byte) error, checkHeader func(first []byte) error) (sum string, err error) {
	dir := filepath.Dir(dest)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".walvault-*")
	if err != nil {
		return "", fmt.Errorf("create a temporary file beside %s: %w", dest, err)
	}
	removeStaleTemps(dir, "."+filepath.Base(dest)+".walvault-", tmp.Name())
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Hash on the other core while this one decompresses and writes. Read
	// one byte past the expected size, so a body that is too long is caught
	// without reading an unbounded stream.
	hasher := parhash.New(h, nil)
	n, err := io.Copy(io.MultiWriter(tmp, hasher), io.LimitReader(body, want.RawSize+1))
	digest, _ := hasher.Sum()
	if err != nil {
		return "", fmt.Errorf("%w: download or decompress %s from %s: %w", errorKind(err), want.Key, location, err)
	}
	if n != want.RawSize {
		return "", fmt.Errorf("%w: %s from %s decompressed to %d bytes, expected %d; nothing was written to %s", ErrCorrupt, want.Key, location, n, want.RawSize, dest)
	}
	sum = hex.EncodeToString(digest)
	if fingerprint != nil {
		if err := fingerprint(digest); err != nil {
			return "", fmt.Errorf("%w: %s from %s: %w; nothing was written to %s", ErrCorrupt, want.Key, location, err, dest)
		}
	} else if sum != want.SHA256 {
		return "", fmt.Errorf("%w: %s from %s has sha256 %s, expected %s; nothing was written to %s", ErrCorrupt, want.Key, location, sum, want.SHA256, dest)
	}
	if checkHeader != nil {
		first := make([]byte, wal.HeaderSize)
		if _, err := tmp.ReadAt(first, 0); err != nil {
			return "", fmt.Errorf("%w: %s from %s: read its header: %w; nothing was written to %s", ErrCorrupt, want.Key, location, err, dest)
		}
		if err := checkHeader(first); err != nil {
			return "", fmt.Errorf("%w: %s from %s: %w; nothing was written to %s", ErrCorrupt, want.Key, location, err, dest)
		}
	}
	// No fsync: PostgreSQL reads the restored file at once, and after a
	// crash recovery simply asks for it again; the rename keeps a reader
	// from ever seeing a partial file.
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return "", fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("rename into %s: %w", dest, err)
	}
	return sum, nil
}

// errorKind classifies a failure while streaming the body: an error from
// the storage stream or the local disk is a plain failure; one raised by the
// decoder itself means the stored bytes are malformed.
func errorKind(err error) error {
	var pathErr *os.PathError
	if storage.StreamError(err) != nil || errors.As(err, &pathErr) {
		return errIO
	}
	return ErrCorrupt
}

var errIO = errors.New("fetch failed")
