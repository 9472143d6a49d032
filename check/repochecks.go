package check

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/storage/open"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// identityFacts is walvault.json as the identity check read it.
type identityFacts struct {
	id repository.Identity
}

// backupFacts is what the backup checks learnt.
type backupFacts struct {
	// err says why the backups could not be listed; the rest is then
	// unset, and no later check may take that for "no backup".
	err error
	// inv is the repository as the backup checks listed it, with its
	// timeline history files: continuity reads the same listing.
	inv    *repository.Inventory
	done   []repository.BackupInfo // DONE backups, oldest first
	newest *repository.BackupInfo  // newest DONE
}

// repositoryDown is the verdict of checks that need the repository once it
// did not answer: each asking again would cost another --timeout.
func (c *checker) repositoryDown(names ...string) ([]Result, bool) {
	if c.repoDown == "" {
		return nil, false
	}
	rs := make([]Result, len(names))
	for i, n := range names {
		rs[i] = failed(n, "not checked: %s %s (see %q above)", c.b.Location(), c.repoDown, NameRepository)
	}
	return rs, true
}

// checkRepository proves the repository reachable and writable, and its
// storage honest, with repository.ProveCapabilities: a new, unique probe
// under check/ created with a conditional create (so it can never replace
// anything), read back, a second conditional create of it refused, and
// deleted. With a lock policy the probe is written locked for
// repository.ProbeRetention and must come back with its retention and have
// its delete refused; it stays until then. Without one, if the bucket's
// default retention locks the probe anyway, the delete is refused and the
// probe stays until its retention ends: that is reported, not failed
// (verify ignores check/).
func (c *checker) checkRepository(ctx context.Context) []Result {
	rs := c.checkRepositoryReach(ctx)
	if inside := c.repositoryInDataDir(); inside != "" && len(rs) > 0 {
		rs[0] = failed(NameRepository, "%s; but %s", rs[0].Detail, inside)
	}
	return rs
}

// repositoryInDataDir says how a file:// repository lies inside the
// server's data directory ("" when it does not, or that is unknown): each
// base backup then holds the whole repository, every earlier backup
// included, and the repository is lost with the data directory it should
// outlive (explore24c F3).
func (c *checker) repositoryInDataDir() string {
	loc, err := open.Parse(c.opts.Repo)
	dd := c.srv.settings["data_directory"]
	if err != nil || loc.Scheme != "file" || dd.err != nil || dd.value == "" {
		return ""
	}
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	rel, err := filepath.Rel(real(dd.value), real(loc.Path))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return ""
	}
	return fmt.Sprintf("it lies inside the server's data directory %s: every base backup would hold the whole repository, its earlier backups included, and losing the data directory would lose its backups too; move the repository to a disk of its own (README: Configuration reference, repo)", dd.value)
}

