//go:build !unix

package restore

import (
	"context"
	"errors"
	"time"
)

var errNoPrefetch = errors.New("prefetch is not supported on this platform")

func lockPrefetch(string) (func(), error) { return nil, errNoPrefetch }

// prefetchBusy: without a lock, never start a prefetcher.
func prefetchBusy(string) bool { return true }

// StartDetached is not supported here.
func StartDetached(string, []string, string) error { return errNoPrefetch }

// markInFlight: no prefetcher runs here.
func markInFlight(string) (func(), error) { return nil, errNoPrefetch }

// waitInFlight: nothing is ever in flight.
func waitInFlight(context.Context, string, time.Duration) bool { return true }
