package main

import (
	"context"
	"log/slog"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// openBackend opens the repository and stacks the decorators, in this one
// order: retry outermost, so every attempt goes through the whole stack.
func openBackend(ctx context.Context, cfg Config, log *slog.Logger) (storage.Backend, error) {
	b, err := open.Open(ctx, cfg.Repo, open.Options{S3: cfg.S3})
	if err != nil {
		return nil, err
	}
	return storage.WithRetry(b, storage.DefaultRetryPolicy, log), nil
}