func (c *checker) checkRepositoryReach(ctx context.Context) []Result {
	loc := c.b.Location()
	_, err := c.b.Stat(ctx, repository.IdentityKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.repoDown = "is not reachable"
		return []Result{failed(NameRepository, "%s is not reachable: %v", loc, err)}
	}
	if err != nil {
		if gone := c.repositoryGone(ctx); gone != nil {
			// No probe: it would go under a bare mount point.
			c.repoDown = "holds no repository"
			return []Result{failed(NameRepository, "%v", gone)}
		}
	}
	lock := repository.LockPolicy{Mode: c.opts.LockMode, Days: c.opts.LockDays}
	rep, err := repository.ProveCapabilities(ctx, c.b, repository.NewProbe(c.opts.Host, c.opts.Now()), lock)
	var refused *repository.CapabilityError
	switch {
	case errors.As(err, &refused) && refused.Capability == repository.CapWrite && !lock.Enabled():
		return []Result{failed(NameRepository, "%s is reachable but not writable: writing %s failed: %v: wal-push and backup-push need to create objects (s3:PutObject, or write permission on the directory for the server's OS user)", loc, refused.Key, refused.Err)}
	case errors.As(err, &refused) && refused.Capability == repository.CapReadBack:
		return []Result{failed(NameRepository, "%s: the probe %s was written but does not read back as written (%v): the storage does not keep what it is given", loc, refused.Key, refused.Err)}
	case err != nil:
		return []Result{failed(NameRepository, "%v", err)}
	}
	if n, err := repository.RemoveExpiredProbes(ctx, c.b, c.opts.Now()); err != nil {
		c.opts.Log.Warn("expired probes of earlier checks are left", "err", err)
	} else if n > 0 {
		c.opts.Log.Info("deleted expired probes of earlier checks", "probes", n)
	}
	if lock.Enabled() {
		c.tryLiftGovernance(ctx, lock, rep.Key)
		return []Result{ok(NameRepository, "%s: wrote and read back a probe; a conditional create of it was refused; it came back locked until %s and its delete was refused, so it stays until then", loc, rep.RetainUntil.UTC().Format(time.RFC3339))}
	}
	switch err := rep.DeleteErr; {
	case err == nil:
		return []Result{ok(NameRepository, "%s: listed, wrote, read back and deleted a probe object; a conditional create of it was refused", loc)}
	case errors.Is(err, storage.ErrLocked):
		return []Result{ok(NameRepository, "%s: wrote and read back the probe %s; a conditional create of it was refused; the bucket's default retention locks it, so it stays until that ends", loc, rep.Key)}
	default:
		return []Result{ok(NameRepository, "%s: wrote and read back the probe %s; a conditional create of it was refused; it could not be deleted (%v); only walvault delete needs to delete", loc, rep.Key, err)}
	}
}

// repositoryGone is a *repository.GoneError when the repository holds
// nothing at all but this server's wal-push read its walvault.json there
// before (its record in pg_wal, when check runs on the database host):
// the repository's disk is not mounted, or its prefix was deleted. nil
// otherwise, or when it cannot tell.
func (c *checker) repositoryGone(ctx context.Context) error {
	l := c.localServer()
	if l.why != "" || l.dataDir == "" {
		return nil
	}
	seen := archive.RepositorySeen(filepath.Join(l.dataDir, "pg_wal"), c.b.Location())
	if seen.IsZero() {
		return nil
	}
	if holds, err := repository.HoldsObjects(ctx, c.b); err != nil || holds {
		return nil
	}
	return &repository.GoneError{Location: c.b.Location(), Seen: seen}
}

// probeKey is a key no one else writes: host, time and randomness.
func probeKey(host string, now time.Time) string { return repository.NewProbe(host, now).Key() }

func (c *checker) checkIdentity(ctx context.Context) []Result {
	if r, down := c.repositoryDown(NameIdentity); down {
		return r
	}
	loc := c.b.Location()
	id, err := repository.LoadIdentity(ctx, c.b)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return []Result{failed(NameIdentity, "%s has no %s: no WAL has reached it yet: check archive_command and the server log, then run SELECT pg_switch_wal() (if the repository holds WAL or backups, walvault.json was deleted: walvault verify says what it holds)", loc, repository.IdentityKey)}
	case err != nil:
		return []Result{failed(NameIdentity, "cannot read %s from %s: %v", repository.IdentityKey, loc, err)}
	}
	c.identityLoaded, c.identity = true, identityFacts{id: id}
	if id.Hidden {
		return []Result{failed(NameIdentity, "%s in %s is hidden behind a delete marker (someone deleted it without a version id): run walvault repair", repository.IdentityKey, loc)}
	}
	if id.Overwritten != "" {
		return []Result{failed(NameIdentity, "%s in %s: %s; %s", repository.IdentityKey, loc, id.Overwritten, repository.IdentityOverwrittenFix)}
	}
	switch {
	case c.srv.connErr != nil:
		return []Result{failed(NameIdentity, "%s records cluster %s; not compared: PostgreSQL is unreachable", repository.IdentityKey, id.SystemID)}
	case c.srv.sysIDErr != nil:
		return []Result{failed(NameIdentity, "%s records cluster %s; cannot read the server's system identifier: %v", repository.IdentityKey, id.SystemID, c.srv.sysIDErr)}
	case id.SystemID != c.srv.sysID:
		return []Result{failed(NameIdentity, "%s belongs to the cluster with system identifier %s, but this server's is %s: wal-push refuses this server's WAL there; point this server (archive_command, --repo) at its own repository, or use a new prefix for it", loc, id.SystemID, c.srv.sysID)}
	case c.srv.segSize != 0 && id.WALSegmentSize != c.srv.segSize:
		return []Result{failed(NameIdentity, "%s holds WAL segments of %d bytes, but this server's wal_segment_size is %d", loc, id.WALSegmentSize, c.srv.segSize)}
	}
	return []Result{ok(NameIdentity, "cluster %s, %s WAL segments, created with %s compression", id.SystemID, units.Bytes(int64(id.WALSegmentSize)), id.Compression)}
}

