package main

import (
	"testing"
)

// TestMaxRateBadValues: a max-rate that is not a size above zero is one
// usage error (exit 2) naming the setting, from the flag and from the
// environment alike, before anything is read or written.
func TestMaxRateBadValues(t *testing.T) {
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	pgdata := t.TempDir()
	for _, bad := range []string{"0", "-1", "abc", "10XB"} {
		for _, args := range [][]string{
			{"backup-push", "--max-rate", bad},
			{"restore", "--pgdata", pgdata, "--max-rate=" + bad},
		} {
			code, _, stderr := runCmd(t, args...)
			oneLine(t, args, code, stderr, exitUsage, "invalid max-rate (--max-rate, WALVAULT_MAX_RATE): want bytes a second above zero")
		}
		t.Run("env "+bad, func(t *testing.T) {
			t.Setenv("WALVAULT_MAX_RATE", bad)
			code, _, stderr := runCmd(t, "backup-push")
			oneLine(t, []string{"backup-push"}, code, stderr, exitUsage, "invalid max-rate")
		})
	}
}

func TestMaxRateParsed(t *testing.T) {
	for v, want := range map[string]int64{"": 0, "50MiB": 50 << 20, "500KiB": 500 << 10, "1GB": 1e9, "1048576": 1 << 20} {
		var m maxRate
		var b binder
		m.bind(&b, "")
		if err := b.bound[0].set(v); err != nil || m.MaxRate != want {
			t.Errorf("max-rate %q: got %d, %v; want %d", v, m.MaxRate, err, want)
		}
	}
}
