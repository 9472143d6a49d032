package retention

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// BusyWindow: an INCOMPLETE backup folder written to this recently may
// belong to a backup-push that is still running, so it is left alone.
const BusyWindow = time.Hour

// RunningPushMargin: while an INCOMPLETE backup that may still be running
// is left alone, WAL archived since this long before its start is kept
// (its start LSN is not known yet; the margin covers clock skew between
// the hosts).
const RunningPushMargin = time.Hour

// ErrRefused: delete --backup was asked to delete a backup the rules keep.
var ErrRefused = errors.New("refused")

// Plan says what a delete keeps and removes, and why. It is computed
// without touching the storage (PlanPolicy, PlanBackup) and carried out by
// Apply.
type Plan struct {
	// Policy describes what was asked: "REDUNDANCY 2" or "backup <id>".
	Policy string
	Now    time.Time
	// Backups holds every backup folder in id (time) order.
	Backups []BackupPlan
	WAL     WALPlan
	// Partials: wal-receive's partial segments (see PartialPlan).
	Partials PartialPlan
	// Uploads are the incomplete uploads Apply aborts (PlanUploads).
	Uploads []storage.Upload
	// UploadAge is how old they are at least.
	UploadAge time.Duration

	// inv is what the plan was made from: Preview plans the WAL again
	// when backups it would delete turn out locked.
	inv *Inventory
}

// BackupPlan is the decision for one backup folder.
type BackupPlan struct {
	ID       string
	Status   repository.BackupStatus
	Manifest *repository.BackupManifest // nil for INCOMPLETE
	// MissingWAL is the first segment a WAITING_FOR_WALS backup lacks.
	MissingWAL string
	Marked     bool // its newest keep mark says keep
	Delete     bool
	Reason     string // why it is kept or deleted, for people
	// Objects are what deleting the backup removes, in this order:
	// walvault's manifest (so it stops being a backup at once), the parts
	// and backup_manifest, then the keep marks. Empty when kept.
	Objects []storage.ObjectInfo
	Bytes   int64 // stored bytes of Objects
	// LockedUntil is set by Preview when the manifest is still locked:
	// Apply will keep the backup.
	LockedUntil time.Time
}

// WALFile is one WAL object the plan deletes.
type WALFile struct {
	Key     string
	Name    wal.FileName
	Start   wal.LSN // of the segment the name is built on
	Size    int64   // stored bytes
	ModTime time.Time
}

// WALPlan is the decision for the objects under wal/.
type WALPlan struct {
	// Delete lists what goes, oldest (lowest position) first.
	Delete []WALFile
	Bytes  int64 // stored bytes of Delete
	// Kept counts the WAL objects that stay (history files included).
	Kept      int
	KeptBytes int64
	// History counts timeline history files: never deleted.
	History int
	// Other lists keys under wal/ that are not walvault's: never touched.
	Other []string
	// Cutoff: only WAL wholly before it is deleted. It is the start of the
	// oldest kept backup, CutoffBackup. Zero when no WAL is deleted.
	Cutoff       wal.LSN
	CutoffBackup string
	SegmentSize  uint32
	// HeldSince: WAL archived at or after it is kept for a backup-push that
	// may be running. Zero when no such push.
	HeldSince time.Time
	// Lock is the repository's Object Lock policy, from which Apply tells
	// the WAL objects still locked without asking (see LockedByPolicy).
	Lock repository.LockPolicy
	// Reason says in one line why this WAL goes, or why none does.
	Reason string
}

// lockMargin is how long before the end of its lock, as the repository's
// policy and the object's time give it, an object is still taken for
// locked without asking: its lock began when its upload did, on the
// writer's clock, which S3 allows to be 15 minutes off.
const lockMargin = time.Hour

// LockedByPolicy reports whether f is surely still locked at now: written
// (its time in the listing) less than the repository's lock days, less
// lockMargin, before now. It returns when its lock ends, about. Deleting
// such an object can only be refused, a round trip or two for nothing;
// under a lock longer than the recovery window (as the README advises),
// every delete meets days of them.
func (w WALPlan) LockedByPolicy(f WALFile, now time.Time) (time.Time, bool) {
	if !w.Lock.Enabled() || f.ModTime.IsZero() {
		return time.Time{}, false
	}
	until := f.ModTime.Add(time.Duration(w.Lock.Days) * 24 * time.Hour)
	return until, until.After(now.Add(lockMargin))
}

