package storagetest

import (
	"context"
	"slices"
	"sync"

	"github.com/walvault/walvault/storage"
)

// ListRecorder passes every call to Backend and records the prefix of each
// List, so a test can tell what a command listed, and the keys listings
// started after (storage.ListAfter, which reads from there on only).
type ListRecorder struct {
	storage.Backend
	mu       sync.Mutex
	prefixes []string
	afters   []string
}

func (r *ListRecorder) ListAfter(ctx context.Context, prefix, after string, fn func(storage.ObjectInfo) error) error {
	r.mu.Lock()
	r.afters = append(r.afters, after)
	r.mu.Unlock()
	return storage.ListAfter(ctx, r.Backend, prefix, after, fn)
}

// Afters returns the keys listings started after, in call order.
func (r *ListRecorder) Afters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.afters)
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