// checkBackups checks the newest DONE backup's age and the number of DONE
// backups.
// clockTolerance is how far in the future a backup's stop time may lie
// before check says a clock is off: two hosts' clocks under NTP agree far
// better.
const clockTolerance = 5 * time.Minute

func (c *checker) checkBackups(ctx context.Context) []Result {
	if r, down := c.repositoryDown(NameBackupAge, NameBackupCount); down {
		return r
	}
	inv, err := repository.LoadInventory(ctx, c.b, repository.LoadOptions{Histories: true, Identities: c.opts.Identities})
	var list []repository.BackupInfo
	if err == nil {
		list, err = inv.Catalog()
	}
	if err != nil {
		c.backups = &backupFacts{err: err}
		why := fmt.Sprintf("cannot list backups: %v; run walvault verify", err)
		return []Result{failed(NameBackupAge, "%s", why), failed(NameBackupCount, "%s", why)}
	}
	f := &backupFacts{inv: inv}
	waiting, elsewhere := 0, 0
	var damaged *repository.BackupInfo
	var broken error // the newest DONE incremental whose chain is broken
	ours := c.serverLine(inv)
	for i := range list {
		switch list[i].Status {
		case repository.StatusDone:
			if !ours(list[i].Manifest) {
				elsewhere++
				continue
			}
			// Not counted: it cannot be restored (explore25d F2).
			if _, err := repository.Chain(list, list[i].ID); err != nil {
				broken = err
				continue
			}
			f.done = append(f.done, list[i])
			f.newest = &list[i]
		case repository.StatusWaitingForWALs:
			waiting++
		case repository.StatusDamaged:
			if damaged == nil {
				damaged = &list[i]
			}
		}
	}
	c.backups = f

	var ageResult Result
	switch {
	case f.newest == nil && c.opts.MinBackups == 0:
		ageResult = ok(NameBackupAge, "no DONE backup, and min-backups is 0")
	case f.newest == nil && elsewhere > 0:
		ageResult = failed(NameBackupAge, "no DONE backup of this server in %s: its %s lie on timelines this server (timeline %d) did not come from, a restored copy's promoted and archiving here, or an old failover's; run walvault backup-push on this server", c.b.Location(), units.Plural(elsewhere, "DONE backup"), c.serverTimeline())
	case f.newest == nil && broken != nil:
		ageResult = failed(NameBackupAge, "no backup in %s can be restored: %v; take a full backup (walvault backup-push without --incremental)", c.b.Location(), broken)
	case f.newest == nil:
		ageResult = failed(NameBackupAge, "no DONE backup in %s: run walvault backup-push (from cron), and make sure its WAL gets archived", c.b.Location())
	default:
		m := f.newest.Manifest
		a := c.opts.Now().Sub(m.StopTime)
		switch {
		case a < -clockTolerance:
			// Its times, and so its place among the backups, came from a
			// clock that was ahead (or this one is behind): it hides how
			// old the real newest backup is, and retention orders by it.
			ageResult = failed(NameBackupAge, "the newest DONE backup, %s, finished %s from now, in the future: the clock its times come from was ahead (the primary's; walvault before 2026-12 recorded the backup host's), or this host's is behind; set the clocks right (NTP); until then backup ages, the exporter's and delete's order of backups are wrong", f.newest.ID, roundDuration(-a))
		case a > c.opts.MaxBackupAge:
			ageResult = failed(NameBackupAge, "the newest DONE backup, %s, finished %s ago, more than max-backup-age %s: check the backup-push cron job and its log", f.newest.ID, roundDuration(a), shortDuration(c.opts.MaxBackupAge))
		default:
			ageResult = ok(NameBackupAge, "newest DONE backup %s finished %s ago; max-backup-age %s", f.newest.ID, roundDuration(max(a, 0)), shortDuration(c.opts.MaxBackupAge))
		}
	}
	var countResult Result
	note := ""
	if waiting > 0 {
		note = fmt.Sprintf(", %d more waiting for WAL", waiting)
	}
	if elsewhere > 0 {
		note += fmt.Sprintf(", %s on timelines this server did not come from (not counted)", units.Plural(elsewhere, "DONE backup"))
	}
	newer, older, misordered := repository.Misordered(list)
	switch {
	case misordered:
		// Every policy delete refuses meanwhile, and a restore to a time
		// may pick by the wrong time.
		countResult = failed(NameBackupCount, "%s: policy deletes refuse to run until it is resolved; %s (%s%s)", repository.MisorderedWhy(newer, older), repository.MisorderedFix, units.Plural(len(f.done), "DONE backup"), note)
	case damaged != nil:
		// The other backups still restore, but retention refuses to run
		// until it is repaired.
		countResult = failed(NameBackupCount, "backup %s is DAMAGED: %v; walvault info %s says how to recover it (%s%s)", damaged.ID, damaged.Damage, damaged.ID, units.Plural(len(f.done), "DONE backup"), note)
	case broken != nil:
		countResult = failed(NameBackupCount, "%v: it and any incremental on it cannot be restored; take a full backup (walvault backup-push without --incremental), and see walvault verify for what is missing (%s that restore%s)", broken, units.Plural(len(f.done), "DONE backup"), note)
	case len(f.done) < c.opts.MinBackups:
		countResult = failed(NameBackupCount, "%s%s, min-backups wants %d: run walvault backup-push", units.Plural(len(f.done), "DONE backup"), note, c.opts.MinBackups)
	default:
		countResult = ok(NameBackupCount, "%s%s; min-backups %d", units.Plural(len(f.done), "DONE backup"), note, c.opts.MinBackups)
	}
	return []Result{ageResult, countResult}
}