// DeletedBackups returns the backups the plan deletes.
func (p Plan) DeletedBackups() []BackupPlan {
	var out []BackupPlan
	for _, bp := range p.Backups {
		if bp.Delete {
			out = append(out, bp)
		}
	}
	return out
}

// PlanPolicy decides what policy p keeps at time now:
//
//   - DONE backups the policy keeps (REDUNDANCY n: the n newest DONE
//     backups not marked keep; RECOVERY WINDOW OF n DAYS: those that
//     stopped within the last n days plus the newest that stopped before),
//     every backup marked keep, and always the newest DONE backup;
//   - WAITING_FOR_WALS backups newer than the oldest kept DONE backup (they
//     may still become DONE);
//   - INCOMPLETE folders newer than the newest DONE backup or written to
//     within BusyWindow (a backup-push may be running).
//
// Everything else is deleted, and the WAL no kept backup needs (see
// planWAL). With no DONE backup at all nothing is deleted; with a DAMAGED
// one, it refuses (ErrRefused).
func PlanPolicy(inv Inventory, p Policy, now time.Time) (Plan, error) {
	if p.Kind != Redundancy && p.Kind != RecoveryWindow || p.N < 1 {
		return Plan{}, fmt.Errorf("invalid retention policy %v: %s", p, acceptedForms)
	}
	if err := refuseDamaged(inv, ""); err != nil {
		return Plan{}, err
	}
	if err := refuseFuture(inv, now); err != nil {
		return Plan{}, err
	}
	plan := newPlan(inv, p.String(), now)
	newest := newestDone(plan.Backups)
	if newest < 0 {
		for i := range plan.Backups {
			plan.Backups[i].Reason = "no backup is DONE yet: nothing is deleted until one is"
		}
		return finish(inv, plan)
	}

	// DONE backups.
	keep := map[int]string{}
	switch p.Kind {
	case Redundancy:
		rank := 0
		for i := len(plan.Backups) - 1; i >= 0; i-- {
			bp := plan.Backups[i]
			if bp.Status != repository.StatusDone || bp.Marked {
				continue
			}
			rank++
			if rank <= p.N {
				keep[i] = fmt.Sprintf("within %s (%s newest DONE backup not marked keep)", p, ordinal(rank))
			}
		}
	case RecoveryWindow:
		start := now.Add(-p.Window())
		basis := -1
		for i, bp := range plan.Backups {
			if bp.Status != repository.StatusDone {
				continue
			}
			stop := bp.Manifest.StopTime
			if !stop.Before(start) {
				keep[i] = fmt.Sprintf("within %s: stopped %s, after the window's start %s", p, stamp(stop), stamp(start))
			} else if basis < 0 || !stop.Before(plan.Backups[basis].Manifest.StopTime) {
				basis = i
			}
		}
		if basis >= 0 {
			keep[basis] = fmt.Sprintf("within %s: the newest backup that stopped before the window's start %s, needed to restore to it", p, stamp(start))
		}
	}
	if err := keepLeadingBackups(inv, plan.Backups, keep, newest, p, now); err != nil {
		return Plan{}, err
	}
	for i := range plan.Backups {
		bp := &plan.Backups[i]
		if bp.Status != repository.StatusDone {
			continue
		}
		reason, kept := keep[i]
		switch {
		case bp.Marked:
			bp.Reason = "marked keep (backup-mark --keep)"
		case kept:
			bp.Reason = reason
		case i == newest:
			bp.Reason = "the newest DONE backup is always kept"
		default:
			bp.Delete = true
			bp.Reason = deleteReason(plan.Backups, i, p, now)
		}
	}
	keepAncestors(inv, plan.Backups)
	oldestKeptDone := ""
	for _, bp := range plan.Backups {
		if bp.Status == repository.StatusDone && !bp.Delete {
			oldestKeptDone = bp.ID
			break
		}
	}
	// WAITING_FOR_WALS and INCOMPLETE.
	for i := range plan.Backups {
		bp := &plan.Backups[i]
		switch {
		case bp.Status == repository.StatusDone:
		case bp.Marked:
			bp.Reason = "marked keep (backup-mark --keep)"
		case bp.Status == repository.StatusWaitingForWALs && bp.ID > oldestKeptDone:
			bp.Reason = fmt.Sprintf("WAITING_FOR_WALS (needs %s): newer than the oldest kept DONE backup, it may still become DONE", missing(*bp))
		case bp.Status == repository.StatusWaitingForWALs:
			bp.Delete = true
			bp.Reason = fmt.Sprintf("WAITING_FOR_WALS (needs %s) and older than every kept DONE backup", missing(*bp))
		default: // INCOMPLETE
			if why := mayBeRunning(inv, *bp, plan.Backups[newest].ID, now); why != "" {
				bp.Reason = why
				continue
			}
			bp.Delete = true
			bp.Reason = "INCOMPLETE (an interrupted backup-push), older than the newest DONE backup"
		}
	}
	keepAncestors(inv, plan.Backups)
	return finish(inv, plan)
}

