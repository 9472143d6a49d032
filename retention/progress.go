package retention

import "github.com/walvault/walvault/internal/progress"

// showApply starts showing Apply's work (opts.Progress): objects deleted,
// and uploads aborted, of all the plan holds. Objects a lock or a kept
// backup spares are not done, so a run that ends short of the total says
// so on its bar until its end.
func showApply(plan Plan, opts Options) *progress.Task {
	total := len(plan.WAL.Delete) + len(plan.Partials.Delete) + len(plan.Uploads)
	for _, bp := range plan.Backups {
		if bp.Delete {
			total += len(bp.Objects)
		}
	}
	return opts.Progress.Start(opts.log(), progress.Spec{Label: "delete", Message: "delete progress", Total: int64(total), Objects: true})
}