// redundancyBasis is the oldest backup a REDUNDANCY n retention keeps:
// the nth newest DONE one, or, when that is incremental, the full backup
// of its chain; n is the policy's. ok is false without such a policy or
// backups.
func (c *checker) redundancyBasis() (basis repository.BackupInfo, n int, ok bool) {
	n = c.opts.Redundancy
	if n <= 0 || c.backups == nil || len(c.backups.done) == 0 {
		return repository.BackupInfo{}, n, false
	}
	oldest := c.backups.done[max(len(c.backups.done)-n, 0)]
	if chain, err := repository.Chain(c.backups.done, oldest.ID); err == nil && len(chain) > 0 {
		oldest = chain[0]
	}
	return oldest, n, oldest.Manifest != nil
}

// windowBasis is the oldest backup a restore to the start of the
// recovery window (WindowDays) needs: the newest DONE one that stopped
// before it, or, when that is incremental, the full backup of its chain
// (whose parts were written when it started). windowBasisOwn is the id
// of the former.
func (c *checker) windowBasis() (repository.BackupInfo, bool) {
	c.windowBasisOwn = ""
	if c.opts.WindowDays <= 0 || c.backups == nil {
		return repository.BackupInfo{}, false
	}
	start := c.opts.Now().AddDate(0, 0, -c.opts.WindowDays)
	for i := len(c.backups.done) - 1; i >= 0; i-- {
		bi := c.backups.done[i]
		if !bi.Manifest.StopTime.Before(start) {
			continue
		}
		c.windowBasisOwn = bi.ID
		if chain, err := repository.Chain(c.backups.done, bi.ID); err == nil && len(chain) > 0 {
			return chain[0], true
		}
		return bi, true
	}
	return repository.BackupInfo{}, false
}

