package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/units"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// DefaultConcurrency is how many objects --full re-reads at once.
const DefaultConcurrency = 4

// Options tunes Run.
type Options struct {
	// Full re-reads every WAL object and every backup part and checks its
	// size and sha256.
	Full bool
	// Concurrency is how many objects Full reads at once (default 4).
	// Memory stays bounded: each reader streams through a hash.
	Concurrency int
	// KeptBackups, when not nil, names the backups whose WAL must be
	// continuous (a retention policy's kept set): WAL is checked from the
	// oldest of their starts. nil means every backup with a manifest.
	KeptBackups map[string]bool
	// Identities decrypt an encrypted repository's objects for Full, and
	// history files whose metadata lacks their timeline switches (archived
	// by an older walvault) with or without it.
	Identities *crypt.Identities
	// UploadAge: incomplete uploads (S3 multipart uploads neither
	// completed nor aborted, file:// temp files) that started longer ago
	// are reported, as warnings: they hold no data a restore needs, only
	// space. cmd passes storage.StaleUploadAge (an hour, longer than any
	// upload in progress takes); 0 reports every one.
	UploadAge time.Duration
	Log       *slog.Logger
	// Progress shows Full's reading (nil: nothing).
	Progress *progress.Output
}

// Run verifies the repository behind b and returns the report. Problems
// the repository has are findings in the report, not errors; an error
// means verify could not finish (the storage failed, ctx ended).
//
// It reads the repository through one repository.Inventory (one listing,
// plus the objects hidden behind delete markers, the manifests and the
// timeline history files), then checks each backup folder against its
// manifest, reports the strays, sorts wal-receive's partials into
// superseded ones and those of segments not archived, and checks
// continuity. With Full, the backup parts and WAL objects are re-read as
// they are checked.
func Run(ctx context.Context, b storage.Backend, opts Options) (report *Report, err error) {
	if opts.Concurrency < 1 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &scan{b: b, opts: opts, r: newReport(b.Location(), opts.Full), hidden: map[string]storage.HiddenObject{}, backupProblems: map[string]int{}}

	// Hidden objects count: a hidden segment still restores (wal-fetch
	// finds it), so continuity counts it as present, and the hidden
	// finding tells what to do.
	// The listings of overwritten WAL keys and of incomplete uploads do
	// not depend on the inventory: each walks the whole prefix, so they
	// run beside its load.
	besideCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	overwritten := beside(func() overwrittenListing { return listOverwritten(besideCtx, b) })
	uploads := beside(func() uploadsListing { return listUploads(besideCtx, b, opts.UploadAge) })
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Hidden: true, WALObjects: opts.Full, Histories: true, Identities: opts.Identities})
	if err != nil {
		return nil, err
	}
	s.reportHidden(inv)
	s.reportOverwritten(ctx, overwritten())
	for _, keys := range inv.SecondCopies {
		s.r.problem(Finding{Kind: KindWALSecondCopy, Key: keys, Detail: fmt.Sprintf("one segment is stored under two codecs' keys, %s, and walvault stores each under one: someone else put one of them there (wal-fetch serves the older copy, with a warning); find out who, and delete the newer copy", keys)})
	}
	if err := s.reportUploads(ctx, uploads()); err != nil {
		return nil, err
	}

	if inv.Identity == nil || inv.WAL == nil {
		detail := fmt.Sprintf("%s has no %s: nothing was ever archived to it; check the repository URL, archive_command, and run SELECT pg_switch_wal()", b.Location(), repository.IdentityKey)
		_, hidden := s.hidden[repository.IdentityKey]
		switch {
		case inv.Identity != nil:
			detail = fmt.Sprintf("%s: %v", repository.IdentityKey, inv.IdentityErr)
		case hidden:
			detail = fmt.Sprintf("%s is hidden behind a delete marker, so nothing can be checked: run walvault repair", repository.IdentityKey)
		case inv.IdentityErr != nil:
			detail = fmt.Sprintf("%s cannot be used: %v", repository.IdentityKey, inv.IdentityErr)
		case inv.LostIdentity() != "":
			detail = inv.LostIdentity()
		}
		s.r.problem(Finding{Kind: KindNoIdentity, Key: repository.IdentityKey, Detail: detail})
		s.r.finish()
		return s.r, nil
	}
	id := *inv.Identity
	s.id, s.idx = id, inv.WAL
	s.r.SystemID, s.r.WALSegmentSize = id.SystemID, id.WALSegmentSize
	s.r.note("%s: cluster %s, created with %s compression, %s WAL segments", repository.IdentityKey, id.SystemID, id.Compression, units.Bytes(int64(id.WALSegmentSize)))
	if id.Overwritten != "" {
		s.r.problem(Finding{Kind: KindIdentityOverwritten, Key: repository.IdentityKey, Detail: id.Overwritten + "; " + repository.IdentityOverwrittenFix})
	}
	s.r.Summary.WALObjects = inv.WALFiles

	g, gctx := errgroup.WithContext(ctx)
	if opts.Full {
		shown := s.showFull(inv)
		defer func() { shown.Done(err == nil) }()
		s.work = make(chan fullItem, opts.Concurrency)
		for range opts.Concurrency {
			g.Go(func() error { return s.worker(gctx) })
		}
	}
	g.Go(func() error {
		defer func() {
			if s.work != nil {
				close(s.work)
			}
		}()
		for _, bk := range inv.Backups {
			if err := s.checkBackup(gctx, bk); err != nil {
				return err
			}
		}
		s.reportStrays(inv.Strays)
		s.collectPartials(inv.Partials)
		if s.work == nil {
			return nil
		}
		for _, o := range inv.WALObjects {
			if o.Hidden {
				continue // not listed: only its hidden finding
			}
			if err := s.queue(gctx, fullItem{key: o.Key, wal: &walObject{file: o.File, compression: o.Compression}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := s.checkPartials(ctx); err != nil {
		return nil, err
	}
	s.reportUndecryptable()
	if !opts.Full {
		if err := s.sampleWALMetadata(ctx, inv); err != nil {
			return nil, err
		}
	}
	s.checkContinuity()
	s.checkChains(inv)
	s.finishBackups()
	s.r.finish()
	return s.r, nil
}

// sampleWALMetadata reads the metadata of a few segments (a HEAD each),
// without --full: the one stored last, the largest, and where each DONE
// backup starts. A repository copied by a tool that drops S3 user
// metadata lists whole, yet wal-fetch refuses every segment that lost it,
// whose sha256 and size live in that metadata: through a local disk every
// object loses it, with aws-cli v1's sync those of 8 MiB and more, copied
// in parts (explore23d F1). In a locked repository each sampled segment
// younger than lock_days must hold its lock: a copy into another bucket
// keeps none (explore23d F7).
func (s *scan) sampleWALMetadata(ctx context.Context, inv *repository.Inventory) error {
	type sample struct {
		seg wal.Segment
		why string
	}
	var samples []sample
	seen := map[wal.Segment]bool{}
	add := func(seg wal.Segment, why string) {
		if !seen[seg] {
			seen[seg] = true
			samples = append(samples, sample{seg, why})
		}
	}
	if o := inv.LastStoredSegment; o != nil {
		add(o.File.Segment, "the segment stored last")
	}
	if o := inv.LargestSegment; o != nil {
		add(o.File.Segment, "the largest segment")
	}
	for _, bk := range inv.Backups {
		if bk.Manifest == nil || bk.Status() != repository.StatusDone {
			continue
		}
		if start, err := wal.ParseSegmentName(bk.Manifest.StartWAL); err == nil {
			add(start, "where backup "+bk.ID+" starts")
		}
	}
	infos := make([]storage.ObjectInfo, len(samples))
	errs := make([]error, len(samples))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Concurrency)
	for i, smp := range samples {
		g.Go(func() error {
			f := wal.FileName{Kind: wal.KindSegment, Timeline: smp.seg.Timeline, Segment: smp.seg}
			infos[i], errs[i] = repository.StatWAL(gctx, s.b, f, s.id.Compression)
			if errs[i] != nil && !errors.Is(errs[i], storage.ErrNotFound) {
				return fmt.Errorf("read the metadata of segment %s from %s: %w", smp.seg, s.b.Location(), errs[i])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	lock := s.id.Lock()
	now := time.Now()
	for i, smp := range samples {
		if errs[i] != nil {
			continue // deleted since the listing (retention), or a gap continuity reports
		}
		key := infos[i].Key
		if _, ok := repository.WALMetadata(infos[i].Metadata); !ok {
			s.problem(Finding{Kind: KindWALMetadata, Key: key,
				Detail: fmt.Sprintf("%s, %s, has no valid sha256/raw-size metadata, so wal-fetch refuses it: its metadata was lost (a copy by a tool that drops S3 user metadata: through a local disk every object loses it, aws-cli v1's s3 sync those of 8 MiB and more; copy server-side with metadata kept, see Repository layout) or it was not written by walvault; walvault verify --full checks every object", key, smp.why)})
			continue
		}
		young := infos[i].ModTime.AddDate(0, 0, lock.Days).After(now.Add(time.Hour))
		if lock.Enabled() && young && infos[i].RetainUntil.IsZero() {
			s.r.warning(Finding{Kind: KindNotLocked, Key: key,
				Detail: fmt.Sprintf("%s, %s, was stored %s ago, less than the repository's lock_days (%d), yet holds no Object Lock retention: it was copied here without its lock (a copy into another bucket keeps none), or these credentials may not read retention (s3:GetObjectRetention); whoever holds the host's credentials can delete it", key, smp.why, now.Sub(infos[i].ModTime).Round(time.Minute), lock.Days)})
		}
	}
	return nil
}

// walObject is a WAL object for --full to re-read.
type walObject struct {
	file        wal.FileName
	compression repository.Compression
}

// scan is one Run's state.
type scan struct {
	b    storage.Backend
	opts Options
	id   repository.Identity
	idx  *repository.WALIndex

	mu sync.Mutex // guards r and backupProblems once workers run
	r  *Report

	hidden map[string]storage.HiddenObject
	work   chan fullItem

	// wal-receive's partials, in key order, and what the report says of
	// them per timeline (checkPartials).
	partials   []partialObj
	partialTLs map[wal.TimelineID]*partialTimeline

	// Objects --full could not decrypt (no key at hand), and the first's
	// key and error.
	notDecrypted         int
	firstNotDecrypted    string
	firstNotDecryptedErr error

	// What continuity needs of each backup, and the backups with problems.
	backups        []backupWAL
	backupProblems map[string]int
}

// backupWAL is what continuity needs of one backup.
type backupWAL struct {
	report int // index in r.Backups
	start  wal.Segment
	status repository.BackupWAL
	kept   bool
	// walStored: its WAL was all in the repository when it was recorded
	// (repository.BackupManifest.WALStored).
	walStored bool
}

func (s *scan) problem(f Finding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.BackupID != "" {
		s.backupProblems[f.BackupID]++
	}
	s.r.problem(f)
}

func (s *scan) warning(f Finding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.warning(f)
}

func (s *scan) stray(key, why string) {
	s.mu.Lock()
	s.r.Summary.Strays++
	s.mu.Unlock()
	s.warning(Finding{Kind: KindStray, Key: key, Detail: fmt.Sprintf("%s is not part of walvault's layout (%s): it was not written by walvault; move it elsewhere", key, why)})
}

// reportStrays reports the objects outside walvault's layout, but those
// of another walvault repository nested inside this one (a walvault.json
// under a sub-prefix: another cluster pointed at a sub-prefix by mistake)
// in one warning each: moving them object by object, as a stray's advice
// says, would break that repository.
func (s *scan) reportStrays(strays []repository.Stray) {
	nested := map[string]int{}
	var prefixes []string
	for _, st := range strays {
		if dir, ok := strings.CutSuffix(st.Key, "/"+repository.IdentityKey); ok {
			nested[dir+"/"] = 0
			prefixes = append(prefixes, dir+"/")
		}
	}
	inNested := func(key string) (string, bool) {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				return p, true
			}
		}
		return "", false
	}
	folder := layoutFolderOf(s.b.Location())
	var outer int
	for _, st := range strays {
		if p, ok := inNested(st.Key); ok {
			nested[p]++
			continue
		}
		if folder != "" && inFolderShape(folder, st.Key) {
			outer++
			continue
		}
		s.stray(st.Key, st.Why)
	}
	if outer > 0 {
		s.mu.Lock()
		s.r.Summary.Strays += outer
		s.mu.Unlock()
		s.warning(Finding{Kind: KindStray, Key: "", Detail: fmt.Sprintf("this repository's location ends in %s, a folder of walvault's own layout, and %s here are shaped as that folder's are: this repository is most likely nested inside another walvault repository one level up, and they are that repository's WAL or backups. Do not move or delete them; give this cluster a prefix of its own beside the other, not inside it",
			folder, units.Plural(outer, "object"))})
	}
	for _, p := range prefixes {
		s.mu.Lock()
		s.r.Summary.Strays += nested[p]
		s.mu.Unlock()
		s.warning(Finding{Kind: KindStray, Key: p + repository.IdentityKey, Detail: fmt.Sprintf("another walvault repository is nested in this one at %s (%s, its own walvault.json): this repository's verify and delete leave it alone, but one repository inside another is easily deleted or mixed up with it; give each cluster a prefix of its own beside the other, not inside it", p, units.Plural(nested[p], "object"))})
	}
}

// layoutFolderOf is the last element of a repository location's path
// ("s3://b/db10/backups at https://..." gives "backups/") when it names a
// folder of walvault's layout, "" otherwise.
func layoutFolderOf(location string) string {
	location, _, _ = strings.Cut(location, " ")
	last := location[strings.LastIndex(location, "/")+1:] + "/"
	switch last {
	case repository.WALPrefix, repository.BackupsPrefix, repository.PartialPrefix, repository.DrillsPrefix, repository.RecipientsPrefix, repository.ProbePrefix:
		return last
	}
	return ""
}

// inFolderShape says whether key looks like an object of walvault's folder
// (under it, as a repository one level up holds it): a timeline's folder
// under wal/ and partial/, a backup id's under backups/ and drills/.
func inFolderShape(folder, key string) bool {
	first, _, nested := strings.Cut(key, "/")
	switch folder {
	case repository.WALPrefix:
		// wal/ holds timeline history files beside the timeline folders.
		if f, err := wal.Classify(strings.TrimSuffix(key, ".age")); err == nil && f.Kind == wal.KindTimelineHistory {
			return true
		}
		_, err := strconv.ParseUint(first, 16, 32)
		return nested && len(first) == 8 && err == nil
	case repository.PartialPrefix:
		_, err := strconv.ParseUint(first, 16, 32)
		return nested && len(first) == 8 && err == nil
	case repository.BackupsPrefix, repository.DrillsPrefix:
		return nested && repository.ValidateBackupID(first) == nil
	}
	return true
}

// reportHidden reports walvault's objects hidden behind delete markers,
// which the inventory asked a versioned storage for.
func (s *scan) reportHidden(inv *repository.Inventory) {
	if _, ok := storage.AsVersioned(s.b); !ok {
		return
	}
	for _, h := range inv.Hidden {
		s.hidden[h.Key] = h
		s.r.Summary.Hidden++
		detail := fmt.Sprintf("%s is hidden behind a delete marker", h.Key)
		if !h.HiddenAt.IsZero() {
			detail += " written " + h.HiddenAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		detail += "; its data survives (version " + h.VersionID
		if !h.RetainUntil.IsZero() {
			detail += ", locked until " + h.RetainUntil.UTC().Format("2006-01-02")
		}
		detail += "): someone deleted it without a version id; run walvault repair to remove the marker"
		s.r.problem(Finding{Kind: KindHidden, Key: h.Key, Detail: detail})
	}
	if inv.HiddenErr != nil {
		s.r.warning(Finding{Kind: KindHiddenUnknown, Detail: fmt.Sprintf("could not look for objects hidden behind delete markers: %v (credentials without s3:ListBucketVersions are refused so)", inv.HiddenErr)})
		return
	}
	if s.r.Summary.Hidden == 0 {
		s.r.note("no object is hidden behind a delete marker")
	}
}

// reportOverwritten reports the WAL keys that hold more than one data
// version in a versioned storage: walvault writes each WAL file once, so
// the newer versions were put over it by someone else (an attacker with
// the host's credentials can, over a locked original; or a person deleted
// the object without a version id and pushed another file). wal-fetch
// serves the oldest that passes its checks.
func (s *scan) reportOverwritten(ctx context.Context, l overwrittenListing) {
	if !l.asked {
		return
	}
	for _, o := range l.found {
		if id, name, ok := repository.SplitBackupKey(o.key); ok {
			detail := fmt.Sprintf("%s holds %d versions, and walvault writes each object of a backup once: the newer ones were put over it by someone else, and restore reads the current one, which fails the manifest's checks if it is not walvault's; find out who wrote them, delete them by version id once any lock on them expires, and until then restore another backup", o.key, o.versions)
			if name == repository.BackupManifestName {
				// restore judges the backup by the manifest's first
				// version; the other commands read the current one.
				detail = fmt.Sprintf("%s holds %d versions, and walvault writes each object of a backup once: the newer ones were put over it by someone else. restore judges this backup by the first version (walvault's), but backup-list, info, verify and retention read the current one, whose times or LSNs may be forged; find out who wrote them, and delete them by version id once any lock on them expires", o.key, o.versions)
			}
			s.problem(Finding{Kind: KindBackupOverwritten, Key: o.key, BackupID: id, Detail: detail})
			s.markBackup(id)
			continue
		}
		s.r.problem(Finding{Kind: KindWALOverwritten, Key: o.key, Detail: fmt.Sprintf("%s holds %d versions, and walvault writes each WAL file once: the newer ones were put over it by someone else (wal-fetch serves the oldest that passes its checks, with a warning); find out who wrote them, and delete them by version id once any lock on them expires", o.key, o.versions)})
	}
	switch {
	case l.err != nil && ctx.Err() == nil:
		s.r.warning(Finding{Kind: KindOverwrittenUnknown, Detail: fmt.Sprintf("could not look for WAL or backup objects written over: %v (credentials without s3:ListBucketVersions are refused so)", l.err)})
	case l.err == nil && len(l.found) == 0:
		s.r.note("no WAL or backup object was written over")
	}
}

// overwrittenListing is what listOverwritten found: asked is false where
// the storage keeps no versions; found holds what was listed before any
// error.
type overwrittenListing struct {
	asked bool
	found []overwrittenKey
	err   error
}

type overwrittenKey struct {
	key      string
	versions int
}

func listOverwritten(ctx context.Context, b storage.Backend) (l overwrittenListing) {
	ol, ok := storage.As[storage.OverwrittenLister](b)
	if !ok {
		return l
	}
	l.asked = true
	for _, prefix := range []string{repository.WALPrefix, repository.BackupsPrefix} {
		l.err = ol.ListOverwritten(ctx, prefix, func(key string, versions int) error {
			l.found = append(l.found, overwrittenKey{key, versions})
			return nil
		})
		if l.err != nil {
			break
		}
	}
	return l
}

// uploadsListing is storage.StaleUploads' answer.
type uploadsListing struct {
	stale []storage.Upload
	asked bool
	err   error
}

func listUploads(ctx context.Context, b storage.Backend, age time.Duration) (l uploadsListing) {
	l.stale, l.asked, l.err = storage.StaleUploads(ctx, b, "", age, time.Now())
	return l
}

// beside runs fn in a goroutine of its own and returns how to wait for
// its result.
func beside[T any](fn func() T) func() T {
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	return sync.OnceValue(func() T { return <-ch })
}

// reportUploads warns of each incomplete upload older than
// opts.UploadAge. A storage that cannot be asked is a warning too (the
// credentials may lack s3:ListBucketMultipartUploads); a cancelled
// context ends verify.
func (s *scan) reportUploads(ctx context.Context, l uploadsListing) error {
	stale, err := l.stale, l.err
	switch {
	case !l.asked:
		return nil
	case ctx.Err() != nil:
		return err
	case err != nil:
		s.r.warning(Finding{Kind: KindUploadsUnknown, Detail: fmt.Sprintf("could not look for incomplete uploads (the credentials need s3:ListBucketMultipartUploads): %v", err)})
		return nil
	}
	stale, others := repository.OwnedUploads(stale)
	if len(others) > 0 {
		s.r.note("%d incomplete uploads under the repository's prefix are of keys walvault does not write (first: %s): not walvault's, left alone", len(others), others[0].Key)
	}
	for _, u := range stale {
		s.r.Summary.IncompleteUploads++
		started := u.Started.UTC().Format("2006-01-02 15:04:05Z")
		detail := fmt.Sprintf("an incomplete multipart upload of %s (upload id %s), started %s, holds storage but no object: an interrupted upload; walvault delete --confirm aborts it", u.Key, u.ID, started)
		if u.ID == "" {
			detail = fmt.Sprintf("%s is a temp file left by an interrupted write (last written %s), not an object; walvault delete --confirm removes it", u.Key, started)
		}
		s.r.warning(Finding{Kind: KindIncompleteUpload, Key: u.Key, Detail: detail})
	}
	if len(stale) == 0 {
		s.r.note("no incomplete upload older than %s", s.opts.UploadAge)
	}
	return nil
}

// checkContinuity turns the index's verdict into findings and notes.
func (s *scan) checkContinuity() {
	var starts []wal.Segment
	for _, bw := range s.backups {
		if bw.kept {
			starts = append(starts, bw.start)
		}
	}
	c := s.idx.Continuity(starts)
	segSize := s.id.WALSegmentSize
	gaps := map[wal.TimelineID]int{}
	for _, g := range c.Gaps {
		gaps[g.Timeline]++
		f := Finding{
			Kind:         KindWALGap,
			Key:          repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: g.Timeline, Segment: g.First}, s.id.Compression),
			Timeline:     uint32(g.Timeline),
			MissingFirst: g.First.String(),
			MissingLast:  g.Last.String(),
			MissingCount: g.Count,
			Missing:      g.Names(segSize, repository.MaxListedNames),
		}
		what := fmt.Sprintf("timeline %d: WAL missing: %s", g.Timeline, g.Describe(segSize))
		if g.Partial {
			what += " (wal-receive holds a partial of some of them, but a partial fills no gap: recovery stops at its end)"
		}
		if g.Needed {
			f.Detail = what + ": a restore cannot replay past the gap; if the server still has them in pg_wal, push them with walvault wal-push, otherwise take a new backup now"
			s.r.problem(f)
		} else {
			f.Kind = KindUnneededGap
			f.Detail = what + " (no backup leads to this part of the timeline, so no restore needs them)"
			s.r.warning(f)
		}
	}
	for _, tli := range c.MissingHistory {
		key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None)
		s.r.problem(Finding{Kind: KindMissingHistory, Key: key, Timeline: uint32(tli),
			Detail: fmt.Sprintf("timeline %d has archived WAL but no history file %s: recovery cannot follow the switch to it; push pg_wal/%08X.history with walvault wal-push from the server that created the timeline", tli, key, uint32(tli))})
	}
	bad := make([]wal.TimelineID, 0, len(c.BadHistory))
	for tli := range c.BadHistory {
		bad = append(bad, tli)
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i] < bad[j] })
	for _, tli := range bad {
		key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None)
		s.r.problem(Finding{Kind: KindBadHistory, Key: key, Timeline: uint32(tli),
			Detail: fmt.Sprintf("%s is not a valid timeline history file: %v", key, c.BadHistory[tli])})
	}
	unread := make([]wal.TimelineID, 0, len(c.UnreadableHistory))
	for tli := range c.UnreadableHistory {
		unread = append(unread, tli)
	}
	sort.Slice(unread, func(i, j int) bool { return unread[i] < unread[j] })
	for _, tli := range unread {
		key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None)
		s.r.warning(Finding{Kind: KindHistoryUnread, Key: key, Timeline: uint32(tli),
			Detail: fmt.Sprintf("timeline %d: continuity across the switch to it could not be checked: %s", tli, repository.UnreadableHistoryWhy(tli, c.UnreadableHistory[tli]))})
	}
	for _, o := range s.idx.Overruns() {
		key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: o.Child}, repository.None)
		s.r.warning(Finding{Kind: KindTimelineOverrun, Key: key, Timeline: uint32(o.Parent),
			Detail: fmt.Sprintf("timeline %d went on past the point where timeline %d branched off it (%s): %s archived after the branch, the last %s. A restore to latest follows timeline %d and never reads them. After a failover that is the old primary's last WAL; if timeline %d is instead a restored copy that archived here while the original goes on, restores of the original need --target-timeline %d (walvault check on the original fails the same way)",
				o.Parent, o.Child, o.SwitchPoint, units.Plural(int(o.Beyond), "segment"), o.Newest, o.Child, o.Child, o.Parent)})
	}
	s.r.Summary.Timelines = len(c.Timelines)
	for _, t := range c.Timelines {
		tr := TimelineReport{Timeline: uint32(t.Timeline), Parent: uint32(t.Parent), Segments: t.Segments, Partials: t.Partials, Gaps: gaps[t.Timeline], NeededByBackup: t.Reachable}
		if t.Parent != 0 {
			tr.SwitchLSN = t.SwitchPoint.String()
		}
		if t.HasSegments {
			tr.Oldest, tr.Newest = t.Oldest.String(), t.Newest.String()
		}
		if t.Checked {
			tr.CheckedFrom, tr.CheckedTo, tr.CheckedToPartial = t.From.String(), t.To.String(), t.EndsInPartial
		}
		partialNote := s.partialReport(&tr)
		s.r.Timelines = append(s.r.Timelines, tr)
		branch := ""
		if t.Parent != 0 {
			branch = fmt.Sprintf(", branched from timeline %d at %s", t.Parent, t.SwitchPoint)
		}
		if t.EndsInPartial {
			branch += fmt.Sprintf(" (%s only as a partial of wal-receive: recovery ends at its end)", t.To)
		}
		switch {
		case gaps[t.Timeline] > 0:
		case t.Checked:
			s.r.note("timeline %d: WAL continuous from %s to %s%s", t.Timeline, t.From, t.To, branch)
		case !t.HasSegments:
			s.r.note("timeline %d: no segment archived yet%s", t.Timeline, branch)
		default:
			s.r.note("timeline %d: %d segments, %s to %s, none needed by a backup%s", t.Timeline, t.Segments, t.Oldest, t.Newest, branch)
		}
		if partialNote != "" {
			s.r.note("%s", partialNote)
		}
	}
	if len(starts) == 0 && len(c.Timelines) > 0 {
		s.r.note("no backup yet: WAL checked from each timeline's oldest archived segment")
	}
}

