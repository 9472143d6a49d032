package verify

import (
	"context"
	"io"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// showFull shows --full's reading (opts.Progress): the stored bytes read
// against what the inventory says there is to read (the backups' parts
// and the WAL objects; partials read at the end grow the total). From
// then on s reads through the task; the caller ends it.
func (s *scan) showFull(inv *repository.Inventory) *progress.Task {
	var total int64
	for _, bk := range inv.Backups {
		if m := bk.Manifest; m != nil {
			total += m.PGManifest.StoredSize
			for _, a := range m.Archives {
				for _, p := range a.Parts {
					total += p.StoredSize
				}
			}
		}
	}
	for _, o := range inv.WALObjects {
		if !o.Hidden {
			total += o.Size
		}
	}
	task := s.opts.Progress.Start(s.opts.Log, progress.Spec{Label: "verify --full", Message: "verify progress", Total: total})
	if task != nil {
		s.b = storage.WrapReads(s.b, func(_ context.Context, r io.Reader) io.Reader { return task.Reader(r) })
	}
	return task
}