// keepLeadingBackups adds to keep what the policy, which ranks backups by
// time, leaves out when the repository holds more than one timeline: the
// backups that lead to a timeline still in use. After a point-in-time
// restore promoted as a new timeline (archiving here), the old timeline's
// backup taken after the mistake is the newest, but no restore of it can
// follow the new one; when a restored copy promoted once took a backup
// here, that backup is the newest, while the primary goes on on the old
// timeline. A timeline is in use when the repository received WAL of it
// (a segment, partial or history file) after the oldest backup the policy
// keeps stopped (a marked one not counted), or under a window, within
// the window, and the newest timeline while it has no DONE backup of its
// own: for each, the backup the policy would keep for that timeline
// alone is kept too, under REDUNDANCY the newest DONE backup
// that leads to it, under RECOVERY WINDOW the newest that leads to it and
// stopped before the window's start (those within it are kept anyway). A timeline whose
// history is unknown is left to the policy, and so is one no longer in
// use (a copy promoted once, long ago, that took a backup), whose
// backups age out.
func keepLeadingBackups(inv Inventory, bs []BackupPlan, keep map[int]string, newest int, p Policy, now time.Time) error {
	windowStart := now.Add(-p.Window())
	since := time.Time{} // the oldest backup the policy keeps stopped (marked ones are exempt, and count not)
	for i, bp := range bs {
		if _, kept := keep[i]; bp.Status == repository.StatusDone && !bp.Marked && (kept || i == newest) {
			if stop := bp.Manifest.StopTime; since.IsZero() || stop.Before(since) {
				since = stop
			}
		}
	}
	if p.Kind == RecoveryWindow && windowStart.Before(since) {
		since = windowStart
	}
	lastWritten := map[wal.TimelineID]time.Time{}
	for _, o := range inv.WAL {
		if f, _, ok := repository.ParseWALKey(o.Key); ok && o.ModTime.After(lastWritten[f.Timeline]) {
			lastWritten[f.Timeline] = o.ModTime
		}
	}
	// The newest timeline with no DONE backup of its own yet (a
	// point-in-time restore just promoted, whose first segment may not
	// complete for hours) is in use whatever its times say, until a
	// backup of its own carries it.
	timelines := slices.Sorted(maps.Keys(lastWritten))
	fresh := wal.TimelineID(0)
	if n := len(timelines); n > 0 {
		fresh = timelines[n-1]
		for _, bp := range bs {
			if bp.Status == repository.StatusDone && wal.TimelineID(bp.Manifest.StartTimeline) == fresh {
				fresh = 0
				break
			}
		}
	}
	for _, tli := range timelines {
		at := lastWritten[tli]
		history, known := inv.Histories[tli]
		if at.Before(since) && tli != fresh {
			continue
		}
		if tli > 1 && !known {
			// Which backups lead to it is unknown: deleting by the
			// others' rules could delete the only one that does.
			why := inv.HistoryProblems[tli]
			if why == "" {
				why = "its history file could not be read"
			}
			return fmt.Errorf("%w: timeline %d is in use (WAL archived on it %s), but %s: which backups lead to it is unknown, so retention could delete the only one that restores it",
				ErrRefused, tli, stamp(at), why)
		}
		pick := -1
		for i, bp := range bs {
			if bp.Status != repository.StatusDone {
				continue
			}
			if leads, err := bp.Manifest.LeadsTo(tli, history); err != nil || !leads {
				continue
			}
			switch {
			case p.Kind == RecoveryWindow && !bp.Manifest.StopTime.Before(windowStart):
				// Kept by the window, but not reaching its start.
			case pick < 0 || !bp.Manifest.StopTime.Before(bs[pick].Manifest.StopTime):
				pick = i
			}
		}
		if _, kept := keep[pick]; pick < 0 || kept || bs[pick].Marked || pick == newest {
			continue
		}
		what := "the newest DONE backup"
		if p.Kind == RecoveryWindow {
			what = fmt.Sprintf("the newest backup that stopped before the window's start %s", stamp(windowStart))
		}
		why := fmt.Sprintf("which the repository received WAL of at %s, after the backups kept by time began", stamp(at))
		if at.Before(since) {
			why = "the newest timeline, which has no DONE backup of its own yet"
		}
		keep[pick] = fmt.Sprintf("within %s: %s that leads to timeline %d, %s (a backup on another timeline cannot restore it)", p, what, tli, why)
	}
	return nil
}

