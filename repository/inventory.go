package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Inventory is one listing of a repository turned into a model: what
// retention, verify, the exporter, check, backup-list and restore read the
// repository through. LoadInventory builds it with one pass over the
// bucket (plus the hidden-object listing when asked; or, for callers that
// need only the backups, a pass over backups/ and their WAL ranges), then
// reads only the small objects the model needs: walvault.json, each
// backup's manifest and, when asked, the timeline history files.
type Inventory struct {
	Location string
	// Identity is walvault.json; nil when the repository has none
	// (nothing was ever pushed to it) or when IdentityErr says why it
	// cannot be used (it is not walvault's, or of a newer format).
	// IdentityErr with an Identity: its segment size is invalid, so there
	// is no WAL index.
	Identity    *Identity
	IdentityErr error

	// WAL indexes the archived WAL per timeline, with its gaps; nil
	// without a usable identity (the segment size is unknown).
	WAL *WALIndex
	// WALObjects is every walvault object under wal/, in key order, when
	// LoadOptions.WALObjects asks for them (retention deletes each). Without
	// an identity, segments are classified by key only.
	WALObjects []WALObject
	// WALFiles counts walvault's objects under wal/ (hidden ones included).
	WALFiles int64
	// segmentFiles counts the WAL files that are segments or partials
	// (WALFiles less history and backup history files), identity or not.
	segmentFiles int64
	// Histories are the timeline history files (wal/TTTTTTTT.history).
	Histories []WALObject
	// Segments counts the archived full segments, NewestSegment is the
	// newest (highest timeline, then position), visible ones only; both
	// need the identity.
	Segments      int64
	NewestSegment *WALObject
	// LastStoredSegment is the visible segment stored last (the listing's
	// modification time; ties go to the newest by name), whatever its
	// timeline: what shows that archiving goes on. NewestSegment would be
	// a higher timeline's that stopped, such as a restored copy's.
	LastStoredSegment *WALObject
	// LargestSegment is the visible segment that takes the most bytes
	// stored: the first a copy through multipart uploads changes (tools
	// that copy large objects in parts may drop their metadata).
	LargestSegment *WALObject
	// SecondCopies are the segments listed under two codecs' keys
	// (visible ones), each as "KEY and KEY": walvault stores a segment
	// under one key, so someone else put one of them there (wal-fetch
	// serves the older copy).
	SecondCopies []string
	// ArchiveEnd is where the newest archived segment or partial segment
	// (wal/, any timeline) ends, and ArchiveEndFile that file; zero when
	// there is none or the segment size is unknown.
	ArchiveEnd     wal.LSN
	ArchiveEndFile wal.FileName

	// Backups are the backup folders in id (time) order, complete or not.
	Backups []*Backup
	// Partials are wal-receive's partial segments (partial/), in key order.
	Partials []PartialObject
	// DrillRecords are the keys of the drill records, oldest first.
	DrillRecords []string

	// Hidden are walvault's objects hidden behind delete markers (under
	// backups/ and wal/, and walvault.json), in key order, when
	// LoadOptions.Hidden asked a versioned storage; HiddenErr says why the
	// storage could not be asked (Hidden then holds what it said before).
	Hidden    []storage.HiddenObject
	HiddenErr error

	// Strays are the objects outside walvault's layout, in key order, each
	// with why. Objects under check/ and drills/ are never strays.
	Strays []Stray
	// Usage tallies every listed object by its top folder ("wal/",
	// "backups/", ...; a top-level object by its own key).
	Usage map[string]Usage

	// walScoped: wal/ was not listed whole (BackupsOnly), only walListed,
	// the key prefixes under it listed so far (LoadRecoveryWAL lists more).
	walScoped bool
	walListed []string
	// historyAbsent: timelines whose history file was asked for and is
	// not in the repository (readRecoveryHistories asks once).
	historyAbsent map[wal.TimelineID]bool
	// ids decrypt history files (LoadOptions.Identities).
	ids *crypt.Identities
	// versionsAhead: the version listings of read-ahead manifests
	// (ManifestVersions takes each once).
	versionsAhead map[string]chan readAheadResult[[]storage.ObjectVersion]
}

// WALObject is one listed object under wal/.
type WALObject struct {
	storage.ObjectInfo
	File        wal.FileName
	Compression Compression
	// Hidden: known only from the hidden-object listing (LoadOptions.Hidden).
	Hidden bool
}

// PartialObject is one listed partial of wal-receive.
type PartialObject struct {
	Partial
	Size    int64
	ModTime time.Time
}

// Stray is an object walvault did not write.
type Stray struct {
	storage.ObjectInfo
	Why string
}

// Usage counts objects and their stored bytes.
type Usage struct {
	Objects int64
	Bytes   int64
}