// serverLine says which backups recovery to this server's timeline can
// start from (repository.BackupManifest.LeadsTo): a restored copy
// promoted and archiving here, even backing up here, proves nothing
// about this server. Every backup counts when that cannot be told: a
// standby, another cluster's server, no connection, or the server's
// timeline history not archived (yet).
func (c *checker) serverLine(inv *repository.Inventory) func(*repository.BackupManifest) bool {
	all := func(*repository.BackupManifest) bool { return true }
	tli := c.serverTimeline()
	if tli == 0 || !c.identityLoaded || c.srv.sysID != c.identity.id.SystemID || inv.WAL == nil {
		return all
	}
	history, known := inv.WAL.KnownHistory(tli)
	if tli != 1 && !known {
		return all
	}
	return func(m *repository.BackupManifest) bool {
		leads, err := m.LeadsTo(tli, history)
		return err != nil || leads
	}
}

// serverSegment is the segment the server writes; ok is false when that
// is unknown (a standby, or no connection).
func (c *checker) serverSegment() (cur wal.Segment, ok bool) {
	cur, err := wal.ParseSegmentName(c.srv.currentWAL)
	return cur, c.srv.currentWAL != "" && err == nil
}

// serverTimeline is the timeline the server writes; 0 when unknown.
func (c *checker) serverTimeline() wal.TimelineID {
	cur, ok := c.serverSegment()
	if !ok {
		return 0
	}
	return cur.Timeline
}

// checkContinuity checks the WAL from the newest DONE backup's start (or,
// without one, from the oldest archived segment) to the newest archived
// segment, with verify's continuity code.
func (c *checker) checkContinuity(ctx context.Context) []Result {
	if !c.identityLoaded {
		return []Result{failed(NameContinuity, "not checked: %s cannot be read", repository.IdentityKey)}
	}
	// Without the backups, where the WAL must start is unknown: checking
	// from the oldest segment would report a gap a restore never meets, or
	// claim there is no backup.
	switch {
	case c.backups == nil:
		return []Result{failed(NameContinuity, "not checked: the backups were not listed")}
	case c.backups.err != nil:
		return []Result{failed(NameContinuity, "not checked: cannot list backups, so where the WAL must be continuous from is unknown: %v; run walvault verify", c.backups.err)}
	}
	segSize := c.identity.id.WALSegmentSize
	var starts []wal.Segment
	from := "the oldest archived segment (no DONE backup yet)"
	if c.backups.newest != nil {
		s, err := wal.ParseSegmentName(c.backups.newest.Manifest.StartWAL)
		if err != nil {
			return []Result{failed(NameContinuity, "backup %s: start_wal: %v; run walvault verify", c.backups.newest.ID, err)}
		}
		starts = []wal.Segment{s}
		from = fmt.Sprintf("%s (where backup %s starts)", s, c.backups.newest.ID)
	}
	// The backup checks' listing serves once: a later call lists again.
	inv := c.backups.inv
	c.backups.inv = nil
	if inv == nil {
		var err error
		if inv, err = repository.LoadInventory(ctx, c.b, repository.LoadOptions{Histories: true, Identities: c.opts.Identities}); err != nil {
			return []Result{failed(NameContinuity, "cannot list the WAL: %v", err)}
		}
	}
	if inv.WAL == nil || inv.Identity.WALSegmentSize != segSize {
		return []Result{failed(NameContinuity, "cannot list the WAL: %s changed while check ran", repository.IdentityKey)}
	}
	cont := inv.WAL.Continuity(starts)
	if r, ok := c.branchedOff(inv.WAL); !ok {
		return []Result{r}
	}
	// A switch whose history needs the identity is said, never passed over
	// in silence, but is no failure: the repository may well be fine.
	unchecked := ""
	if u := cont.Unchecked(); u != "" {
		unchecked = "; but " + u
	}
	if bad := cont.Summary(segSize); bad != "" {
		if hidden := c.hiddenGap(ctx, cont); hidden != "" {
			return []Result{failed(NameContinuity, "since %s: %s: %s is hidden behind a delete marker (someone deleted it without a version id), and its data survives: restore reads through the marker, and walvault repair makes it visible again; run walvault verify for the full report%s", from, bad, hidden, unchecked)}
		}
		return []Result{failed(NameContinuity, "since %s: %s: a restore cannot get past it; run walvault verify for the full report, push missing segments the server still has, or take a new backup%s", from, bad, unchecked)}
	}
	newest := ""
	for _, t := range cont.Timelines {
		if t.Checked && t.Reachable {
			newest = t.To.String()
		}
	}
	if newest == "" {
		return []Result{ok(NameContinuity, "no segment archived since %s yet%s", from, unchecked)}
	}
	return []Result{ok(NameContinuity, "no gap from %s to %s%s", from, newest, unchecked)}
}

