package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// stagedFixture is a backup whose base.tar spans parts of several chunks
// (partChunk), so a part's first chunks reach the extractor before the
// part's sha256 is known: only staging keeps them out of sight.
func stagedFixture(t *testing.T) (entries []tarEntry, partSize int, ends map[string]int64) {
	t.Helper()
	var extra []tarEntry
	for i := range 24 {
		extra = append(extra, tarEntry{name: fmt.Sprintf("base/1/%d", 20000+i), body: randomRaw(partChunk*2/5 + i)})
	}
	entries = baseEntries(extra...)
	// Where each entry ends in the raw stream, as extraction counts it.
	cr := &countingReader{r: bytes.NewReader(buildTar(t, entries))}
	tr := tar.NewReader(cr)
	ends = map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			t.Fatal(err)
		}
		ends[path.Clean(h.Name)] = cr.n
	}
	return entries, 3 * partChunk, ends
}

// visibleFiles reads every regular file in dir outside the staging
// directory.
func visibleFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walk (the staging directory's files)
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == stagingDir {
			return filepath.SkipDir
		}
		if rel == pgManifestPartial {
			return nil // verified, and hidden until the archives are
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = data
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", dir, err)
	}
	return out
}

// TestRestoreNeverShowsUnverifiedFiles: whenever extraction makes files
// visible, and at the moment a damaged part fails the restore, every file
// in the target is complete, has the backup's content, and ends in a part
// whose sha256 matched. With each verification mode: staging does not rely
// on the manifest check.
func TestRestoreNeverShowsUnverifiedFiles(t *testing.T) {
	t.Parallel()
	entries, partSize, ends := stagedFixture(t)
	bodies := map[string][]byte{}
	for _, e := range entries {
		if e.typ == 0 {
			bodies[e.name] = e.body
		}
	}
	bodies[pgControlPartial] = bodies[pgControlName]
	ends[pgControlPartial] = ends[pgControlName]

	for _, mode := range []VerifyMode{VerifyStream, VerifyPGVerifyBackup} {
		for _, bad := range []int{-1, 0, 2} {
			t.Run(fmt.Sprintf("%s/damaged part %d", mode, bad), func(t *testing.T) {
				t.Parallel()
				b := newFixtureRepo(t)
				m := storeFixture(t, b, fixture{id: fixtureID, partSize: partSize, archives: []fixtureArchive{{name: baseArchive, entries: entries}},
					tamper: func(a string, seq int, raw []byte) []byte {
						if seq == bad {
							raw[len(raw)-100] ^= 0xFF // in the part's last chunk
						}
						return raw
					}})
				if n := len(m.Archives[0].Parts); n < 4 {
					t.Fatalf("fixture base.tar has %d parts, want at least 4", n)
				}
				badStart := int64(bad * partSize)
				opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
				opts.Verify = mode
				var mu sync.Mutex
				observed, failedVisible := 0, -1
				opts.observe = func(failed bool) {
					mu.Lock()
					defer mu.Unlock()
					visible := visibleFiles(t, opts.DataDir)
					for name, data := range visible {
						want, ok := bodies[name]
						if !ok || !bytes.Equal(data, want) {
							t.Errorf("%s is visible with %d bytes that are not the backup's file (failed %v)", name, len(data), failed)
						}
						if failed && bad >= 0 && ends[name] > badStart {
							t.Errorf("%s is visible at the failure, but ends at byte %d, in or after the damaged part (from byte %d)", name, ends[name], badStart)
						}
					}
					if failed {
						failedVisible = len(visible)
					} else {
						observed++
					}
				}
				_, err := RestoreBackup(context.Background(), b, opts)
				if bad < 0 {
					if err != nil {
						t.Fatalf("RestoreBackup: %v", err)
					}
					if observed < 2 {
						t.Errorf("files were made visible %d times, want many (once a part verifies)", observed)
					}
					if _, err := os.Lstat(filepath.Join(opts.DataDir, stagingDir)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("staging directory after the restore: %v, want it gone", err)
					}
					if got := visibleFiles(t, opts.DataDir); !bytes.Equal(got["base/1/20023"], bodies["base/1/20023"]) {
						t.Errorf("base/1/20023 after the restore: %d bytes, want the backup's", len(got["base/1/20023"]))
					}
					return
				}
				badKey := m.Archives[0].Parts[bad].Key
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), badKey) {
					t.Fatalf("RestoreBackup: %v; want ErrCorrupt naming %s", err, badKey)
				}
				switch {
				case failedVisible < 0:
					t.Errorf("the failure was not observed")
				case bad == 0 && failedVisible != 0:
					t.Errorf("%d files visible when the first part failed, want none", failedVisible)
				case bad > 0 && failedVisible < 3:
					t.Errorf("%d files visible when part %d failed, want the verified parts' files", failedVisible, bad)
				}
				assertLeftAsBefore(t, opts.DataDir, false, 0)
			})
		}
	}
}
