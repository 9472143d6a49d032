package repository_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// TestProveCapabilities: the Versity gateway the suites run on, and
// MinIO, pass the probe, with and without a lock mode, on a bucket with
// Object Lock; a bucket without it is refused when a lock mode is set,
// before any identity is written.
func TestProveCapabilities(t *testing.T) {
	t.Run("Versity", func(t *testing.T) { testProveCapabilities(t, testenv.StartVersity(t)) })
	t.Run("MinIO", func(t *testing.T) { testProveCapabilities(t, testenv.StartMinIO(t)) })
}

func testProveCapabilities(t *testing.T, v *testenv.S3Server) {
	v.UseAsAWSChain(t)
	n := 0
	bucket := func(objectLock bool) *s3.Backend {
		n++
		name := fmt.Sprintf("wv-probe-%d", n)
		v.CreateBucket(t, name, objectLock)
		b, err := s3.New(t.Context(), s3.Config{Endpoint: v.Endpoint, PathStyle: true, Bucket: name, Prefix: "repo"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	for _, tc := range []struct {
		name       string
		objectLock bool
		lock       repository.LockPolicy
	}{
		{"plain bucket, no lock", false, repository.LockPolicy{}},
		{"lock bucket, no lock", true, repository.LockPolicy{}},
		{"lock bucket, governance", true, repository.LockPolicy{Mode: storage.Governance, Days: 1}},
		{"lock bucket, compliance", true, repository.LockPolicy{Mode: storage.Compliance, Days: 1}},
	} {
		b := bucket(tc.objectLock)
		rep, err := repository.ProveCapabilities(t.Context(), b, repository.NewProbe("db-1", time.Now()), tc.lock)
		if err != nil {
			t.Errorf("%s: got %v, want nil", tc.name, err)
			continue
		}
		if tc.lock.Enabled() && (!errors.Is(rep.DeleteErr, storage.ErrLocked) || rep.RetainUntil.IsZero()) {
			t.Errorf("%s: got %+v, want a locked probe whose delete was refused", tc.name, rep)
		}
		if !tc.lock.Enabled() && rep.DeleteErr != nil {
			t.Errorf("%s: probe not deleted: %v", tc.name, rep.DeleteErr)
		}
	}

	b := bucket(false)
	want := repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "db-1", time.Now()).WithLock(governance1)
	_, err := repository.EnsureProvenIdentity(t.Context(), b, want, governance1.Retention(time.Now()), time.Time{})
	var refused *repository.CapabilityError
	if !errors.As(err, &refused) || refused.Capability != repository.CapWrite || !strings.Contains(err.Error(), b.Location()) {
		t.Fatalf("lock mode on a bucket without Object Lock: got %v, want a refused write naming %s", err, b.Location())
	}
	t.Logf("refused: %v", err)
	if _, err := b.Stat(t.Context(), repository.IdentityKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%s) after the refusal: got %v, want ErrNotFound", repository.IdentityKey, err)
	}
}
