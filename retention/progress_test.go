package retention

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/internal/progress"
)

// TestApplyShowsProgress: delete --confirm counts the objects it deleted
// of all the plan holds; a run that stops leaves its bar where it stopped.
func TestApplyShowsProgress(t *testing.T) {
	r, _ := testRepo(t)
	r.failAfter = 5
	var screen bytes.Buffer
	out := progress.New(&screen, progress.Options{Terminal: true, Width: 120})
	_, err := Apply(context.Background(), r, planNow(t, r, "REDUNDANCY 2"), Options{Progress: out})
	if !errors.Is(err, errCrash) {
		t.Fatalf("Apply: %v, want the simulated crash", err)
	}
	lines := strings.Split(screen.String(), "\r\x1b[K")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "delete [") || !strings.Contains(last, " 5/13 ") || !strings.HasSuffix(last, "\n") {
		t.Errorf("bar after 5 of 13 deletes: %q", last)
	}
}