// hiddenGap is the first missing segment a restore needs when the
// storage keeps it behind a delete marker ("" when not, or when that
// cannot be told): listing without versions, check sees it missing.
func (c *checker) hiddenGap(ctx context.Context, cont repository.Continuity) string {
	if _, ok := storage.AsVersioned(c.b); !ok {
		return ""
	}
	for _, g := range cont.Gaps {
		if !g.Needed {
			continue
		}
		f := wal.FileName{Kind: wal.KindSegment, Timeline: g.First.Timeline, Segment: g.First}
		if _, err := repository.StatWAL(ctx, storage.ReadHidden(c.b, nil), f, c.identity.id.Compression); err == nil {
			return g.First.String()
		}
		return ""
	}
	return ""
}

// branchedOff fails when a timeline in the repository branched off the
// server's before the segment it writes: a restored copy promoted with
// archiving on, or an old failover. Recovery to latest follows that
// timeline and never reads this server's WAL past the branch point, so
// restores of "the latest state" would give the other server's.
func (c *checker) branchedOff(x *repository.WALIndex) (Result, bool) {
	cur, ok := c.serverSegment()
	if !ok {
		return Result{}, true // a standby, or the position is unknown
	}
	if c.srv.sysID != c.identity.id.SystemID {
		// Another cluster's timelines (the identity check fails): its
		// branch points say nothing about this server.
		return Result{}, true
	}
	bs := x.BranchedBefore(cur.Timeline, cur)
	if len(bs) == 0 {
		return Result{}, true
	}
	b := bs[0]
	return failed(NameContinuity, "timeline %d branched off this server's timeline %d at %s in the repository (wal/%08X.history: a restored copy promoted with archiving on, or an earlier failover), and this server has gone on past that point (it writes %s): a restore to latest follows timeline %d and leaves out this server's WAL after %s. "+
		"Stop the other server's archiving if it still runs (a copy: restore it with --archive-mode off); restore this server's WAL with --target-timeline %d; to make latest follow this server again, remove wal/%08X.history and timeline %d's segments from the repository once no restore needs them",
		b.Child, b.Parent, b.SwitchPoint, uint32(b.Child), cur, b.Child, b.SwitchPoint, b.Parent, uint32(b.Child), b.Child), false
}

// lockReporter is implemented by backends that can say whether their
// bucket has Object Lock (storage/s3).
type lockReporter interface {
	ObjectLockEnabled(ctx context.Context) (bool, error)
}

// governanceLifter is implemented by backends that can try to shorten a
// GOVERNANCE lock with the bypass (storage/s3).
type governanceLifter interface {
	ShortenGovernanceLock(ctx context.Context, key string, until time.Time) error
}

// tryLiftGovernance tries, with the credentials walvault runs with, to
// shorten the GOVERNANCE lock of check's own probe (to a minute from now),
// for the Object Lock line: credentials that can, can lift every lock
// walvault writes and then delete the versions, which is what Object Lock
// is there to prevent.
func (c *checker) tryLiftGovernance(ctx context.Context, lock repository.LockPolicy, probe string) {
	if lock.Mode != storage.Governance {
		return
	}
	l, ok := storage.As[governanceLifter](c.b)
	if !ok {
		return
	}
	err := l.ShortenGovernanceLock(ctx, probe, c.opts.Now().Add(time.Minute))
	c.governance = &governanceTry{probe: probe, err: err}
}

