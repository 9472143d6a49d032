package basebackup

import (
	"time"

	"github.com/walvault/walvault/internal/progress"
)

// progressLogEvery is how often the wait for the backup's WAL is logged.
const progressLogEvery = 5 * time.Second

// waitForStart says that BASE_BACKUP waits for PostgreSQL's checkpoint,
// and of which kind, and shows the wait until the backup starts (the
// caller ends the task returned). A spread checkpoint may take minutes
// (checkpoint_timeout x checkpoint_completion_target), during which
// nothing else would be said.
func waitForStart(opts Options) *progress.Task {
	how := "fast: an immediate checkpoint"
	if opts.Checkpoint == "spread" {
		how = "spread: PostgreSQL's next checkpoint, which may take up to checkpoint_timeout x checkpoint_completion_target; --checkpoint fast starts at once, at the cost of a burst of I/O"
	}
	opts.Log.Info("waiting for PostgreSQL to start the backup after a "+opts.Checkpoint+" checkpoint", "checkpoint", opts.Checkpoint, "note", how)
	return opts.Progress.Start(opts.Log, progress.Spec{
		Label:     "waiting for a " + opts.Checkpoint + " checkpoint",
		Message:   "waiting for PostgreSQL's checkpoint",
		Attrs:     []any{"checkpoint", opts.Checkpoint},
		Transient: true,
	})
}