// Backup is one backup folder.
type Backup struct {
	ID string
	// Objects are every visible object under backups/<id>/, in key order
	// (the manifest and the keep marks included).
	Objects []storage.ObjectInfo
	// Marks are the backup's keep marks, oldest first.
	Marks []Mark
	// HasManifest: walvault's manifest is listed (visible). Manifest is
	// it, read; ManifestErr says why it could not be (it is damaged, or
	// was deleted since the listing).
	HasManifest bool
	Manifest    *BackupManifest
	ManifestErr error
	// PartsErr, a *PartDamage, says which object the manifest records is
	// missing from the listing or listed with another size: restore
	// would fail on it (see checkParts).
	PartsErr error
	// WAL is the backup's status, decided by BackupStatusOf; WALErr says
	// why it could not be decided for a backup with a manifest (the
	// manifest's WAL names are invalid, or there is no identity).
	WAL    BackupWAL
	WALErr error
}

// Status is the backup's status (WAITING_FOR_WALS when it could not be
// decided, DAMAGED when its manifest's content is, or an object it
// records is missing or of another size).
func (b *Backup) Status() BackupStatus {
	if (b.HasManifest && IsManifestDamaged(b.ManifestErr)) || b.PartsErr != nil {
		return StatusDamaged
	}
	if b.HasManifest && b.WALErr != nil {
		return StatusWaitingForWALs
	}
	return b.WAL.Status
}

// BackupWAL is a backup's status as its WAL decides it.
type BackupWAL struct {
	Status BackupStatus
	// Missing is the first segment a WAITING_FOR_WALS backup lacks;
	// Beyond says it lies past the newest archived segment of its
	// timeline (not archived yet, rather than lost in a gap).
	Missing wal.Segment
	Beyond  bool
}

// BackupStatusOf is the one place a backup's status is decided, from its
// manifest (nil: none is written) and the archived WAL:
//
//   - INCOMPLETE without a manifest;
//   - DONE when every segment from start_wal to stop_wal is archived: on
//     the start timeline or, for a backup that ends on a later timeline
//     (taken on a standby promoted meanwhile, or after its upstream's
//     switch), on any timeline up to the stop timeline, the stop segment
//     on that one (CoveredAcross);
//   - WAITING_FOR_WALS otherwise, with the first segment missing.
func BackupStatusOf(m *BackupManifest, x *WALIndex) (BackupWAL, error) {
	if m == nil {
		return BackupWAL{Status: StatusIncomplete}, nil
	}
	start, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil {
		return BackupWAL{}, fmt.Errorf("backup %s: start_wal: %w", m.ID, err)
	}
	stop, err := wal.ParseSegmentName(m.StopWAL)
	if err != nil {
		return BackupWAL{}, fmt.Errorf("backup %s: stop_wal: %w", m.ID, err)
	}
	if x == nil {
		return BackupWAL{}, fmt.Errorf("backup %s: the repository has no usable %s, so its WAL segment size is unknown", m.ID, IdentityKey)
	}
	ok, first, beyond := x.CoveredAcross(start, stop)
	if ok {
		return BackupWAL{Status: StatusDone}, nil
	}
	return BackupWAL{Status: StatusWaitingForWALs, Missing: first, Beyond: beyond}, nil
}

// LoadOptions say what LoadInventory reads beyond the listing.
type LoadOptions struct {
	// Hidden asks a versioned storage for walvault's objects hidden behind
	// delete markers (Inventory.Hidden). Hidden WAL counts in the WAL index,
	// since wal-fetch reads through delete markers; hidden backup objects
	// are not among their backup's Objects (verify reports them until
	// repaired), though they count as present for its status, since
	// restore reads through the markers too.
	Hidden bool
	// WALObjects keeps every object under wal/ (Inventory.WALObjects).
	// Without it memory grows with the gaps in the WAL, not its size.
	WALObjects bool
	// Histories reads the timeline history files into the WAL index, which
	// continuity needs.
	Histories bool
	// Identities decrypt an encrypted history file whose metadata does not
	// hold its timeline switches (MetaHistory: archived by an older
	// walvault), here and in LoadRecoveryWAL. Without them such a
	// timeline's history is unreadable (Continuity.UnreadableHistory),
	// which is no fault of the repository.
	Identities *crypt.Identities
	// Cache, when set, keeps manifests and history files (written once,
	// never changed) between loads, for callers that load again and again.
	Cache *Cache
	// BackupsOnly lists backups/ and, under wal/, only the few keys each
	// backup's status depends on (its segments, and the one after), for
	// callers that need the backups and nothing else of the archive: a
	// restore or backup-list of a repository with a million segments lists
	// a page per backup instead of a thousand pages. Everything else the
	// inventory counts (WAL, partials, drills, strays, usage, ArchiveEnd)
	// then describes only what was listed, and a backup's WAL.Beyond knows
	// only the segment after its stop_wal. Ignored with WALObjects,
	// Histories or Hidden, which need all of wal/. Inventory.LoadRecoveryWAL
	// lists more of wal/ for a restore to an LSN.
	BackupsOnly bool
	// ReadAhead names backups whose manifests are read while backups/ is
	// listed, not after: a round trip less for a caller that knows the
	// backup it wants (restore --backup ID). Names the listing does not
	// show cost a request and are otherwise ignored.
	ReadAhead []string
}