// finishBackups checks that each backup's own WAL range is archived and
// settles each backup's status.
func (s *scan) finishBackups() {
	for _, bw := range s.backups {
		br := &s.r.Backups[bw.report]
		ok, first, beyond := bw.status.Status == repository.StatusDone, bw.status.Missing, bw.status.Beyond
		switch {
		case ok:
		case beyond && bw.walStored:
			// Nothing later archived, but it was there: deleted, not
			// late (explore25a F6).
			s.problem(Finding{Kind: KindWALGap, Key: repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: first.Timeline, Segment: first}, s.id.Compression), BackupID: br.ID,
				Timeline: uint32(first.Timeline), MissingFirst: first.String(),
				Detail: fmt.Sprintf("backup %s cannot be restored: WAL segment %s, which it needs and which was in the repository when the backup was recorded, is gone: something deleted it (a walvault delete run elsewhere, a lifecycle rule on the bucket, a person): put it back from another copy if one exists (the server's pg_wal, a bucket version), or restore another backup; find out what deleted it", br.ID, first)})
		case beyond:
			br.Status = string(repository.StatusWaitingForWALs)
			s.r.warning(Finding{Kind: KindWaitingForWAL, Key: repository.BackupManifestKey(br.ID), BackupID: br.ID,
				Detail: fmt.Sprintf("backup %s: WAL from %s on is not archived yet, so the backup cannot be restored until it is (WAITING_FOR_WALS): check archive_command and pg_stat_archiver", br.ID, first)})
		case !bw.kept:
			s.problem(Finding{Kind: KindWALGap, Key: repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: first.Timeline, Segment: first}, s.id.Compression), BackupID: br.ID,
				Timeline: uint32(first.Timeline), MissingFirst: first.String(),
				Detail: fmt.Sprintf("backup %s cannot be restored: WAL segment %s between its start and its stop is missing", br.ID, first)})
		default:
			// Reported as a wal_gap by continuity; the backup shares it.
			s.markBackup(br.ID)
		}
	}
	for i := range s.r.Backups {
		br := &s.r.Backups[i]
		if s.backupProblems[br.ID] > 0 {
			br.Status = "PROBLEM"
		}
		if br.Status == "OK" {
			what := "present with the sizes its manifest records"
			if s.opts.Full {
				what = "read back with the sizes and sha256 its manifest records"
			}
			s.r.note("backup %s: manifest, backup_manifest and %s %s; WAL %s to %s archived", br.ID, units.Plural(br.Parts, "part"), what, br.StartWAL, br.StopWAL)
		}
	}
	s.r.Summary.Backups = len(s.r.Backups)
}