// governanceTry is what tryLiftGovernance found: err nil, the lock was
// shortened.
type governanceTry struct {
	probe string
	err   error
}

// checkObjectLock checks that the bucket has Object Lock when the policy
// asks for it, and that the policy is the one the repository records.
func (c *checker) checkObjectLock(ctx context.Context) []Result {
	configured := repository.LockPolicy{Mode: c.opts.LockMode, Days: c.opts.LockDays}
	if c.identityLoaded {
		if err := c.identity.id.CheckLock(configured, c.b.Location()); err != nil {
			return []Result{failed(NameObjectLock, "%v", err)}
		}
	}
	if !configured.Enabled() {
		return []Result{ok(NameObjectLock, "not asked for: lock-mode is off")}
	}
	if r, down := c.repositoryDown(NameObjectLock); down {
		return r
	}
	r, found := storage.As[lockReporter](c.b)
	if !found {
		return []Result{failed(NameObjectLock, "lock-mode %s asks for Object Lock, but %s cannot lock objects: use an s3:// repository on a bucket with Object Lock enabled", strings.ToLower(string(configured.Mode)), c.b.Location())}
	}
	// One question tells both whether the bucket locks and, where the
	// backend can say, its default retention.
	var mode storage.RetentionMode
	var days int
	var enabled bool
	var err error
	if d, ok := r.(lockDefaultReporter); ok {
		enabled, mode, days, err = d.ObjectLockDefault(ctx)
	} else {
		enabled, err = r.ObjectLockEnabled(ctx)
	}
	switch {
	case err != nil:
		return []Result{failed(NameObjectLock, "cannot ask the bucket of %s for its Object Lock configuration (s3:GetBucketObjectLockConfiguration): %v", c.b.Location(), err)}
	case !enabled:
		return []Result{failed(NameObjectLock, "lock-mode %s asks for Object Lock, but the bucket of %s does not have it enabled, so walvault's writes fail: create a bucket with Object Lock enabled (most S3 servers allow it only at creation) and move the repository there", strings.ToLower(string(configured.Mode)), c.b.Location())}
	}
	if weaker(configured, mode, days) {
		return []Result{failed(NameObjectLock, "the bucket's default retention (%s, %d days) is stricter than the lock policy walvault writes with (%s), and an object's own retention replaces the bucket's default: every object walvault writes is less protected than the bucket promises. Start a new repository prefix with a lock-mode and lock-days at least as strict (walvault.json fixes a repository's policy), or lower the bucket's default",
			mode, days, configured)}
	}
	if w := c.opts.WindowDays; w >= configured.Days {
		return []Result{failed(NameObjectLock, "new objects are locked %s, but the retention keeps a recovery window of %d days: a restore to the window's start needs the newest backup that stopped before it, and its WAL, written before the window began, so their lock has run out, and whoever holds the host's credentials can delete them. Start a new repository prefix with lock-days longer than the window by the time between full backups and a day more (%d with daily backups; walvault.json fixes a repository's policy), or shorten the window",
			configured, w, w+2)}
	}
	if basis, ok := c.windowBasis(); ok && !basis.Manifest.StartTime.AddDate(0, 0, configured.Days).After(c.opts.Now()) {
		what := "the newest that stopped before it"
		if basis.ID != c.windowBasisOwn {
			what = "the full backup the incremental one that stopped before it builds on"
		}
		return []Result{failed(NameObjectLock, "new objects are locked %s, but backup %s, which a restore to the start of the %d-day recovery window needs (%s), started %s ago: its lock, and that of the WAL from its start, has run out, and whoever holds the host's credentials can delete them. Take (full) backups more often than every %d days (lock-days less the window), or start a new repository prefix with a longer lock-days (walvault.json fixes a repository's policy)",
			configured, basis.ID, c.opts.WindowDays, what, roundDuration(c.opts.Now().Sub(basis.Manifest.StartTime)), configured.Days-c.opts.WindowDays)}
	}
	if basis, n, ok := c.redundancyBasis(); ok && !basis.Manifest.StartTime.AddDate(0, 0, configured.Days).After(c.opts.Now()) {
		return []Result{failed(NameObjectLock, "new objects are locked %s, but backup %s, the oldest REDUNDANCY %d keeps (or the full backup it builds on), started %s ago: its lock, and that of the WAL from its start, has run out, and whoever holds the host's credentials can delete them. Take (full) backups more often (every %s or less, lock-days spread over the %d kept), or start a new repository prefix with a longer lock-days (walvault.json fixes a repository's policy)",
			configured, basis.ID, n, roundDuration(c.opts.Now().Sub(basis.Manifest.StartTime)), shortDuration(time.Duration(configured.Days)*24*time.Hour/time.Duration(n)), n)}
	}
	if err := versionsReadable(ctx, c.b); err != nil {
		return []Result{failed(NameObjectLock, "the bucket has Object Lock enabled, but %v. In a locked repository wal-fetch lists each WAL object's versions and serves the oldest (walvault writes each once: a newer one was put over it by someone else), and fails when it cannot list them, so every restore_command would fail: %s", err, storage.VersionsHint)}
	}
	note := ""
	if g := c.governance; g != nil {
		switch {
		case g.err == nil:
			return []Result{failed(NameObjectLock, "new objects are locked %s, but the credentials walvault runs with lifted such a lock: they shortened the lock of check's probe %s with x-amz-bypass-governance-retention, so whoever holds them (an attacker on the database host) can shorten every lock walvault writes and then delete WAL and backups. Take s3:BypassGovernanceRetention away from them (and never run walvault with the account root's), or use lock-mode compliance in a new repository prefix (MinIO honours the bypass for any credential allowed s3:PutObjectRetention: use compliance there)",
				configured, g.probe)}
		case storage.IsPermanent(g.err):
			note = "; these credentials cannot shorten a GOVERNANCE lock (the bypass was refused on check's probe)"
		default:
			note = fmt.Sprintf("; whether these credentials can lift a GOVERNANCE lock was not checked: %v", g.err)
		}
	}
	return []Result{ok(NameObjectLock, "the bucket has Object Lock enabled; new objects are locked %s%s", configured, note)}
}

