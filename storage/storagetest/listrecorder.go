package storagetest

import (
	"context"
	"slices"
	"sync"

	"github.com/walvault/walvault/storage"
)

// ListRecorder passes every call to Backend and records the prefix of each
// List, so a test can tell what a command listed.
type ListRecorder struct {
	storage.Backend
	mu       sync.Mutex
	prefixes []string
}

func (r *ListRecorder) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	r.mu.Lock()
	r.prefixes = append(r.prefixes, prefix)
	r.mu.Unlock()
	return r.Backend.List(ctx, prefix, fn)
}

// Prefixes returns the prefixes listed so far, in call order.
func (r *ListRecorder) Prefixes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.prefixes)
}
