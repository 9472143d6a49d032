package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// extractInto extracts a tar built from entries into a fresh directory
// inside a parent, and returns both.
func extractInto(t *testing.T, entries []tarEntry, opts extractOptions) (parent, dir string, res extractResult, err error) {
	t.Helper()
	parent = t.TempDir()
	dir = filepath.Join(parent, "root")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	res, err = extractTar(context.Background(), bytes.NewReader(buildTar(t, entries)), root, opts)
	return parent, dir, res, err
}

func TestExtractRefusesEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []tarEntry
		opts    extractOptions
		wantMsg string
	}{
		{"dot-dot file", []tarEntry{{name: "../x", body: []byte("evil")}}, extractOptions{}, `"../x" contains ".."`},
		{"dot-dot inside", []tarEntry{{name: "a/../../x", body: []byte("evil")}}, extractOptions{}, `contains ".."`},
		{"harmless-looking dot-dot", []tarEntry{{name: "a/../b", body: []byte("evil")}}, extractOptions{}, `contains ".."`},
		{"absolute file", []tarEntry{{name: "/abs/x", body: []byte("evil")}}, extractOptions{}, "absolute path"},
		{"absolute directory", []tarEntry{{name: "/tmp/", typ: tar.TypeDir}}, extractOptions{}, "absolute path"},
		{"symlink out by dot-dot", []tarEntry{{name: "link", typ: tar.TypeSymlink, linkname: "../outside"}}, extractOptions{}, "outside the directory"},
		{"symlink out from a subdirectory", []tarEntry{{name: "a/b/link", typ: tar.TypeSymlink, linkname: "../../../outside"}}, extractOptions{}, "outside the directory"},
		{"absolute symlink", []tarEntry{{name: "pg_wal", typ: tar.TypeSymlink, linkname: "/var/lib/postgresql/wal"}}, extractOptions{}, "outside the directory"},
		{"symlink then a file through it", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, linkname: "../outside"},
			{name: "link/x", body: []byte("evil")},
		}, extractOptions{}, "outside the directory"},
		{"tablespace link without a tablespace", []tarEntry{{name: "pg_tblspc/16385", typ: tar.TypeSymlink, linkname: "/srv/ts"}}, extractOptions{base: true}, "no archive for that tablespace"},
		{"tablespace link outside base.tar", []tarEntry{{name: "pg_tblspc/16385", typ: tar.TypeSymlink, linkname: "/srv/ts"}}, extractOptions{tablespaceLinks: map[string]string{"16385": "/srv/ts"}}, "outside the directory"},
		{"hard link", []tarEntry{{name: "a", body: []byte("x")}, {name: "b", typ: tar.TypeLink, linkname: "a"}}, extractOptions{}, "hard link"},
		{"device", []tarEntry{{name: "dev", typ: tar.TypeChar}}, extractOptions{}, "tar type"},
		{"fifo", []tarEntry{{name: "fifo", typ: tar.TypeFifo}}, extractOptions{}, "tar type"},
		{"duplicate file", []tarEntry{{name: "a", body: []byte("x")}, {name: "a", body: []byte("y")}}, extractOptions{}, "appears twice"},
		{"file over a symlink", []tarEntry{{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, linkname: "d"}, {name: "l", body: []byte("y")}}, extractOptions{}, "appears twice"},
		{"directory over a file", []tarEntry{{name: "a", body: []byte("x")}, {name: "a/", typ: tar.TypeDir}}, extractOptions{}, "create directory a"},
		{"entry under the staging name", []tarEntry{{name: stagingDir + "/x", body: []byte("x")}}, extractOptions{}, "restore stages files under"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, _, _, err := extractInto(t, tc.entries, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("extract: got %v, want an error containing %q", err, tc.wantMsg)
			}
			// Nothing may appear beside the root.
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 || entries[0].Name() != "root" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("beside the target directory: got %q, want only root", names)
			}
		})
	}
}

// TestExtractRootBlocksSymlinkEscape: even if a symlink pointing outside
// exists in the target (planted before extraction), os.Root keeps writes
// beneath the root.
func TestExtractRootBlocksSymlinkEscape(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "root")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(dir, "planted")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tarball := buildTar(t, []tarEntry{{name: "planted/evil", body: []byte("evil")}})
	_, err = extractTar(context.Background(), bytes.NewReader(tarball), root, extractOptions{})
	if err == nil {
		t.Fatal("extract through a planted symlink: got nil, want an error")
	}
	if _, err := os.Stat(filepath.Join(parent, "evil")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file written outside the root: %v", err)
	}
}