// versionsReadable says, on the identity's versions, whether the
// credentials may list an object's versions and read an old one (nil
// where the storage keeps no versions).
func versionsReadable(ctx context.Context, b storage.Backend) error {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return nil
	}
	vs, err := v.Versions(ctx, repository.IdentityKey)
	switch {
	case err != nil && storage.IsPermanent(err):
		return fmt.Errorf("the storage refuses to list the versions of %s (%v)", repository.IdentityKey, err)
	case err != nil:
		return fmt.Errorf("listing the versions of %s failed (%v)", repository.IdentityKey, err)
	case len(vs) == 0:
		return nil
	}
	rc, _, err := v.GetVersion(ctx, repository.IdentityKey, vs[len(vs)-1].ID)
	switch {
	case err == nil:
		rc.Close()
		return nil
	case storage.IsPermanent(err) && !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("the storage refuses to read version %s of %s (%v)", vs[len(vs)-1].ID, repository.IdentityKey, err)
	case errors.Is(err, storage.ErrNotFound):
		return nil // removed since the listing
	}
	return fmt.Errorf("reading version %s of %s failed (%v)", vs[len(vs)-1].ID, repository.IdentityKey, err)
}

// lockDefaultReporter is implemented by backends that can tell their
// bucket's default retention with whether it locks at all (storage/s3).
type lockDefaultReporter interface {
	ObjectLockDefault(ctx context.Context) (enabled bool, mode storage.RetentionMode, days int, err error)
}

// weaker reports whether policy locks less than a bucket default of mode
// for days would: governance where the default is compliance (which nobody
// can lift), or fewer days.
func weaker(policy repository.LockPolicy, mode storage.RetentionMode, days int) bool {
	if mode == "" {
		return false
	}
	return mode == storage.Compliance && policy.Mode != storage.Compliance || policy.Days < days
}
