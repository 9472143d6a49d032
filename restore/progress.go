package restore

import (
	"context"
	"io"
	"log/slog"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/throttle"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// meterDownloads wraps b so that what restore downloads of backup m is
// shown (opts.Progress: the stored bytes of its parts and backup_manifest,
// against the manifest's total) and held to opts.MaxRate, all downloads
// together. The caller ends the task returned with its outcome.
func meterDownloads(b storage.Backend, opts BackupOptions, log *slog.Logger, m repository.BackupManifest) (storage.Backend, *progress.Task) {
	task := opts.Progress.Start(log, progress.Spec{Label: "restore " + m.ID, Message: "restore progress",
		Total: m.Stored, Attrs: []any{"backup_id", m.ID}})
	limit := throttle.New(opts.MaxRate)
	if task == nil && limit == nil {
		return b, nil
	}
	return storage.WrapReads(b, func(ctx context.Context, r io.Reader) io.Reader {
		return task.Reader(limit.Reader(ctx, r))
	}), task
}