// checkChains reports every incremental backup whose chain cannot be
// restored: an ancestor is missing, INCOMPLETE or not DONE, or this scan
// found problems in it (a part --full read corrupt, say), which restore
// would meet when it applies the chain.
func (s *scan) checkChains(inv *repository.Inventory) {
	backups := inv.ChainInfo()
	for i := range backups {
		if bi := &backups[i]; bi.Status != repository.StatusDamaged && s.backupProblems[bi.ID] > 0 {
			bi.Status = repository.StatusDamaged
			bi.Damage = errors.New("this verify found it damaged (see its problems)")
		}
	}
	for _, bi := range backups {
		if bi.Manifest == nil || !bi.Manifest.IsIncremental() {
			continue
		}
		if _, err := repository.Chain(backups, bi.ID); err != nil {
			s.problem(Finding{Kind: KindBrokenChain, Key: repository.BackupManifestKey(bi.ID), BackupID: bi.ID,
				Detail: fmt.Sprintf("incremental backup %s cannot be restored: %v; take a full backup", bi.ID, err)})
		}
	}
	if newer, older, ok := repository.Misordered(backups); ok {
		s.r.warning(Finding{Kind: KindBackupsMisordered, Key: repository.BackupManifestKey(newer.ID), BackupID: newer.ID,
			Detail: repository.MisorderedWhy(newer, older) + ": policy deletes refuse to run until it is resolved; " + repository.MisorderedFix})
	}
}
