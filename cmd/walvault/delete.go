package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/retention"
	"github.com/walvault/walvault/storage"
)

// deleteOptions are the settings and flags of delete.
type deleteOptions struct {
	Config
	decryptSettings
	Retain  string // parsed by the retention package
	Timeout time.Duration
	Backup  string
	Confirm bool
	JSON    bool
	policy  retention.Policy // from Retain, when Backup is not given
}

func (o *deleteOptions) bind(b *binder) {
	b.add("retain", func(v string) error { o.Retain = v; return nil })
	o.decryptSettings.bind(b)
	bindTimeout(b, &o.Timeout, "deadline for each delete, retries included; reading what the repository holds gets ten times as long")
}

// validate runs once the settings are resolved (the policy may come from
// the environment or the config file), before the repository is opened.
func (o *deleteOptions) validate() (err error) {
	if o.Backup != "" {
		return repository.ValidateBackupID(o.Backup)
	}
	if o.Retain == "" {
		return errors.New(`delete needs a retention policy: --retain "REDUNDANCY n" or --retain "RECOVERY WINDOW OF n DAYS" (or WALVAULT_RETAIN, or retain in the config file), or --backup ID`)
	}
	if o.policy, err = retention.ParsePolicy(o.Retain); err != nil {
		return fmt.Errorf("--retain: %w", err)
	}
	return nil
}

func deleteCommand() *cli.Command {
	var opts deleteOptions
	return &cli.Command{
		Name:  "delete",
		Usage: "apply retention: delete the backups and WAL a policy no longer needs (a dry run unless --confirm)",
		Description: `Policies (--retain, WALVAULT_RETAIN or "retain" in the config file; any case):

   REDUNDANCY n                keep the n newest DONE backups (backups marked
                               keep come on top and do not count)
   RECOVERY WINDOW OF n DAYS   keep what a restore to any point of the last n
                               days needs: every backup that stopped within
                               the window, plus the newest one before it

Never deleted: the newest DONE backup; a backup marked keep (backup-mark);
a WAITING_FOR_WALS backup newer than the oldest kept DONE backup; an
INCOMPLETE one newer than the newest DONE backup or written to within the
last hour (a backup-push may be running); any WAL from the start of the oldest
kept backup on, on every timeline; timeline history files. With no DONE
backup, nothing is deleted at all, except superseded partials (below).

wal-receive's partial segments (partial/): a partial whose complete segment
(same timeline and number) is archived is superseded and always deleted; any
other partial is deleted only when its segment lies wholly before the start
of the oldest kept backup, like archived WAL. So the newest partial of a
segment not archived yet, from that start on, is never deleted: it may hold
the last WAL the cluster wrote.

Without --confirm, delete prints what it would delete and why, and deletes
nothing. With --confirm, each backup's walvault-backup.json goes first (it
stops being a backup at once), then its parts, then its keep marks; then WAL,
oldest first; then partials, oldest first; then incomplete uploads older
than an hour (S3 multipart uploads an interrupted push left, file:// temp
files: space, never data). An interrupted delete leaves a
consistent repository (a folder without its manifest shows as INCOMPLETE) and
the next delete finishes it.
Objects still under S3 Object Lock are skipped and reported with their
retain-until date; a backup whose manifest is locked is kept whole.

--backup ID deletes that one backup under the same rules: it refuses the
newest DONE backup and a backup marked keep, and deletes WAL only when the
backup was the oldest.

While a backup is DAMAGED (walvault info ID says why and how to recover it),
delete deletes nothing. When only its parts are at fault (one missing, or of
another size than its manifest records) and they cannot be recovered,
--backup ID of it (after the incremental backups on it, newest first)
deletes it, and the policy runs again.

Examples:
   walvault delete --retain "REDUNDANCY 2"                   # dry run
   walvault delete --retain "RECOVERY WINDOW OF 7 DAYS" --confirm
   walvault delete --backup 20261101T020000Z --confirm

Exit codes: 0 done (locked objects skipped are not failures); 1 a delete or
the storage failed, or no such backup, or it is one the rules keep; 2 bad
arguments, configuration or policy.`,
		Flags: settingFlags(&opts,
			&cli.StringFlag{Name: "backup", Usage: "delete this one backup (an id from backup-list) instead of applying a policy", Destination: &opts.Backup},
			&cli.BoolFlag{Name: "confirm", Usage: "really delete; without it, only print what would be deleted", Destination: &opts.Confirm},
			jsonFlag("print the plan (and, with --confirm, what was done) as JSON", &opts.JSON),
		),
		Action: repoAction(&opts, deleteAction),
	}
}