// backupsOnly reports whether the load lists only what backups need.
func (o LoadOptions) backupsOnly() bool {
	return o.BackupsOnly && !o.WALObjects && !o.Histories && !o.Hidden
}

// Cache keeps what never changes in a repository between loads.
type Cache struct {
	manifests map[string]BackupManifest
	histories map[string]historyFile
}

// historyFile is what a timeline history file told: its entries, or err
// when they are invalid. An encrypted one read from its metadata may hold
// only the last entry (partial); one that could not be read at all has
// unreadable set to why.
type historyFile struct {
	entries    []wal.HistoryEntry
	err        error
	partial    bool
	unreadable error
}

// NewCache starts an empty cache.
func NewCache() *Cache {
	return &Cache{manifests: map[string]BackupManifest{}, histories: map[string]historyFile{}}
}

// maxHistorySize bounds a timeline history file read into memory.
const maxHistorySize = 1 << 20

// LoadInventory lists the repository behind b once and builds its model.
// Problems of the repository are in the model (IdentityErr, a backup's
// ManifestErr, Strays); an error means the storage failed.
func LoadInventory(ctx context.Context, b storage.Backend, opts LoadOptions) (*Inventory, error) {
	inv := &Inventory{Location: b.Location(), Usage: map[string]Usage{}, walScoped: opts.backupsOnly(), ids: opts.Identities}
	hidden := map[string]bool{}
	// The hidden-object listing does not depend on walvault.json: on a
	// distant endpoint reading both at once saves a round trip.
	hiddenDone := make(chan struct{})
	go func() {
		defer close(hiddenDone)
		if !opts.Hidden {
			return
		}
		if v, ok := storage.AsVersioned(b); ok {
			// A failure leaves what was found before it in Hidden.
			inv.HiddenErr = ListHidden(ctx, v, func(h storage.HiddenObject) error {
				inv.Hidden = append(inv.Hidden, h)
				hidden[h.Key] = true
				return nil
			})
		}
	}()
	// Listing backups/ alone needs no identity (the segment size is for
	// keys under wal/): then walvault.json is read during that listing.
	type identityRead struct {
		id  Identity
		err error
	}
	read := make(chan identityRead, 1)
	go func() {
		id, err := LoadIdentity(ctx, b)
		read <- identityRead{id, err}
	}()
	useIdentity := func() error {
		r := <-read
		var content *identityError
		switch err := r.err; {
		case err == nil:
			inv.Identity = &r.id
			if inv.WAL, err = NewWALIndex(r.id.WALSegmentSize); err != nil {
				inv.IdentityErr = err
			}
		case errors.Is(err, storage.ErrNotFound):
		case errors.As(err, &content):
			inv.IdentityErr = err
		default:
			return fmt.Errorf("read %s from %s: %w", IdentityKey, b.Location(), err)
		}
		return nil
	}
	<-hiddenDone
	if !opts.backupsOnly() {
		if err := useIdentity(); err != nil {
			return nil, err
		}
	}

	ahead := readManifestsAhead(ctx, b, opts.ReadAhead)
	inv.versionsAhead = listVersionsAhead(ctx, b, opts.ReadAhead)
	l := &lister{inv: inv, opts: opts, hidden: hidden, listed: map[string]bool{}}
	listed := ""
	if opts.backupsOnly() {
		listed = BackupsPrefix
	}
	if err := b.List(ctx, listed, l.visit); err != nil {
		return nil, fmt.Errorf("list %s: %w", b.Location(), err)
	}
	if opts.backupsOnly() {
		if err := useIdentity(); err != nil {
			return nil, err
		}
	}
	for _, h := range inv.Hidden {
		if l.listed[h.Key] {
			continue // visible again meanwhile
		}
		if f, c, ok := l.parseWAL(h.Key); ok {
			l.addWAL(WALObject{ObjectInfo: storage.ObjectInfo{Key: h.Key, Size: h.Size, RetainUntil: h.RetainUntil}, File: f, Compression: c, Hidden: true})
		}
	}
	if len(inv.Hidden) > 0 {
		byKey := func(a, b WALObject) bool { return a.Key < b.Key }
		sort.SliceStable(inv.WALObjects, func(i, j int) bool { return byKey(inv.WALObjects[i], inv.WALObjects[j]) })
		sort.SliceStable(inv.Histories, func(i, j int) bool { return byKey(inv.Histories[i], inv.Histories[j]) })
	}

	next := NewCache()
	if err := inv.loadBackups(ctx, b, opts.Cache, ahead, next); err != nil {
		return nil, err
	}
	if err := inv.checkParts(ctx, b); err != nil {
		return nil, err
	}
	if opts.backupsOnly() && inv.WAL != nil {
		if err := l.listBackupWAL(ctx, b); err != nil {
			return nil, err
		}
	}
	for _, bk := range inv.Backups {
		switch {
		case !bk.HasManifest:
			bk.WAL, _ = BackupStatusOf(nil, nil)
		case bk.Manifest != nil:
			bk.WAL, bk.WALErr = BackupStatusOf(bk.Manifest, inv.WAL)
		}
	}
	if opts.Histories && inv.WAL != nil {
		if err := inv.readHistories(ctx, b, hidden, opts.Cache, next); err != nil {
			return nil, err
		}
	}
	if opts.Cache != nil {
		*opts.Cache = *next
	}
	return inv, nil
}