// keepAncestors keeps every backup a kept incremental builds on: a kept
// incremental keeps its whole chain, or it could not be restored.
func keepAncestors(inv Inventory, bs []BackupPlan) {
	index := make(map[string]int, len(bs))
	for i, bp := range bs {
		index[bp.ID] = i
	}
	// Newest first, so each ancestor names the newest backup that needs it.
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Delete || bs[i].Manifest == nil || !bs[i].Manifest.IsIncremental() {
			continue
		}
		for _, a := range repository.Ancestors(inv.Backups, bs[i].ID) {
			j, ok := index[a]
			if !ok || !bs[j].Delete {
				continue
			}
			bs[j].Delete = false
			bs[j].Reason = fmt.Sprintf("kept as an ancestor of incremental backup %s, which needs its whole chain (it would go: %s)", bs[i].ID, bs[j].Reason)
		}
	}
}

// PlanBackup decides the deletion of the one backup id, under the same
// rules: it refuses (ErrRefused) the newest DONE backup, a backup marked
// keep, an INCOMPLETE one a running backup-push may be writing, and any
// while a backup is DAMAGED (the damaged one included), but for a backup
// DAMAGED by a part, or one building on it, while every DAMAGED backup
// is so (see refuseDamaged). WAL is deleted only when the backup was the
// oldest and the rules allow it. An id that is not in the repository
// gives an error wrapping repository.ErrNoBackup.
func PlanBackup(inv Inventory, id string, now time.Time) (Plan, error) {
	if err := repository.ValidateBackupID(id); err != nil {
		return Plan{}, err
	}
	if err := refuseDamaged(inv, id); err != nil {
		return Plan{}, err
	}
	plan := newPlan(inv, "backup "+id, now)
	target := -1
	for i, bp := range plan.Backups {
		if bp.ID == id {
			target = i
		}
	}
	if target < 0 {
		return Plan{}, fmt.Errorf("%w: backup %s does not exist in this repository (see backup-list)", repository.ErrNoBackup, id)
	}
	newest := newestDone(plan.Backups)
	bp := &plan.Backups[target]
	switch {
	case bp.Marked:
		return Plan{}, fmt.Errorf("%w: backup %s is marked keep; run backup-mark %s --no-keep first if it really should go", ErrRefused, id, id)
	case target == newest && !(inFuture(bp, now) && otherDone(plan.Backups, target)):
		// One from the future (a clock that was ahead) may go while another
		// DONE backup stays: it blocks retention until its time.
		return Plan{}, fmt.Errorf("%w: backup %s is the newest DONE backup, which is always kept (take a newer backup first)", ErrRefused, id)
	case bp.Status == repository.StatusIncomplete:
		if why := recentlyWritten(inv, id, now); why != "" {
			return Plan{}, fmt.Errorf("%w: backup %s is %s; try again later", ErrRefused, id, why)
		}
	}
	if desc := repository.Descendants(inv.Backups, id); len(desc) > 0 {
		return Plan{}, fmt.Errorf("%w: incremental backups build on backup %s (%s): delete them first, newest first, or leave it",
			ErrRefused, id, strings.Join(desc, ", "))
	}
	for i := range plan.Backups {
		plan.Backups[i].Reason = "not selected"
	}
	bp.Delete = true
	bp.Reason = "selected with --backup"
	switch bp.Status {
	case repository.StatusWaitingForWALs:
		bp.Reason += fmt.Sprintf(" (WAITING_FOR_WALS, needs %s)", missing(*bp))
	case repository.StatusDamaged:
		bp.Reason += " (DAMAGED: it cannot be restored)"
	}
	return finish(inv, plan)
}