func (o *deleteOptions) precheck(c *cli.Context) error {
	return noArgs(c, "delete takes no arguments (use --retain POLICY or --backup ID)")
}

func deleteAction(c *cli.Context, opts *deleteOptions, s *session) error {
	log, ctx, b := s.log, s.ctx, s.b
	one := opts.Backup

	// Loading the inventory lists the whole repository and reads every
	// manifest: it gets ten times the per-call timeout.
	loadCtx, cancel := context.WithTimeout(ctx, 10*opts.Timeout)
	opts.warnMode(log)
	inv, err := retention.Load(loadCtx, b, opts.Identities)
	cancel()
	if err != nil {
		return err
	}
	if inv.SegmentSize == 0 && len(inv.Backups) == 0 && len(inv.WAL) == 0 {
		// A retention job pointed at a mistyped prefix must not stay green.
		return fmt.Errorf("%s has no %s and holds no backup and no WAL: nothing was ever archived there; check the repository URL (a mistyped prefix?)", b.Location(), repository.IdentityKey)
	}
	now := time.Now()
	var plan retention.Plan
	if one != "" {
		plan, err = retention.PlanBackup(inv, one, now)
	} else {
		plan, err = retention.PlanPolicy(inv, opts.policy, now)
	}
	if err != nil {
		return err
	}
	apply := retention.Options{CallTimeout: opts.Timeout, Log: log}
	if err := retention.PlanUploads(ctx, b, &plan, storage.StaleUploadAge, apply); err != nil {
		// Not data: delete goes on without them (the credentials may lack
		// s3:ListBucketMultipartUploads).
		log.Warn("incomplete uploads are left alone: "+err.Error(), "hint", "a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes them too; see the README")
	}
	w := c.App.Writer
	// Which backups stay locked, and so the WAL they keep: the plan a
	// deleting run prints and follows is the one its dry run showed.
	if err := retention.Preview(ctx, b, &plan, apply); err != nil {
		return err
	}
	if err := retention.KeepLocked(&plan); err != nil {
		return err
	}
	if !opts.Confirm {
		if opts.JSON {
			return writeDeleteJSON(w, plan, nil, true)
		}
		printPlan(w, plan, b.Location(), true)
		return nil
	}
	if !opts.JSON {
		printPlan(w, plan, b.Location(), false)
	}
	apply.Progress = s.out
	rep, applyErr := retention.Apply(ctx, b, plan, apply)
	if opts.JSON {
		if err := writeDeleteJSON(w, plan, &rep, false); err != nil && applyErr == nil {
			return err
		}
	} else {
		printReport(w, rep)
	}
	if applyErr != nil {
		return fmt.Errorf("delete stopped: %w (the repository is consistent; run delete again once the cause is fixed)", applyErr)
	}
	return nil
}

