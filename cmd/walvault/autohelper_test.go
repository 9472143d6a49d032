package main

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClaimAutoHelperStart: of calls racing to start a helper one wins,
// none starts another while the stamp is younger than autoHelperRetry,
// and one may again once it is older.
func TestClaimAutoHelperStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(autoHelperStamp)), 0o700); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if claimAutoHelperStart(dir) {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 8 racing calls may start a helper, want 1", won.Load())
	}
	if claimAutoHelperStart(dir) {
		t.Fatal("a call right after may start a second helper")
	}
	old := time.Now().Add(-autoHelperRetry - time.Second)
	if err := os.Chtimes(filepath.Join(dir, autoHelperStamp), old, old); err != nil {
		t.Fatal(err)
	}
	if !claimAutoHelperStart(dir) {
		t.Fatalf("no call may start a helper %v after the last start", autoHelperRetry)
	}
}
