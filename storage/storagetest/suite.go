package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// Options tune the suite to a backend. The zero value suits a backend
// without Object Lock.
type Options struct {
	// LargeObjectSize is the size of the streamed large round trips. 0
	// means 110 MiB (more than 100 MiB, and many S3 multipart parts), or
	// 16 MiB under go test -short. Negative skips the large cases.
	LargeObjectSize int64
	// ListPaginationCount is how many keys the pagination case lists. 0
	// means 1100, which crosses S3's 1000-key page.
	ListPaginationCount int
	// ObjectLock says the backend supports Put with Retention. When false,
	// the suite checks that such a Put fails with storage.ErrUnsupported
	// and stores nothing.
	ObjectLock bool
	// RetentionPeriod is how far in the future the Object Lock case sets
	// retain-until (GOVERNANCE mode). 0 means one minute.
	RetentionPeriod time.Duration
	// Hide, when set, says the backend keeps versions (storage.Versioned)
	// and hides key, given the backend under test, behind a delete marker
	// the way a DELETE without a version id does on a versioned bucket.
	// The Versioned cases then run.
	Hide func(t *testing.T, b storage.Backend, key string)
	// ReadsHidden says the backend under test reads through delete
	// markers (storage.ReadHidden is in its stack): a hidden key is then
	// still served by Get, Stat and List.
	ReadsHidden bool
	// Concurrency is the number of racing puts of one key, and of workers
	// uploading the list fixtures (at least 16 for pagination). 0 means 8.
	Concurrency int
	// Timeout bounds each case. 0 means 5 minutes.
	Timeout time.Duration
}

// DefaultLargeObjectSize is LargeObjectSize's default outside -short.
const DefaultLargeObjectSize = 110 << 20

func (o Options) withDefaults() Options {
	if o.LargeObjectSize == 0 {
		o.LargeObjectSize = DefaultLargeObjectSize
		if testing.Short() {
			o.LargeObjectSize = 16 << 20
		}
	}
	if o.ListPaginationCount == 0 {
		o.ListPaginationCount = 1100
	}
	if o.RetentionPeriod == 0 {
		o.RetentionPeriod = time.Minute
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	return o
}

// suite is what every case receives: the backend under test, a context
// bounded by Options.Timeout, and the options.
type suite struct {
	b    storage.Backend
	ctx  context.Context
	opts Options
}

// testCase is one subtest.
type testCase struct {
	name string
	run  func(t *testing.T, s *suite)
}

// Run runs every conformance case in its own subtest, each against a fresh
// backend from newBackend. newBackend gives an empty, isolated repository and
// registers its own cleanup; Run closes the backend after the case.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	for _, tc := range cases(opts) {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			if b == nil {
				t.Fatal("newBackend returned nil")
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: got %v, want nil", err)
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), opts.Timeout)
			defer cancel()
			tc.run(t, &suite{b: b, ctx: ctx, opts: opts})
		})
	}
}

func cases(opts Options) []testCase {
	cs := []testCase{
		{"RoundTrip/Small", testRoundTripSmall},
		{"RoundTrip/Empty", testRoundTripEmpty},
		{"RoundTrip/Binary", testRoundTripBinary},
	}
	if opts.LargeObjectSize > 0 {
		cs = append(cs,
			testCase{"RoundTrip/LargeUnknownSize", func(t *testing.T, s *suite) { testRoundTripLarge(t, s, -1) }},
			testCase{"RoundTrip/LargeKnownSize", func(t *testing.T, s *suite) { testRoundTripLarge(t, s, s.opts.LargeObjectSize) }},
		)
	}
	cs = append(cs,
		testCase{"Stat", testStat},
		testCase{"IfNotExists/New", testIfNotExistsNew},
		testCase{"IfNotExists/Existing", testIfNotExistsExisting},
		testCase{"IfNotExists/Race", testIfNotExistsRace},
		testCase{"Replace", testReplace},
		testCase{"NotFound", testNotFound},
		testCase{"Delete", testDelete},
		testCase{"InvalidKeys", testInvalidKeys},
		testCase{"List/Prefix", testListPrefix},
		testCase{"List/Pagination", testListPagination},
		testCase{"List/After", testListAfter},
		testCase{"List/EarlyStop", testListEarlyStop},
		testCase{"List/Cancelled", testListCancelled},
		testCase{"List/CancelledDuring", testListCancelledDuring},
		testCase{"FailedPut/New", func(t *testing.T, s *suite) { testFailedPut(t, s, false) }},
		testCase{"FailedPut/NewIfNotExists", func(t *testing.T, s *suite) { testFailedPut(t, s, true) }},
		testCase{"FailedPut/AfterManyBytes", testFailedPutLarge},
		testCase{"FailedPut/KeepsOld", testFailedPutKeepsOld},
		testCase{"FailedPut/Cancelled", testCancelledPut},
		testCase{"FailedPut/CancelledMidway", testCancelledPutMidway},
	)
	if opts.ObjectLock {
		cs = append(cs, testCase{"Retention/Locked", testRetentionLocked})
	} else {
		cs = append(cs, testCase{"Retention/Unsupported", testRetentionUnsupported})
	}
	if opts.Hide != nil {
		cs = append(cs, testCase{"Versioned/Hidden", testHidden}, testCase{"Versioned/ListHidden", testListHidden}, testCase{"Versioned/Versions", testVersions})
	}
	return cs
}

// Inner finds the backend of type T in b or among the backends its
// decorators wrap (storage.Unwrapper): a test's Hide reaches the bare
// backend under a stack with it.
func Inner[T storage.Backend](b storage.Backend) (T, bool) { return storage.As[T](b) }