// printPlan writes one line per backup, oldest first, and a summary of
// the WAL.
func printPlan(w io.Writer, plan retention.Plan, location string, dryRun bool) {
	mode := "deleting"
	if dryRun {
		mode = "dry run, nothing is deleted"
	}
	fmt.Fprintf(w, "retention %s on %s at %s (%s)\n", plan.Policy, location, plan.Now.UTC().Format("2006-01-02 15:04:05 UTC"), mode)
	if len(plan.Backups) == 0 {
		fmt.Fprintln(w, "no backups")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	locked := 0
	for _, bp := range plan.Backups {
		action, detail := "keep", bp.Reason
		switch {
		case bp.Delete && !bp.LockedUntil.IsZero():
			locked++
			detail += fmt.Sprintf(", but its manifest is locked until %s, so it is kept, and the WAL it needs with it", utc(bp.LockedUntil))
		case bp.Delete:
			action = "delete"
			detail += fmt.Sprintf(" [%d objects, %s]", len(bp.Objects), units.Bytes(bp.Bytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", action, bp.ID, bp.Status, detail)
	}
	tw.Flush()
	wp := plan.WAL
	if len(wp.Delete) > 0 {
		fmt.Fprintf(w, "WAL: delete %s, %s .. %s, %s: %s\n", files(len(wp.Delete)),
			wp.Delete[0].Name, wp.Delete[len(wp.Delete)-1].Name, units.Bytes(wp.Bytes), wp.Reason)
	} else {
		fmt.Fprintf(w, "WAL: delete nothing: %s\n", wp.Reason)
	}
	if n := lockedByPolicy(wp); n > 0 {
		fmt.Fprintf(w, "WAL: %s of those, written less than %d %s ago, %s still under the repository's Object Lock: skipped without asking until it ends\n",
			files(n), wp.Lock.Days, plural(wp.Lock.Days, "day", "days"), plural(n, "is", "are"))
	}
	history := ""
	if wp.History > 0 {
		history = fmt.Sprintf(" (including %d timeline history %s, never deleted)", wp.History, plural(wp.History, "file", "files"))
	}
	fmt.Fprintf(w, "WAL: keep %s, %s%s\n", files(wp.Kept), units.Bytes(wp.KeptBytes), history)
	if len(wp.Other) > 0 {
		fmt.Fprintf(w, "WAL: %d objects under wal/ are not walvault's and are left alone (first: %s)\n", len(wp.Other), wp.Other[0])
	}
	printPartialPlan(w, plan)
	printUploadPlan(w, plan, dryRun)
	if dryRun {
		n, pn := len(plan.DeletedBackups())-locked, len(plan.Partials.Delete)
		if locked > 0 {
			fmt.Fprintf(w, "WAL: the WAL the %d locked %s kept above still %s is kept too, and not counted for deletion\n",
				locked, plural(locked, "backup", "backups"), plural(locked, "needs", "need"))
		}
		switch {
		case n == 0 && len(wp.Delete) == 0 && pn == 0:
			if len(plan.Uploads) == 0 {
				fmt.Fprintln(w, "nothing to delete")
			}
		case pn == 0:
			fmt.Fprintf(w, "dry run: nothing was deleted; run again with --confirm to delete %d %s and %d WAL %s\n",
				n, plural(n, "backup", "backups"), len(wp.Delete), plural(len(wp.Delete), "file", "files"))
		default:
			fmt.Fprintf(w, "dry run: nothing was deleted; run again with --confirm to delete %d %s, %d WAL %s and %d %s\n",
				n, plural(n, "backup", "backups"), len(wp.Delete), plural(len(wp.Delete), "file", "files"), pn, plural(pn, "partial", "partials"))
		}
	}
}

// printPartialPlan summarises wal-receive's partials like the WAL: what
// goes and why, what stays. Silent when the repository has none, so that
// repositories without wal-receive print what they always did.
func printPartialPlan(w io.Writer, plan retention.Plan) {
	pp := plan.Partials
	if len(pp.Delete) > 0 {
		fmt.Fprintf(w, "partials: delete %s, %s .. %s, %s: %s\n", files(len(pp.Delete)),
			pp.Delete[0].Segment, pp.Delete[len(pp.Delete)-1].Segment, units.Bytes(pp.Bytes), pp.Reason(plan.WAL))
	}
	if n := lockedPartials(plan); n > 0 {
		fmt.Fprintf(w, "partials: %s of those, written less than %d %s ago, %s still under the repository's Object Lock: skipped without asking until it ends\n",
			files(n), plan.WAL.Lock.Days, plural(plan.WAL.Lock.Days, "day", "days"), plural(n, "is", "are"))
	}
	if pp.Kept > 0 {
		fmt.Fprintf(w, "partials: keep %s of %d %s not archived complete, %s (the newest of each is what wal-fetch serves)\n",
			files(pp.Kept), pp.Open, plural(pp.Open, "segment", "segments"), units.Bytes(pp.KeptBytes))
	}
	if len(pp.Other) > 0 {
		fmt.Fprintf(w, "partials: %d objects under %s are not walvault's and are left alone (first: %s)\n", len(pp.Other), repository.PartialPrefix, pp.Other[0])
	}
}

// printUploadPlan names the incomplete uploads delete aborts (or, in a
// dry run, would abort). Silent when there are none.
func printUploadPlan(w io.Writer, plan retention.Plan, dryRun bool) {
	n := len(plan.Uploads)
	if n == 0 {
		return
	}
	verb := "abort"
	if dryRun {
		verb = "would abort"
	}
	first := plan.Uploads[0]
	fmt.Fprintf(w, "incomplete uploads: %s %d %s older than %s, space an interrupted upload left, no data (first: %s, started %s)\n",
		verb, n, plural(n, "upload", "uploads"), plan.UploadAge, first.Key, utc(first.Started))
	if dryRun {
		fmt.Fprintf(w, "dry run: nothing was aborted; run again with --confirm to abort %s\n", plural(n, "it", "them"))
	}
}

func printReport(w io.Writer, rep retention.Report) {
	for _, br := range rep.Backups {
		switch br.Outcome {
		case retention.Deleted:
			fmt.Fprintf(w, "deleted backup %s: %d objects, %s\n", br.ID, br.Deleted, units.Bytes(br.Bytes))
		case retention.PartlyDeleted:
			fmt.Fprintf(w, "deleted backup %s but %d of its objects are locked until %s; they stay (shown as INCOMPLETE) until a later delete after that date: %d objects, %s deleted\n",
				br.ID, len(br.Locked), latest(br.Locked), br.Deleted, units.Bytes(br.Bytes))
		case retention.KeptByLock:
			fmt.Fprintf(w, "kept backup %s: its manifest is locked until %s (Object Lock); nothing of it was deleted\n", br.ID, latest(br.Locked))
		case retention.KeptByMark:
			fmt.Fprintf(w, "kept backup %s: it was marked keep meanwhile\n", br.ID)
		case retention.KeptComplete:
			fmt.Fprintf(w, "kept backup %s: its manifest appeared meanwhile (a backup-push finished)\n", br.ID)
		case retention.KeptHidden:
			fmt.Fprintf(w, "kept backup %s: its manifest is hidden behind a delete marker; run walvault repair\n", br.ID)
		default:
			fmt.Fprintf(w, "backup %s: stopped before it was done\n", br.ID)
		}
	}
	wr := rep.WAL
	if wr.Deleted > 0 {
		fmt.Fprintf(w, "deleted WAL: %s, %s .. %s, %s\n", files(wr.Deleted), wr.First, wr.Last, units.Bytes(wr.Bytes))
	}
	if len(wr.Locked) > 0 {
		byPolicy := ""
		if wr.LockedByPolicy > 0 {
			byPolicy = fmt.Sprintf("; %d of them written too recently for the repository's lock to have ended, not asked", wr.LockedByPolicy)
		}
		fmt.Fprintf(w, "skipped WAL: %s still locked, until %s at the latest (first: %s)%s\n", files(len(wr.Locked)), latest(wr.Locked), wr.Locked[0].Key, byPolicy)
	}
	if wr.Held > 0 {
		fmt.Fprintf(w, "kept WAL: %s that a backup kept above still needs\n", files(wr.Held))
	}
	if rep.Aborted > 0 {
		fmt.Fprintf(w, "aborted %d incomplete %s\n", rep.Aborted, plural(rep.Aborted, "upload", "uploads"))
	}
	pr := rep.Partials
	if pr.Deleted > 0 {
		fmt.Fprintf(w, "deleted partials: %s (%d superseded), %s .. %s, %s\n",
			files(pr.Deleted), pr.Superseded, pr.First, pr.Last, units.Bytes(pr.Bytes))
	}
	if len(pr.Locked) > 0 {
		fmt.Fprintf(w, "skipped partials: %s still locked, until %s at the latest (first: %s)\n", files(len(pr.Locked)), latest(pr.Locked), pr.Locked[0].Key)
	}
	if pr.Held > 0 {
		fmt.Fprintf(w, "kept partials: %s that a backup kept above still needs\n", files(pr.Held))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func files(n int) string { return fmt.Sprintf("%d %s", n, plural(n, "file", "files")) }

// lockedByPolicy counts the WAL objects wp deletes that the repository's
// lock policy says are still locked now (Apply skips them unasked).
func lockedByPolicy(wp retention.WALPlan) int {
	n, now := 0, time.Now()
	for _, f := range wp.Delete {
		if _, locked := wp.LockedByPolicy(f, now); locked {
			n++
		}
	}
	return n
}

// lockedPartials counts the partials the plan deletes that the
// repository's lock policy still holds (Apply skips them, as WAL).
func lockedPartials(plan retention.Plan) int {
	n, now := 0, time.Now()
	for _, p := range plan.Partials.Delete {
		if _, locked := plan.WAL.LockedByPolicy(retention.WALFile{ModTime: p.ModTime}, now); locked {
			n++
		}
	}
	return n
}

func latest(ls []retention.Locked) string {
	var t time.Time
	for _, l := range ls {
		if l.RetainUntil.After(t) {
			t = l.RetainUntil
		}
	}
	if t.IsZero() {
		return "a date the storage did not report"
	}
	return utc(t)
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// deleteJSON is the --json schema of delete; fields are only ever added.
type deleteJSON struct {
	Policy   string             `json:"policy"`
	DryRun   bool               `json:"dry_run"`
	Time     time.Time          `json:"time"`
	Backups  []deleteBackupJSON `json:"backups"`
	WAL      deleteWALJSON      `json:"wal"`
	Partials deletePartialsJSON `json:"partials"`
	Uploads  deleteUploadsJSON  `json:"incomplete_uploads"`
}

// deleteUploadsJSON: incomplete uploads older than an hour (S3 multipart
// uploads, file:// temp files), which delete aborts.
type deleteUploadsJSON struct {
	Abort   int          `json:"abort"`
	Uploads []uploadJSON `json:"uploads,omitempty"`
	Aborted *int         `json:"aborted,omitempty"` // with --confirm
}

type uploadJSON struct {
	Key     string    `json:"key"`
	ID      string    `json:"upload_id,omitempty"`
	Started time.Time `json:"started"`
}

type deleteBackupJSON struct {
	ID          string       `json:"id"`
	Status      string       `json:"status"`
	Action      string       `json:"action"` // keep or delete
	Reason      string       `json:"reason"`
	Objects     int          `json:"objects,omitempty"`
	Bytes       int64        `json:"bytes,omitempty"`
	LockedUntil *time.Time   `json:"locked_until,omitempty"`
	Outcome     string       `json:"outcome,omitempty"` // with --confirm
	Deleted     int          `json:"deleted_objects,omitempty"`
	Locked      []lockedJSON `json:"locked,omitempty"`
}

type lockedJSON struct {
	Key         string     `json:"key"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
}

type deleteWALJSON struct {
	Delete       int    `json:"delete"`
	First        string `json:"first,omitempty"`
	Last         string `json:"last,omitempty"`
	Bytes        int64  `json:"bytes"`
	Kept         int    `json:"kept"`
	KeptBytes    int64  `json:"kept_bytes"`
	History      int    `json:"history_files"`
	CutoffLSN    string `json:"cutoff_lsn,omitempty"`
	CutoffBackup string `json:"cutoff_backup,omitempty"`
	Reason       string `json:"reason"`
	appliedJSON         // with --confirm
}

// deletePartialsJSON: wal-receive's partials. First and Last are segment
// names; Keys lists every partial the plan deletes.
type deletePartialsJSON struct {
	Delete      int      `json:"delete"`
	Superseded  int      `json:"superseded"`
	First       string   `json:"first,omitempty"`
	Last        string   `json:"last,omitempty"`
	Bytes       int64    `json:"bytes"`
	Keys        []string `json:"keys,omitempty"`
	Kept        int      `json:"kept"`
	KeptBytes   int64    `json:"kept_bytes"`
	Reason      string   `json:"reason"`
	appliedJSON          // with --confirm
}

// appliedJSON is what delete --confirm did to the WAL or to the partials
// (encoding/json inlines its fields).
type appliedJSON struct {
	Deleted *int         `json:"deleted,omitempty"`
	Locked  []lockedJSON `json:"locked,omitempty"`
	// LockedByPolicy: how many of Locked were not asked (WAL written too
	// recently for the repository's lock to have ended; their
	// retain_until is that estimate).
	LockedByPolicy int `json:"locked_by_policy,omitempty"`
	Held           int `json:"held,omitempty"`
}

func applied(deleted int, locked []retention.Locked, held int) appliedJSON {
	return appliedJSON{Deleted: &deleted, Locked: lockedList(locked), Held: held}
}

func writeDeleteJSON(w io.Writer, plan retention.Plan, rep *retention.Report, dryRun bool) error {
	out := deleteJSON{Policy: plan.Policy, DryRun: dryRun, Time: plan.Now.UTC(), Backups: []deleteBackupJSON{}}
	results := map[string]retention.BackupResult{}
	if rep != nil {
		for _, br := range rep.Backups {
			results[br.ID] = br
		}
	}
	for _, bp := range plan.Backups {
		bj := deleteBackupJSON{ID: bp.ID, Status: string(bp.Status), Action: "keep", Reason: bp.Reason}
		if bp.Delete {
			bj.Action, bj.Objects, bj.Bytes = "delete", len(bp.Objects), bp.Bytes
			if !bp.LockedUntil.IsZero() {
				t := bp.LockedUntil.UTC()
				bj.LockedUntil = &t
			}
		}
		if br, ok := results[bp.ID]; ok {
			bj.Outcome, bj.Deleted, bj.Locked = string(br.Outcome), br.Deleted, lockedList(br.Locked)
		}
		out.Backups = append(out.Backups, bj)
	}
	wp := plan.WAL
	out.WAL = deleteWALJSON{Delete: len(wp.Delete), Bytes: wp.Bytes, Kept: wp.Kept, KeptBytes: wp.KeptBytes,
		History: wp.History, CutoffBackup: wp.CutoffBackup, Reason: wp.Reason}
	if len(wp.Delete) > 0 {
		out.WAL.First, out.WAL.Last = wp.Delete[0].Name.String(), wp.Delete[len(wp.Delete)-1].Name.String()
	}
	if wp.CutoffBackup != "" {
		out.WAL.CutoffLSN = wp.Cutoff.String()
	}
	if rep != nil {
		out.WAL.appliedJSON = applied(rep.WAL.Deleted, rep.WAL.Locked, rep.WAL.Held)
		out.WAL.LockedByPolicy = rep.WAL.LockedByPolicy
	}
	pp := plan.Partials
	out.Partials = deletePartialsJSON{Delete: len(pp.Delete), Superseded: pp.Superseded, Bytes: pp.Bytes,
		Kept: pp.Kept, KeptBytes: pp.KeptBytes, Reason: pp.Reason(wp)}
	for _, f := range pp.Delete {
		out.Partials.Keys = append(out.Partials.Keys, f.Key)
	}
	if len(pp.Delete) > 0 {
		out.Partials.First, out.Partials.Last = pp.Delete[0].Segment.String(), pp.Delete[len(pp.Delete)-1].Segment.String()
	}
	if rep != nil {
		out.Partials.appliedJSON = applied(rep.Partials.Deleted, rep.Partials.Locked, rep.Partials.Held)
	}
	out.Uploads.Abort = len(plan.Uploads)
	for _, u := range plan.Uploads {
		out.Uploads.Uploads = append(out.Uploads.Uploads, uploadJSON{Key: u.Key, ID: u.ID, Started: u.Started.UTC()})
	}
	if rep != nil {
		out.Uploads.Aborted = &rep.Aborted
	}
	return writeJSON(w, out)
}

func lockedList(ls []retention.Locked) []lockedJSON {
	var out []lockedJSON
	for _, l := range ls {
		lj := lockedJSON{Key: l.Key}
		if !l.RetainUntil.IsZero() {
			t := l.RetainUntil.UTC()
			lj.RetainUntil = &t
		}
		out = append(out, lj)
	}
	return out
}
