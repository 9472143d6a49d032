package pg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProgram writes an executable script that prints out for --version.
func fakeProgram(t *testing.T, out string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postgres")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProgramVersion(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		out, version string
		major        int
	}{
		{"postgres (PostgreSQL) 15.10 (Debian 15.10-1)", "15.10", 15},
		{"pg_verifybackup (PostgreSQL) 17devel", "17", 17},
	} {
		major, version, err := ProgramVersion(ctx, fakeProgram(t, c.out), 10*time.Second)
		if err != nil || major != c.major || version != c.version {
			t.Errorf("%q: got %d, %q, %v; want %d, %q", c.out, major, version, err, c.major, c.version)
		}
	}
	if _, _, err := ProgramVersion(ctx, fakeProgram(t, "something else 15.1"), 10*time.Second); err == nil || !strings.Contains(err.Error(), "not a PostgreSQL version") {
		t.Errorf("a program that is not PostgreSQL's: got %v, want an error saying so", err)
	}
	if _, _, err := ProgramVersion(ctx, filepath.Join(t.TempDir(), "missing"), 10*time.Second); err == nil {
		t.Error("a missing program: want an error")
	}
}