// lister folds the listing into the inventory as it streams past.
type lister struct {
	// lastSegment and its key: the visible segment listed last.
	lastSegment    wal.Segment
	lastSegmentKey string

	inv    *Inventory
	opts   LoadOptions
	hidden map[string]bool // keys of Inventory.Hidden
	listed map[string]bool // the hidden keys listed visible as well
}

func (l *lister) visit(oi storage.ObjectInfo) error {
	inv := l.inv
	top, _, nested := strings.Cut(oi.Key, "/")
	if nested {
		top += "/"
	}
	u := inv.Usage[top]
	u.Objects++
	u.Bytes += oi.Size
	inv.Usage[top] = u
	if l.hidden[oi.Key] {
		l.listed[oi.Key] = true
	}
	oi.Metadata = nil // not needed; keeps a long listing small

	switch top {
	case WALPrefix:
		f, c, ok := l.parseWAL(oi.Key)
		if !ok {
			l.stray(oi, "not a WAL file name under wal/TTTTTTTT/ with the segment's timeline")
			return nil
		}
		l.addWAL(WALObject{ObjectInfo: oi, File: f, Compression: c})
	case PartialPrefix:
		l.addPartial(oi)
	case BackupsPrefix:
		l.addBackupObject(oi)
	case DrillsPrefix:
		if _, ok := ParseDrillRecordKey(oi.Key); ok {
			inv.DrillRecords = append(inv.DrillRecords, oi.Key)
		}
	case ProbePrefix:
	case RecipientsPrefix:
		if _, ok := ParseRecipientKey(oi.Key); !ok {
			l.stray(oi, "not a recipient record, recipients/<key id>.json")
		}
	default:
		if oi.Key != IdentityKey {
			l.stray(oi, "walvault writes only walvault.json, wal/, partial/, backups/, drills/, check/ and recipients/")
		}
	}
	return nil
}

func (l *lister) stray(oi storage.ObjectInfo, why string) {
	l.inv.Strays = append(l.inv.Strays, Stray{ObjectInfo: oi, Why: why})
}

// parseWAL classifies a key under wal/; with an identity, a segment must
// fit its segment size.
func (l *lister) parseWAL(key string) (wal.FileName, Compression, bool) {
	if l.inv.WAL == nil {
		return ParseWALKey(key)
	}
	return parseWALObject(key, l.inv.WAL.segSize)
}

// parseWALObject is ParseWALKey for a repository of segSize segments.
func parseWALObject(key string, segSize uint32) (wal.FileName, Compression, bool) {
	f, c, ok := ParseWALKey(key)
	if !ok || f.Kind != wal.KindTimelineHistory && f.Segment.Validate(segSize) != nil {
		return wal.FileName{}, "", false
	}
	return f, c, true
}

func (l *lister) addWAL(o WALObject) {
	inv := l.inv
	inv.WALFiles++
	if o.File.Kind == wal.KindSegment || o.File.Kind == wal.KindPartial {
		inv.segmentFiles++
	}
	if o.File.Kind == wal.KindTimelineHistory {
		inv.Histories = append(inv.Histories, o)
	}
	if l.opts.WALObjects {
		inv.WALObjects = append(inv.WALObjects, o)
	}
	x := inv.WAL
	if x == nil {
		return
	}
	switch o.File.Kind {
	case wal.KindSegment:
		if !o.Hidden {
			// The listing comes in key order: another codec's key of
			// the same segment is the segment key listed before.
			if l.lastSegmentKey != "" && l.lastSegment == o.File.Segment {
				inv.SecondCopies = append(inv.SecondCopies, l.lastSegmentKey+" and "+o.Key)
			}
			l.lastSegment, l.lastSegmentKey = o.File.Segment, o.Key
		}
		x.AddSegment(o.File.Segment)
		if o.Hidden {
			break
		}
		inv.Segments++
		if n := inv.NewestSegment; n == nil || newerSegment(o.File.Segment, n.File.Segment) {
			o := o
			inv.NewestSegment = &o
		}
		if l := inv.LastStoredSegment; l == nil || o.ModTime.After(l.ModTime) || (o.ModTime.Equal(l.ModTime) && newerSegment(o.File.Segment, l.File.Segment)) {
			o := o
			inv.LastStoredSegment = &o
		}
		if l := inv.LargestSegment; l == nil || o.Size > l.Size {
			o := o
			inv.LargestSegment = &o
		}
	case wal.KindPartial:
		x.AddPartial(o.File.Segment)
	default:
		return
	}
	if o.Hidden {
		return
	}
	start, _ := o.File.Segment.StartLSN(x.segSize) // validated by parseWAL
	if end := start + wal.LSN(x.segSize); end > inv.ArchiveEnd {
		inv.ArchiveEnd, inv.ArchiveEndFile = end, o.File
	}
}

