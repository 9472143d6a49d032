package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// PlanUploads sets plan.Uploads to the incomplete uploads under the
// repository (S3 multipart uploads neither completed nor aborted, file://
// temp files) that started more than olderThan before plan.Now; Apply
// aborts them. They hold no object, only storage that costs until it is
// freed. olderThan keeps the uploads of a push in progress out: the CLI
// passes storage.StaleUploadAge (an hour); 0 takes every one. A backend
// without such uploads leaves the plan as it is.
func PlanUploads(ctx context.Context, b storage.Backend, plan *Plan, olderThan time.Duration, opts Options) error {
	plan.UploadAge = olderThan
	return opts.call(ctx, func(ctx context.Context) error {
		stale, _, err := storage.StaleUploads(ctx, b, "", olderThan, plan.Now)
		if err != nil {
			return fmt.Errorf("look for incomplete uploads: %w", err)
		}
		plan.Uploads, _ = repository.OwnedUploads(stale) // never another writer's
		return nil
	})
}

// abortUploads aborts the uploads, each under opts.CallTimeout, and
// returns how many it aborted (or found gone).
func abortUploads(ctx context.Context, b storage.Backend, uploads []storage.Upload, opts Options) (int, error) {
	if len(uploads) == 0 {
		return 0, nil
	}
	u, ok := storage.AsUploads(b)
	if !ok {
		return 0, fmt.Errorf("%s keeps no incomplete uploads to abort", b.Location())
	}
	aborted := 0
	for _, up := range uploads {
		if err := opts.call(ctx, func(ctx context.Context) error { return u.AbortUpload(ctx, up) }); err != nil {
			return aborted, err
		}
		aborted++
		opts.task.Add(1)
	}
	if aborted > 0 {
		opts.log().Info("incomplete uploads aborted", "uploads", aborted)
	}
	return aborted, nil
}
