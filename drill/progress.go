package drill

import "github.com/walvault/walvault/internal/progress"

// showReplay shows the wait for the temporary server's recovery while
// wait runs (how long replay may take depends on the WAL since the
// backup, which nothing says in advance: the bar shows the time spent).
func (d *drill) showReplay(backupID string, wait func() error) error {
	task := d.opts.Progress.Start(d.log, progress.Spec{Label: "drill: replaying WAL", Message: "drill: waiting for recovery",
		Attrs: []any{"backup_id", backupID}})
	err := wait()
	task.Done(err == nil)
	return err
}
