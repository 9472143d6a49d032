package restore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/wal/waltest"
)

// TestRestoreGuard: a restored server's segment that creates a tablespace
// where another cluster's version directory is, even empty (the live
// server's, restoring a backup older than the tablespace on the database
// host), is refused, dest removed (explore23d F5); an absent or empty
// location, one this data directory already links to (a recovery
// restarted after the replay), and a drop pass.
func TestRestoreGuard(t *testing.T) {
	live := func(t *testing.T) string {
		loc := t.TempDir()
		if err := os.MkdirAll(filepath.Join(loc, "PG_15_202209061", "16384"), 0o700); err != nil {
			t.Fatal(err)
		}
		return loc
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, dataDir string) waltest.Record
		refused bool
	}{
		{"another cluster's tablespace", func(t *testing.T, _ string) waltest.Record {
			return waltest.TablespaceCreate(16390, live(t))
		}, true},
		{"a missing location", func(t *testing.T, _ string) waltest.Record {
			return waltest.TablespaceCreate(16390, "/nonexistent/ts")
		}, false},
		{"an empty location", func(t *testing.T, _ string) waltest.Record {
			return waltest.TablespaceCreate(16390, t.TempDir())
		}, false},
		{"an empty version directory (a live tablespace not used yet: explore23f F1)", func(t *testing.T, _ string) waltest.Record {
			loc := t.TempDir()
			if err := os.Mkdir(filepath.Join(loc, "PG_15_202209061"), 0o700); err != nil {
				t.Fatal(err)
			}
			return waltest.TablespaceCreate(16390, loc)
		}, true},
		{"another major's version directory", func(t *testing.T, _ string) waltest.Record {
			loc := t.TempDir()
			if err := os.Mkdir(filepath.Join(loc, "PG_16_202307071"), 0o700); err != nil {
				t.Fatal(err)
			}
			return waltest.TablespaceCreate(16390, loc)
		}, true},
		{"replayed here before", func(t *testing.T, dataDir string) waltest.Record {
			loc := live(t)
			if err := os.Symlink(loc, filepath.Join(dataDir, "pg_tblspc", "16390")); err != nil {
				t.Fatal(err)
			}
			return waltest.TablespaceCreate(16390, loc)
		}, false},
		{"a drop", func(t *testing.T, _ string) waltest.Record {
			return waltest.TablespaceDrop(16390)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, dataDir, dest := drillScratch(t)
			name, seg := walWith(t, tc.setup(t, dataDir))
			hand(t, dest, seg)
			_, err := restore.RestoreGuard{}.Check(name, dest)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Check: %v, want the segment let through", err)
				}
				return
			}
			if !errors.Is(err, restore.ErrTablespaceGuard) || !strings.Contains(err.Error(), "another cluster's tablespace directory") || !strings.Contains(err.Error(), "Restore on another host") {
				t.Fatalf("Check: %v, want a refusal naming another cluster's files and the way out", err)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dest after the refusal: %v, want it removed", err)
			}
		})
	}
}