// newerSegment orders segments by timeline, then position.
func newerSegment(a, b wal.Segment) bool {
	if a.Timeline != b.Timeline {
		return a.Timeline > b.Timeline
	}
	if a.Log != b.Log {
		return a.Log > b.Log
	}
	return a.Seg > b.Seg
}

func (l *lister) addPartial(oi storage.ObjectInfo) {
	p, ok := ParsePartialKey(oi.Key)
	if !ok {
		l.stray(oi, "not a partial of wal-receive: partial/TTTTTTTT/<segment>/<end LSN as 16 hex digits><compression>")
		return
	}
	if x := l.inv.WAL; x != nil && p.Segment.Validate(x.segSize) != nil {
		l.stray(oi, fmt.Sprintf("segment %s cannot exist with %s segments", p.Segment, units.Bytes(int64(x.segSize))))
		return
	}
	l.inv.Partials = append(l.inv.Partials, PartialObject{Partial: p, Size: oi.Size, ModTime: oi.ModTime})
}

func (l *lister) addBackupObject(oi storage.ObjectInfo) {
	inv := l.inv
	id, name, ok := SplitBackupKey(oi.Key)
	if !ok {
		l.stray(oi, "backups/ holds only backups/<id>/<object> and backups/<id>/marks/, with ids like 20261125T103000Z")
		return
	}
	n := len(inv.Backups)
	if n == 0 || inv.Backups[n-1].ID != id {
		inv.Backups = append(inv.Backups, &Backup{ID: id})
		n++
	}
	bk := inv.Backups[n-1]
	bk.Objects = append(bk.Objects, oi)
	switch m, isMark := ParseMarkKey(oi.Key); {
	case isMark:
		bk.Marks = append(bk.Marks, m)
	case name == BackupManifestName:
		bk.HasManifest = true
	}
}

// smallReads is how many small objects (manifests, history files) and
// listings an inventory reads at once: each costs a round trip, and a
// repository of hourly incrementals over two weeks has over 300 manifests
// (restore, backup-list, info and check read them all). At 8 at once, 100
// manifests took 0.74 s over a 40 ms round trip; at 32, 0.34 s.
const smallReads = 32

// readAheadResult is one read started ahead: its value, or why not.
type readAheadResult[T any] struct {
	v   T
	err error
}

// readAhead starts read for each distinct valid backup id of ids; each
// outcome arrives on its channel.
func readAhead[T any](ids []string, read func(id string) (T, error)) map[string]chan readAheadResult[T] {
	ahead := map[string]chan readAheadResult[T]{}
	for _, id := range ids {
		if _, dup := ahead[id]; dup || ValidateBackupID(id) != nil {
			continue
		}
		out := make(chan readAheadResult[T], 1)
		ahead[id] = out
		go func() {
			v, err := read(id)
			out <- readAheadResult[T]{v, err}
		}()
	}
	return ahead
}

// readManifestsAhead starts reading the manifests of ids (LoadOptions.
// ReadAhead).
func readManifestsAhead(ctx context.Context, b storage.Backend, ids []string) map[string]chan readAheadResult[BackupManifest] {
	return readAhead(ids, func(id string) (BackupManifest, error) { return LoadBackupManifest(ctx, b, id) })
}

// listVersionsAhead starts listing the versions of ids' manifests where
// the storage keeps versions: restore judges a backup by its manifest's
// first version (a newer one is not walvault's), and a caller that names
// its backup saves that round trip in series.
func listVersionsAhead(ctx context.Context, b storage.Backend, ids []string) map[string]chan readAheadResult[[]storage.ObjectVersion] {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return nil
	}
	return readAhead(ids, func(id string) ([]storage.ObjectVersion, error) { return v.Versions(ctx, BackupManifestKey(id)) })
}