func TestExtractBase(t *testing.T) {
	t.Parallel()
	entries := []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "backup_label", body: []byte("label")},
		{name: "tablespace_map", body: []byte("16385 /srv/ts\n"), mode: 0o640},
		{name: "postmaster.pid", body: []byte("1\n")},
		{name: "global/pg_control", body: []byte("control")}, // parent implied
		{name: "base/", typ: tar.TypeDir, mode: 0o750},
		{name: "base/1/", typ: tar.TypeDir},
		{name: "base/1/112", body: []byte("rel"), mode: 0o644},
		{name: "base/1/empty", body: nil},
		{name: "pg_tblspc/", typ: tar.TypeDir},
		{name: "pg_tblspc/16385", typ: tar.TypeSymlink, linkname: "/ignored/old"},
		{name: "base/current", typ: tar.TypeSymlink, linkname: "1"},
		{name: "base/up", typ: tar.TypeSymlink, linkname: "../global"},
	}
	_, dir, res, err := extractInto(t, entries, extractOptions{base: true, tablespaceLinks: map[string]string{"16385": "/srv/new"}})
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	if !res.backupLabel || !res.pgControl || res.files != 4 || res.bytes != int64(len("label")+len("control")+len("rel")) {
		t.Errorf("result: got %+v", res)
	}
	if res.tablespaceMap == nil || string(res.tablespaceMap.data) != "16385 /srv/ts\n" || res.tablespaceMap.mode != 0o640 {
		t.Errorf("tablespace_map held: got %+v", res.tablespaceMap)
	}
	for _, absent := range []string{"postmaster.pid", "tablespace_map", "global/pg_control"} {
		if _, err := os.Lstat(filepath.Join(dir, absent)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: got %v, want it not written", absent, err)
		}
	}
	if got := readFile(t, filepath.Join(dir, pgControlPartial)); got != "control" {
		t.Errorf("pg_control held back: got %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "base")); err != nil || fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(fixtureMTime) {
		t.Errorf("base/: got %v %v, want mode 0750 and the tar's mtime", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "base/1/112")); err != nil || fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(fixtureMTime) {
		t.Errorf("base/1/112: got %v %v, want mode 0644 and the tar's mtime", fi.Mode(), err)
	}
	for link, want := range map[string]string{"pg_tblspc/16385": "/srv/new", "base/current": "1", "base/up": "../global"} {
		if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != want {
			t.Errorf("%s: got %q, %v; want a link to %q", link, got, err, want)
		}
	}
}

// TestExtractTablespaceArchive: outside base.tar, nothing is special.
func TestExtractTablespaceArchive(t *testing.T) {
	t.Parallel()
	_, dir, res, err := extractInto(t, []tarEntry{
		{name: "PG_15_202209061/", typ: tar.TypeDir},
		{name: "PG_15_202209061/5/16390", body: []byte("data")},
		{name: "backup_label", body: []byte("not special here")},
		{name: "postmaster.pid", body: []byte("nor this")},
	}, extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.backupLabel || res.files != 3 {
		t.Errorf("result: got %+v, want 3 plain files", res)
	}
	if got := readFile(t, filepath.Join(dir, "postmaster.pid")); got != "nor this" {
		t.Errorf("postmaster.pid in a tablespace archive: got %q", got)
	}
}

func TestExtractTruncatedStream(t *testing.T) {
	t.Parallel()
	tarball := buildTar(t, []tarEntry{{name: "big", body: bytes.Repeat([]byte("x"), 10000)}})
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = extractTar(context.Background(), bytes.NewReader(tarball[:5000]), root, extractOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated tar: got %v, want unexpected EOF", err)
	}
}

func TestTablespaceMapRoundTrip(t *testing.T) {
	t.Parallel()
	entries := []tablespaceMapEntry{{"16385", "/srv/plain"}, {"16386", "/srv/back\\slash"}, {"16387", "/srv/new\nline"}, {"16388", "/srv/with space"}}
	data := formatTablespaceMap(entries)
	want := "16385 /srv/plain\n16386 /srv/back\\\\slash\n16387 /srv/new\\\nline\n16388 /srv/with space\n"
	if string(data) != want {
		t.Errorf("format: got %q, want %q", data, want)
	}
	got, err := parseTablespaceMap(data)
	if err != nil || !slices.Equal(got, entries) {
		t.Errorf("parse(format(x)): got %q, %v; want %q", got, err, entries)
	}
	if got, err := parseTablespaceMap([]byte("16385 /a\r\n\n16386 /b\n")); err != nil || len(got) != 2 {
		t.Errorf("CRLF and blank lines: got %q, %v", got, err)
	}
	for _, bad := range []string{"16385\n", "x /a\n", " /a\n", "16385 /a"} {
		if got, err := parseTablespaceMap([]byte(bad)); err == nil {
			t.Errorf("parse(%q): got %q, want an error", bad, got)
		}
	}
}