// refuseDamaged refuses any plan while a backup is DAMAGED. When its
// manifest is: that no longer says which WAL and which parent it needs,
// so no plan could prove that what it deletes is not needed, nor what the
// damaged backup holds; deleting the damaged backup would also remove the
// evidence. When a part is (missing, or of another size): the backup
// cannot be restored, yet a policy would count it among those it keeps
// and delete in its place the older ones that still restore; and its part
// may yet be recovered. A plan for target (delete --backup; "" for a policy) may
// still go ahead when every DAMAGED backup is damaged by a part and the
// target is one of them or builds on one: deleting what cannot be
// restored is the way out when the part is lost, and the manifests still
// say what the backups kept need.
// clockTolerance is how far in the future a backup's stop time may lie
// before a policy delete refuses to run.
const clockTolerance = 5 * time.Minute

// refuseFuture refuses a policy delete while a backup stopped in the
// future, or while two backups of one timeline are in another order by
// their times than by their WAL positions: their times came from a clock
// that was ahead or behind, and retention orders backups by their times,
// so it would keep the wrong ones.
func refuseFuture(inv Inventory, now time.Time) error {
	for _, bi := range inv.Backups {
		m := bi.Manifest
		if m != nil && m.StopTime.After(now.Add(clockTolerance)) {
			return fmt.Errorf("%w: backup %s stopped at %s, %s from now: the clock its times come from was ahead (the primary's; walvault before 2026-12 recorded the backup host's), or this host's is behind. Retention orders backups by their times and would keep the wrong ones: set the clocks right (NTP); then delete that backup by id (delete --backup %s) if it is not wanted, or wait until its time has passed",
				ErrRefused, bi.ID, stamp(m.StopTime), m.StopTime.Sub(now).Round(time.Minute), bi.ID)
		}
	}
	if newer, older, ok := repository.Misordered(inv.Backups); ok {
		return fmt.Errorf("%w: %s. Retention orders backups by their times and would keep the wrong ones: %s",
			ErrRefused, repository.MisorderedWhy(newer, older), repository.MisorderedFix)
	}
	return nil
}

// inFuture says whether bp stopped more than clockTolerance after now.
func inFuture(bp *BackupPlan, now time.Time) bool {
	return bp.Manifest != nil && bp.Manifest.StopTime.After(now.Add(clockTolerance))
}

// otherDone says whether a DONE backup other than bs[i] exists.
func otherDone(bs []BackupPlan, i int) bool {
	for j, bp := range bs {
		if j != i && bp.Status == repository.StatusDone {
			return true
		}
	}
	return false
}

func refuseDamaged(inv Inventory, target string) error {
	var first, byManifest *repository.BackupInfo
	allowed := false
	ancestors := repository.Ancestors(inv.Backups, target)
	for i, bi := range inv.Backups {
		if bi.Status != repository.StatusDamaged {
			continue
		}
		if first == nil {
			first = &inv.Backups[i]
		}
		if !repository.IsPartDamaged(bi.Damage) && byManifest == nil {
			byManifest = &inv.Backups[i]
		}
		if target != "" && (bi.ID == target || slices.Contains(ancestors, bi.ID)) {
			allowed = true
		}
	}
	switch {
	case first == nil:
		return nil
	case byManifest != nil:
		bi := byManifest
		key := repository.BackupManifestKey(bi.ID)
		return fmt.Errorf("%w: backup %s is DAMAGED (%v), so its manifest no longer says which WAL and backups it needs, and delete deletes nothing until it is repaired: if %s was overwritten, its original is an older version in the bucket's version history; delete the newer version, or copy the original over it, with the S3 API (aws s3api list-object-versions --bucket <bucket> --prefix <the repository prefix>/%s), then run delete again; if the backup is not wanted, remove backups/%s/ by hand",
			ErrRefused, bi.ID, bi.Damage, key, key, bi.ID)
	case allowed:
		return nil
	}
	bi := first
	var pd *repository.PartDamage
	errors.As(bi.Damage, &pd)
	alone := "walvault delete --backup " + bi.ID + " --confirm"
	if desc := repository.Descendants(inv.Backups, bi.ID); len(desc) > 0 {
		alone = fmt.Sprintf("walvault delete --backup ID --confirm, first for each incremental backup on it, newest first (%s), then for %s", strings.Join(desc, ", "), bi.ID)
	}
	return fmt.Errorf("%w: backup %s is DAMAGED (%v): it cannot be restored, and delete deletes nothing while it is DAMAGED, lest it delete the older backups that restore in its place: %s, then run delete again; if it cannot be recovered, delete it alone with %s (and take a new backup)",
		ErrRefused, bi.ID, bi.Damage, pd.Remedy(), alone)
}

