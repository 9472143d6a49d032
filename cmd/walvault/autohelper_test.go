package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
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

// TestForwardedSettings: a command started by wal-fetch gets --config and
// the settings it reads that wal-fetch's command line gave, and nothing
// else: what the environment gave it inherits, and as a flag it would beat
// the settings file restore wrote.
func TestForwardedSettings(t *testing.T) {
	t.Setenv("WALVAULT_COMPRESSION", "zstd")
	var got []string
	app := &cli.App{
		Writer: io.Discard, ErrWriter: io.Discard,
		Commands: []*cli.Command{{
			Name:  "probe",
			Flags: settingFlags(&walFetchOptions{}),
			Action: func(c *cli.Context) error {
				got = forwardedSettings(c, &walPrefetchOptions{})
				return nil
			},
		}},
	}
	args := []string{"walvault", "probe", "--config=/etc/w.yaml", "--repo", "file:///r", "--prefetch=3"}
	if err := app.RunContext(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	want := []string{"--config=/etc/w.yaml", "--repo=file:///r"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("forwarded %q, want %q (prefetch is not wal-prefetch's; what was not given, or came from the environment, is not forwarded)", got, want)
	}
}