// ManifestVersions lists the data versions of backup id's manifest,
// newest first (storage.Versioned.Versions on v, which must be the
// storage the inventory was loaded from), taking the listing the load
// started when it read id ahead.
func (inv *Inventory) ManifestVersions(ctx context.Context, v storage.Versioned, id string) ([]storage.ObjectVersion, error) {
	if read, ok := inv.versionsAhead[id]; ok {
		delete(inv.versionsAhead, id) // one answer: a later call asks again
		select {
		case r := <-read:
			return r.v, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return v.Versions(ctx, BackupManifestKey(id))
}

// loadBackups reads the manifest of every backup folder that has one, a
// few at a time, from old when it holds it, or as read ahead, and records
// each in next.
func (inv *Inventory) loadBackups(ctx context.Context, b storage.Backend, old *Cache, ahead map[string]chan readAheadResult[BackupManifest], next *Cache) error {
	manifests := make([]BackupManifest, len(inv.Backups))
	errs := make([]error, len(inv.Backups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(smallReads)
	for i, bk := range inv.Backups {
		if !bk.HasManifest {
			continue
		}
		if m, ok := old.manifest(bk.ID); ok {
			manifests[i] = m
			continue
		}
		g.Go(func() error {
			if read, ok := ahead[bk.ID]; ok {
				r := <-read
				manifests[i], errs[i] = r.v, r.err
			} else {
				manifests[i], errs[i] = LoadBackupManifest(gctx, b, bk.ID)
			}
			var content *manifestError
			if errs[i] != nil && !errors.Is(errs[i], storage.ErrNotFound) && !errors.As(errs[i], &content) {
				return fmt.Errorf("read manifest of backup %s from %s: %w", bk.ID, b.Location(), errs[i])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, bk := range inv.Backups {
		switch {
		case !bk.HasManifest:
		case errs[i] != nil: // missing since the listing, or not a manifest
			bk.ManifestErr = errs[i]
		default:
			m := manifests[i]
			next.manifests[bk.ID] = m
			bk.Manifest = &m
		}
	}
	return nil
}

// listBackupWAL lists, a few prefixes at a time, the keys under wal/ that
// the status of each backup read depends on (LoadOptions.BackupsOnly), and
// adds them to the inventory in key order.
func (l *lister) listBackupWAL(ctx context.Context, b storage.Backend) error {
	var ms []*BackupManifest
	for _, bk := range l.inv.Backups {
		if bk.Manifest != nil {
			ms = append(ms, bk.Manifest)
		}
	}
	return l.listPrefixes(ctx, b, backupWALPrefixes(ms, l.inv.WAL))
}

// listPrefixes lists the key prefixes under wal/, a few at a time, and
// adds what they hold to the inventory (addListed).
func (l *lister) listPrefixes(ctx context.Context, b storage.Backend, prefixes []string) error {
	found, err := listEach(ctx, b, prefixes)
	if err != nil {
		return err
	}
	return l.addListed(prefixes, found)
}

// listEach lists each prefix, a few at a time; found[i] is what
// prefixes[i] holds, in key order.
func listEach(ctx context.Context, b storage.Backend, prefixes []string) (found [][]storage.ObjectInfo, err error) {
	found = make([][]storage.ObjectInfo, len(prefixes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(smallReads)
	for i, p := range prefixes {
		g.Go(func() error {
			err := b.List(gctx, p, func(oi storage.ObjectInfo) error {
				found[i] = append(found[i], oi)
				return nil
			})
			if err != nil {
				return fmt.Errorf("list %s in %s: %w", p, b.Location(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return found, nil
}

// addListed adds to the inventory, in key order, what listEach found
// under prefixes (sorted, none inside another), but for keys under a
// prefix listed before (Inventory.walListed), which it then extends.
func (l *lister) addListed(prefixes []string, found [][]storage.ObjectInfo) error {
	for _, objects := range found {
		for _, oi := range objects {
			if l.inv.walPrefixListed(oi.Key) {
				continue
			}
			if err := l.visit(oi); err != nil {
				return err
			}
		}
	}
	l.inv.walListed = append(l.inv.walListed, prefixes...)
	return nil
}

// backupWALPrefixes are the key prefixes under wal/ that hold every
// segment BackupStatusOf looks at for ms: from start_wal to the segment
// after stop_wal on the start timeline (the one after tells a segment not
// yet archived from one lost in a gap), and the same range on each later
// timeline up to the stop timeline's. A range within one log is listed by the longest
// prefix its names share, so it lists little more than the range; one
// that crosses a log boundary, whose names may share only a prefix that
// holds 256 logs or more (0F/FF and 10/00), by aligned blocks no larger
// than it or a log (rangePrefixes). Sorted, none inside another, so their
// listings are disjoint and come in key order.
func backupWALPrefixes(ms []*BackupManifest, x *WALIndex) []string {
	var prefixes []string
	span := func(from, to wal.Segment) {
		if from.Log != to.Log {
			prefixes = append(prefixes, x.rangePrefixes(from.Timeline, x.segNo(from), x.segNo(to))...)
			return
		}
		a, z := from.String(), to.String()
		n := 0
		for n < len(a) && n < len(z) && a[n] == z[n] {
			n++
		}
		prefixes = append(prefixes, TimelinePrefix(from.Timeline)+a[:n])
	}
	for _, m := range ms {
		start, err := wal.ParseSegmentName(m.StartWAL)
		if err != nil {
			continue // BackupStatusOf reports it
		}
		stop, err := wal.ParseSegmentName(m.StopWAL)
		if err != nil {
			continue
		}
		after := x.segNo(stop) + 1
		span(start, x.segment(start.Timeline, max(after, x.segNo(start))))
		// A backup across timelines may find each segment on any of them
		// (CoveredAcross).
		for tli := start.Timeline + 1; tli <= stop.Timeline; tli++ {
			span(x.segment(tli, min(x.segNo(start), x.segNo(stop))), x.segment(tli, after))
		}
	}
	sort.Strings(prefixes)
	var out []string
	for _, p := range prefixes {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue // listed with the shorter one
		}
		out = append(out, p)
	}
	return out
}

// manifest is the cached manifest of backup id; c may be nil.
func (c *Cache) manifest(id string) (BackupManifest, bool) {
	if c == nil {
		return BackupManifest{}, false
	}
	m, ok := c.manifests[id]
	return m, ok
}

// readHistories reads every timeline history file into the WAL index, a
// few at a time.
func (inv *Inventory) readHistories(ctx context.Context, b storage.Backend, hidden map[string]bool, old, next *Cache) error {
	files := make([]historyFile, len(inv.Histories))
	found := make([]bool, len(inv.Histories))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(smallReads)
	for i, o := range inv.Histories {
		if old != nil {
			if files[i], found[i] = old.histories[o.Key]; found[i] {
				continue
			}
		}
		g.Go(func() error {
			f, _, err := readHistory(gctx, b, o.Key, hidden[o.Key], inv.ids)
			if errors.Is(err, storage.ErrNotFound) {
				return nil // deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("read %s from %s: %w", o.Key, b.Location(), err)
			}
			files[i], found[i] = f, true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, o := range inv.Histories {
		if !found[i] {
			continue
		}
		next.histories[o.Key] = files[i]
		inv.WAL.setHistoryFile(o.File.Timeline, files[i])
	}
	return nil
}

// readHistory reads the timeline history file under key (or its hidden
// version). A clear one is parsed from its content, which is what
// PostgreSQL reads. An encrypted one is read from its metadata
// (MetaHistory), which needs no identity; when that lacks entries (an
// object of an older walvault, or one with room for the last entry only)
// and ids are given, from its decrypted content. History files are never
// compressed (WALKey gives them no codec suffix, wal-push stores them as
// they are), so the plaintext is the file. An error means the storage
// failed; what is wrong with the file is in the result.
func readHistory(ctx context.Context, b storage.Backend, key string, hidden bool, ids *crypt.Identities) (f historyFile, size int64, err error) {
	// Read first, parse second: a broken download is an error of this
	// load, not a bad history file.
	data, meta, err := readSmall(ctx, b, key, hidden)
	if err != nil {
		return historyFile{}, 0, err
	}
	return decodeHistory(data, meta, ids), int64(len(data)), nil
}

// decodeHistory is readHistory's verdict on a history file read.
func decodeHistory(data []byte, meta map[string]string, ids *crypt.Identities) historyFile {
	if !EncryptedObject(meta) {
		entries, err := wal.ParseHistory(bytes.NewReader(data))
		return historyFile{entries: entries, err: err}
	}
	tail, complete, merr := ParseHistoryMeta(meta)
	if merr == nil && complete {
		return historyFile{entries: tail}
	}
	var why error
	if ids != nil {
		plain, err := OpenBody(bytes.NewReader(data), None, ids, meta)
		var content []byte
		if err == nil {
			content, err = io.ReadAll(plain) // verifies the fingerprint at EOF
		}
		switch {
		case err == nil:
			entries, err := wal.ParseHistory(bytes.NewReader(content))
			return historyFile{entries: entries, err: err}
		case !errors.Is(err, crypt.ErrNoIdentity):
			// Tampered, or not an age file: as unusable as an invalid one.
			return historyFile{err: fmt.Errorf("cannot be decrypted: %w", err)}
		}
		why = err // another key's: the metadata may still do
	} else {
		_, why = decrypt(bytes.NewReader(data), nil, meta) // names the keys
	}
	switch {
	case merr == nil:
		return historyFile{entries: tail, partial: true}
	case !errors.Is(merr, errNoHistoryMeta):
		return historyFile{err: merr}
	}
	return historyFile{unreadable: why}
}

// readSmall reads a small object, or its hidden version, and its metadata.
func readSmall(ctx context.Context, b storage.Backend, key string, hidden bool) ([]byte, map[string]string, error) {
	var rc io.ReadCloser
	var info storage.ObjectInfo
	var err error
	if v, ok := storage.AsVersioned(b); ok && hidden {
		rc, info, err = v.GetHidden(ctx, key)
	} else {
		rc, info, err = b.Get(ctx, key)
	}
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxHistorySize))
	return data, info.Metadata, err
}

// Backup returns the backup folder id, or nil.
func (inv *Inventory) Backup(id string) *Backup {
	i := sort.Search(len(inv.Backups), func(i int) bool { return inv.Backups[i].ID >= id })
	if i < len(inv.Backups) && inv.Backups[i].ID == id {
		return inv.Backups[i]
	}
	return nil
}

// ChainInfo lists the backups as Chain needs them, without the identity
// Catalog wants: each with its status as Backup.Status decides it and its
// manifest when that was read whole (a manifest that could not be read
// makes the backup INCOMPLETE here, one whose content is unusable
// DAMAGED).
func (inv *Inventory) ChainInfo() []BackupInfo {
	out := make([]BackupInfo, 0, len(inv.Backups))
	for _, bk := range inv.Backups {
		info := BackupInfo{ID: bk.ID, Status: bk.Status(), Damage: bk.PartsErr}
		switch {
		case bk.HasManifest && bk.ManifestErr == nil:
			info.Manifest = bk.Manifest
		case info.Status == StatusDamaged:
			info.Damage = bk.ManifestErr
		default:
			info.Status = StatusIncomplete
		}
		out = append(out, info)
	}
	return out
}

// Catalog is every backup folder in id (time) order with its status, as
// backup-list shows them. A backup whose manifest's content is damaged is
// DAMAGED, with why: one overwritten manifest must not make every other
// backup unusable. So is one whose manifest records an object the listing
// shows missing or of another size (Backup.PartsErr), with its manifest:
// that still says what the backup needs. It fails when a manifest could
// not be read (deleted since the listing), or when backups exist without
// a usable identity.
func (inv *Inventory) Catalog() ([]BackupInfo, error) {
	out := make([]BackupInfo, 0, len(inv.Backups))
	for _, bk := range inv.Backups {
		info := BackupInfo{ID: bk.ID, Status: StatusIncomplete}
		if bk.HasManifest {
			if IsManifestDamaged(bk.ManifestErr) {
				info.Status, info.Damage = StatusDamaged, bk.ManifestErr
				out = append(out, info)
				continue
			}
			if bk.ManifestErr != nil {
				return nil, bk.ManifestErr
			}
			if inv.Identity == nil || inv.WAL == nil {
				err := inv.IdentityErr
				if err == nil {
					err = fmt.Errorf("%s in %s: %w", IdentityKey, inv.Location, storage.ErrNotFound)
					if lost := inv.LostIdentity(); lost != "" {
						err = fmt.Errorf("%s: %w", lost, storage.ErrNotFound)
					}
				}
				return nil, fmt.Errorf("read repository identity: %w", err)
			}
			if bk.WALErr != nil {
				return nil, bk.WALErr
			}
			info.Manifest, info.Status = bk.Manifest, bk.WAL.Status
			switch {
			case bk.PartsErr != nil:
				info.Status, info.Damage = StatusDamaged, bk.PartsErr
			case bk.WAL.Status == StatusWaitingForWALs:
				info.MissingWAL = bk.WAL.Missing.String()
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// identityError marks what is wrong with walvault.json's content, as
// opposed to a failure to read it.
type identityError struct{ err error }

func (e *identityError) Error() string { return e.err.Error() }
func (e *identityError) Unwrap() error { return e.err }

// manifestError marks what is wrong with a backup manifest's content.
type manifestError struct{ err error }

func (e *manifestError) Error() string { return e.err.Error() }
func (e *manifestError) Unwrap() error { return e.err }

// IsManifestDamaged reports whether err (a Backup's ManifestErr) says the
// manifest's content is unusable, rather than that it could not be read.
func IsManifestDamaged(err error) bool {
	var content *manifestError
	return errors.As(err, &content)
}

// WALContinuity checks continuity from starts (the start segments of the
// backups that matter; nil: from each timeline's oldest archived segment),
// following the timeline history files (load with Histories). segSize is
// the segment size the caller expects, from a backup's manifest: a
// repository that no longer records it is an error, not a verdict.
func (inv *Inventory) WALContinuity(segSize uint32, starts []wal.Segment) (Continuity, error) {
	if inv.Identity == nil || inv.WAL == nil || inv.Identity.WALSegmentSize != segSize {
		return Continuity{}, fmt.Errorf("%s in %s no longer records %d-byte WAL segments", IdentityKey, inv.Location, segSize)
	}
	return inv.WAL.Continuity(starts), nil
}
