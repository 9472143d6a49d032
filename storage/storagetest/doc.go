// Package storagetest is the one conformance suite every storage.Backend
// passes. A backend's test supplies a factory and a few options:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend {
//			b, err := file.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		}, storagetest.Options{})
//	}
//
// Read suite.go first: Options, Run and the list of cases. The cases live in
// files named for what they check (roundtrip.go, conditional.go, missing.go,
// keys.go, list.go, failure.go, retention.go, versioned.go); check.go holds
// the shared assertions and readers.go the deterministic, failing and
// cancelling readers the cases stream from.
//
// fault.go is not part of the suite: Fault is the one fault-injecting
// backend the other packages' tests wrap around a real one (fail the Nth
// call, stall, delay, break bodies, hide keys, answer ErrLocked).
//
// Time: the large round trips dominate (two objects of
// Options.LargeObjectSize, 110 MiB by default, 16 MiB under -short); the
// pagination case makes Options.ListPaginationCount small Puts.
//
// Each case runs in its own subtest against a fresh backend from the factory,
// which must give an empty, isolated repository (a new directory, a new
// bucket or prefix) and release it in t.Cleanup. Run closes the backend when
// the case ends.
//
// The suite checks the contract written on storage.Backend, unhappy paths
// included: "not found" is reported as storage.ErrNotFound and nothing else
// is; IfNotExists is atomic under a race; a failed or cancelled Put leaves no
// object; List keeps lexical order and stops on cancellation. It must not
// depend on one backend's quirks: where backends legitimately differ (Object
// Lock), Options says so, never the backend's type.
package storagetest
