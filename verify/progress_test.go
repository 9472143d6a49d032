package verify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestFullShowsProgress: --full reports the bytes it read against the
// total the inventory promised (every part and WAL object), and only
// --full does.
func TestFullShowsProgress(t *testing.T) {
	f := newFixture(t)
	slow := storagetest.NewFault(f.b) // reads take a while: progress lines come in between
	slow.Delay(storagetest.OpGet, func(string) bool { return true }, 20*time.Millisecond)
	for _, full := range []bool{true, false} {
		var logs testenv.SyncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		out := progress.New(&bytes.Buffer{}, progress.Options{Interval: time.Millisecond})
		r, err := Run(context.Background(), slow, Options{Full: full, Concurrency: 3, Log: log, Progress: out})
		if err != nil || !r.OK {
			t.Fatalf("full=%v: verify: %v", full, err)
		}
		got := logs.String()
		if !full {
			if strings.Contains(got, "verify progress") {
				t.Errorf("verify without --full shows progress:\n%s", got)
			}
			continue
		}
		want := fmt.Sprintf("total=%d", r.Summary.BytesRead)
		if !strings.Contains(got, `msg="verify progress"`) || !strings.Contains(got, want) {
			t.Errorf("--full progress lacks verify progress lines with %s (every object read):\n%s", want, got)
		}
	}
}