func newPlan(inv Inventory, policy string, now time.Time) Plan {
	plan := Plan{Policy: policy, Now: now, Backups: make([]BackupPlan, 0, len(inv.Backups))}
	for _, bi := range inv.Backups {
		plan.Backups = append(plan.Backups, BackupPlan{
			ID: bi.ID, Status: bi.Status, Manifest: bi.Manifest, MissingWAL: bi.MissingWAL,
			Marked: repository.Kept(inv.Marks[bi.ID]),
		})
	}
	sort.SliceStable(plan.Backups, func(i, j int) bool { return plan.Backups[i].ID < plan.Backups[j].ID })
	return plan
}

// newestDone is the index of the newest DONE backup, -1 if none.
func newestDone(bs []BackupPlan) int {
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Status == repository.StatusDone {
			return i
		}
	}
	return -1
}

func deleteReason(bs []BackupPlan, i int, p Policy, now time.Time) string {
	if p.Kind == Redundancy {
		if p.N == 1 {
			return fmt.Sprintf("beyond %s: a newer DONE backup is kept", p)
		}
		return fmt.Sprintf("beyond %s: %d newer DONE backups are kept", p, p.N)
	}
	return fmt.Sprintf("beyond %s: stopped %s, and a newer backup covers the window's start %s",
		p, stamp(bs[i].Manifest.StopTime), stamp(now.Add(-p.Window())))
}

// mayBeRunning says why an INCOMPLETE folder may belong to a backup-push
// still in progress, or "".
func mayBeRunning(inv Inventory, bp BackupPlan, newestDoneID string, now time.Time) string {
	if bp.ID > newestDoneID {
		return "INCOMPLETE and newer than the newest DONE backup: a backup-push may be running"
	}
	if why := recentlyWritten(inv, bp.ID, now); why != "" {
		return "INCOMPLETE and " + why
	}
	return ""
}

func recentlyWritten(inv Inventory, id string, now time.Time) string {
	for _, oi := range inv.Objects[id] {
		if !oi.ModTime.IsZero() && oi.ModTime.After(now.Add(-BusyWindow)) {
			return fmt.Sprintf("written to within the last %v (%s): a backup-push may be running", BusyWindow, stamp(oi.ModTime))
		}
	}
	return ""
}

func missing(bp BackupPlan) string {
	if bp.MissingWAL == "" {
		return "WAL"
	}
	return bp.MissingWAL
}

// finish fills in the objects of each deleted backup and plans the WAL.
func finish(inv Inventory, plan Plan) (Plan, error) {
	for i := range plan.Backups {
		bp := &plan.Backups[i]
		if bp.Delete {
			bp.Objects = backupObjects(inv, *bp)
			for _, oi := range bp.Objects {
				bp.Bytes += oi.Size
			}
		}
	}
	w, err := planWAL(inv, plan)
	if err != nil {
		return Plan{}, err
	}
	plan.WAL = w
	plan.Partials = planPartials(inv, w)
	plan.inv = &inv
	return plan, nil
}

// backupObjects orders a backup's objects for deletion: walvault's
// manifest first, then the parts and backup_manifest, the keep marks last.
func backupObjects(inv Inventory, bp BackupPlan) []storage.ObjectInfo {
	manifestKey := repository.BackupManifestKey(bp.ID)
	var manifest *storage.ObjectInfo
	var parts, marks []storage.ObjectInfo
	for _, oi := range inv.Objects[bp.ID] {
		switch _, isMark := repository.ParseMarkKey(oi.Key); {
		case oi.Key == manifestKey:
			oi := oi
			manifest = &oi
		case isMark:
			marks = append(marks, oi)
		default:
			parts = append(parts, oi)
		}
	}
	if manifest == nil && bp.Manifest != nil {
		// Listed by the catalog but not by our own listing (a race): it
		// still goes first.
		manifest = &storage.ObjectInfo{Key: manifestKey}
	}
	out := make([]storage.ObjectInfo, 0, len(parts)+len(marks)+1)
	if manifest != nil {
		out = append(out, *manifest)
	}
	return append(append(out, parts...), marks...)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func ordinal(n int) string {
	switch {
	case n == 1:
		return "the"
	case n%10 == 2 && n%100 != 12:
		return fmt.Sprintf("the %dnd", n)
	case n%10 == 3 && n%100 != 13:
		return fmt.Sprintf("the %drd", n)
	case n%10 == 1 && n%100 != 11:
		return fmt.Sprintf("the %dst", n)
	}
	return fmt.Sprintf("the %dth", n)
}
