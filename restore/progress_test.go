package restore

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/internal/throttle"
)

// TestRestoreProgressAndMaxRate: restore shows its download against the
// backup's stored size, and MaxRate holds the download to its rate.
func TestRestoreProgressAndMaxRate(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	m := storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries(
		tarEntry{name: "base/1/big", body: bytes.Repeat([]byte("walvault "), 40000)},
	)}}})
	var logs testenv.SyncBuffer
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	opts.Progress = progress.New(&bytes.Buffer{}, progress.Options{Interval: 20 * time.Millisecond})
	// A rate at which the download takes about a second and a half.
	opts.MaxRate = max(throttle.MinBurst, m.Stored*2/3)
	start := time.Now()
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("%d stored bytes at %d bytes/s in %v", m.Stored, opts.MaxRate, elapsed)
	if want := time.Duration(float64(m.Stored) / float64(opts.MaxRate) * 0.9 * float64(time.Second)); elapsed < want {
		t.Errorf("restored %d stored bytes at max-rate %d in %v: faster than the rate allows (%v)", m.Stored, opts.MaxRate, elapsed, want)
	}
	got := logs.String()
	for _, want := range []string{`msg="restore progress" backup_id=` + m.ID, "total=" + itoa(m.Stored)} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if res.Bytes == 0 {
		t.Errorf("nothing restored")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
