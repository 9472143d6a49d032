package archive_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestPushRefusesIncapableStorage: the first push into a new repository on
// a storage that silently overwrites, or has no Object Lock while a lock
// mode is set, fails with one line naming the repository and the
// capability, and writes nothing there: neither the identity nor the file.
func TestPushRefusesIncapableStorage(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	segment, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	history, _ := writeHistory(t, t.TempDir(), "00000002.history", "1\t0/3000000\tno recovery target specified\n")
	for _, tc := range []struct {
		name string
		b    func() storage.Backend
		lock repository.LockPolicy
		want repository.Capability
	}{
		{"silent overwrite", func() storage.Backend { return storagetest.Overwriting{Backend: mem.New()} }, repository.LockPolicy{}, repository.CapConditionalCreate},
		{"no Object Lock", func() storage.Backend {
			f := storagetest.NewFault(mem.New())
			f.Fail(storagetest.OpPut, storagetest.AnyKey, storage.ErrUnsupported)
			return f
		}, governance7, repository.CapWrite},
	} {
		for _, path := range []string{segment, history} {
			b := tc.b()
			o := opts(repository.LZ4)
			o.Lock = tc.lock
			_, err := archive.Push(context.Background(), b, path, o)
			var refused *repository.CapabilityError
			if !errors.As(err, &refused) || refused.Capability != tc.want || !strings.Contains(err.Error(), b.Location()) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: Push(%s): got %v, want one line naming %s and %q", tc.name, path, err, b.Location(), tc.want)
			}
			var left []string
			if err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error { left = append(left, oi.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("%s: Push(%s) left %v in the repository, want nothing", tc.name, path, left)
			}
		}
	}
}
