package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/walvault/walvault/storage"
)

// TestRepairFileRepository: a directory keeps no old versions, so repair
// has nothing to do and says so.
func TestRepairFileRepository(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	for _, args := range [][]string{{"walvault", "repair"}, {"walvault", "repair", "--dry-run"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != exitOK {
			t.Fatalf("%v: exit %d, want 0\n%s%s", args, code, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), "nothing to repair") {
			t.Errorf("%v: got %q, want it to say there is nothing to repair", args, out.String())
		}
	}
}

func TestLockHint(t *testing.T) {
	unsupported := fmt.Errorf("put walvault.json: %w: bucket has no Object Lock", storage.ErrUnsupported)
	locked := lockSettings{LockMode: storage.Governance, LockDays: 1}
	got := lockHint(unsupported, locked, "s3://bkt/p")
	for _, want := range []string{"lock-mode governance", "s3://bkt/p", "enable Object Lock on the bucket (when creating it", "or set lock-mode off"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("lockHint: got %q, want it to contain %q", got, want)
		}
	}
	if !errors.Is(got, storage.ErrUnsupported) {
		t.Errorf("lockHint: got %v, want it to keep wrapping storage.ErrUnsupported", got)
	}
	other := errors.New("network down")
	if got := lockHint(other, locked, "s3://bkt/p"); got != other {
		t.Errorf("lockHint of another error: got %v, want it unchanged", got)
	}
	if got := lockHint(unsupported, lockSettings{}, "s3://bkt/p"); got != unsupported {
		t.Errorf("lockHint without lock settings: got %v, want it unchanged", got)
	}
}
