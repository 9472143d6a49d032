package check

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestRepositoryProbeCapabilities: the repository check fails, naming the
// capability, on a storage that silently overwrites or ignores the lock,
// and passes on one that honours both.
func TestRepositoryProbeCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      storage.Backend
		lock   storage.RetentionMode
		wantOK bool
		want   string
	}{
		{"silent overwrite", storagetest.Overwriting{Backend: mem.New()}, "", false, string(repository.CapConditionalCreate)},
		{"lock ignored", storagetest.LockIgnoring{Backend: mem.New()}, storage.Governance, false, string(repository.CapRetention)},
		{"no Object Lock", mustFile(t), storage.Compliance, false, "Object Lock"},
		{"lock honoured", mem.New(), storage.Compliance, true, "locked until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newChecker(t)
			c.b = tc.b
			if tc.lock != "" {
				c.opts.LockMode, c.opts.LockDays = tc.lock, 3
			}
			r := one(t, c.checkRepository(context.Background()))
			if r.OK != tc.wantOK || r.Name != NameRepository || !strings.Contains(r.Detail, tc.want) || !strings.Contains(r.Detail, tc.b.Location()) {
				t.Fatalf("got %+v, want OK %v with a detail naming %s and %q", r, tc.wantOK, tc.b.Location(), tc.want)
			}
		})
	}
}

func mustFile(t *testing.T) storage.Backend {
	t.Helper()
	_, b := newChecker(t)
	return b
}
