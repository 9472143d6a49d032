package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verifyCase builds a data directory and its backup_manifest.
type verifyCase struct {
	name    string
	listed  []manifestEntry                // what the manifest lists
	disk    map[string]string              // what is on disk (path -> content), beside the listed files
	edit    func(t *testing.T, dir string) // damage after writing
	ignore  []string
	wantMsg string // "" when the directory must pass
}

func writeVerifyDir(t *testing.T, tc verifyCase) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	ts := filepath.Join(t.TempDir(), "ts")
	for _, d := range []string{dir, ts, filepath.Join(dir, "pg_tblspc")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "pg_tblspc", "16385")); err != nil {
		t.Fatal(err)
	}
	write := func(p string, body []byte) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range tc.listed {
		write(f.path, f.body)
	}
	for p, body := range tc.disk {
		write(p, []byte(body))
	}
	write(pgManifestFile, pgManifest(tc.listed))
	if tc.edit != nil {
		tc.edit(t, dir)
	}
	return dir
}

func TestVerifyDataDir(t *testing.T) {
	t.Parallel()
	rel := bytes.Repeat([]byte("relation page "), 100000)
	listed := []manifestEntry{
		{path: "PG_VERSION", body: []byte("15\n")},
		{path: "backup_label", body: []byte("START WAL LOCATION: 0/2000028\n")},
		{path: "base/1/1259", body: rel},
		{path: "base/1/crc", body: []byte("crc32c body"), alg: "CRC32C"},
		{path: "base/1/sha512", body: []byte("sha512 body"), alg: "SHA512"},
		{path: "base/1/sha224", body: []byte("sha224 body"), alg: "SHA224"},
		{path: "base/1/sha384", body: []byte("sha384 body"), alg: "SHA384"},
		{path: "base/1/none", body: []byte("no checksum"), alg: "NONE"},
		{path: "base/1/encoded name", body: []byte("encoded"), encoded: true},
		{path: "global/pg_control", body: []byte("control")},
		{path: "pg_tblspc/16385/PG_15_202209061/5/16390", body: []byte("in a tablespace")},
	}
	appendTo := func(p, s string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, p), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(s)
			f.Close()
		}
	}
	overwrite := func(p, s string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []verifyCase{
		{name: "ok", listed: listed, disk: map[string]string{
			"postgresql.auto.conf": "restore_command = 'x'\n", "recovery.signal": "", "pg_wal/000000010000000000000001": "wal",
		}},
		{name: "ok with ignored extra files", listed: listed, disk: map[string]string{"walvault.yaml": "repo: x\n", "conf.d/a": "x"}, ignore: []string{"walvault.yaml", "conf.d"}},
		{name: "ignored damage", listed: listed, edit: overwrite("global/pg_control", "other"), ignore: []string{"global"}},
		{name: "wrong size", listed: listed, edit: appendTo("PG_VERSION", "x"), wantMsg: "PG_VERSION has size 4 on disk but size 3"},
		{name: "wrong sha256", listed: listed, edit: overwrite("global/pg_control", "CONTROL"), wantMsg: "global/pg_control has SHA256 checksum"},
		{name: "wrong crc32c", listed: listed, edit: overwrite("base/1/crc", "CRC32C body"), wantMsg: "base/1/crc has CRC32C checksum"},
		{name: "wrong sha512", listed: listed, edit: overwrite("base/1/sha512", "SHA512 body"), wantMsg: "base/1/sha512 has SHA512 checksum"},
		{name: "no checksum, only size", listed: listed, edit: overwrite("base/1/none", "NO CHECKSUM")},
		{name: "wrong encoded-path file", listed: listed, edit: overwrite("base/1/encoded name", "ENCODED"), wantMsg: "base/1/encoded name has SHA256"},
		{name: "wrong file in a tablespace", listed: listed, edit: overwrite("pg_tblspc/16385/PG_15_202209061/5/16390", "IN A TABLESPACE"), wantMsg: "pg_tblspc/16385/PG_15_202209061/5/16390 has SHA256"},
		{name: "missing file", listed: listed, edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "backup_label")) }, wantMsg: "backup_label is in the manifest but not on disk"},
		{name: "extra file", listed: listed, disk: map[string]string{"base/1/99999": "x"}, wantMsg: "base/1/99999 is on disk but not in the manifest"},
		{name: "extra file in a tablespace", listed: listed, disk: map[string]string{"pg_tblspc/16385/PG_15_202209061/5/777": "x"}, wantMsg: "pg_tblspc/16385/PG_15_202209061/5/777 is on disk but not in the manifest"},
		{name: "manifest damaged", listed: listed, edit: func(t *testing.T, dir string) {
			p := filepath.Join(dir, pgManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"Size": 3,`), []byte(`"Size": 3 ,`), 1), 0o600)
		}, wantMsg: "manifest checksum mismatch"},
		{name: "manifest truncated", listed: listed, edit: func(t *testing.T, dir string) {
			p := filepath.Join(dir, pgManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o600)
		}, wantMsg: "not a valid PostgreSQL backup manifest"},
		{name: "manifest missing", listed: listed, edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, pgManifestFile)) }, wantMsg: "backup_manifest"},
		{name: "unsafe path", listed: append([]manifestEntry{{path: "../escape", body: []byte("x")}}, listed...), edit: func(t *testing.T, dir string) {}, wantMsg: "unsafe path"},
	}
	pgVerify := filepath.Join(pgVerifyBackupBin, pgVerifyBackup)
	_, noTool := os.Stat(pgVerify)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "unsafe path" {
				// The file would be written outside: build it by hand.
				dir := filepath.Join(t.TempDir(), "data")
				os.MkdirAll(dir, 0o700)
				os.WriteFile(filepath.Join(dir, pgManifestFile), pgManifest(tc.listed[:1]), 0o600)
				_, err := VerifyDataDir(context.Background(), dir, nil)
				if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("got %v, want %q", err, tc.wantMsg)
				}
				return
			}
			dir := writeVerifyDir(t, tc)
			st, err := VerifyDataDir(context.Background(), dir, tc.ignore)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("VerifyDataDir: got %v, want nil", err)
				}
				if st.Files == 0 || st.Bytes < int64(len(rel)) {
					t.Errorf("stats: got %+v, want every file counted", st)
				}
			} else if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("VerifyDataDir: got %v, want an ErrVerify mentioning %q", err, tc.wantMsg)
			}
			// pg_verifybackup must agree (this also proves the CRC-32C
			// byte order and the manifest checksum rule).
			if noTool != nil || strings.HasPrefix(tc.name, "manifest missing") {
				return
			}
			args := []string{"-n", "-q"}
			for _, ig := range tc.ignore {
				args = append(args, "-i", ig)
			}
			out, perr := exec.Command(pgVerify, append(args, dir)...).CombinedOutput()
			if (perr == nil) != (tc.wantMsg == "") {
				t.Errorf("pg_verifybackup disagrees: exit %v, output %s", perr, out)
			}
		})
	}
}

func TestLineHasher(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		wantErr string
	}{
		{"a\n", "at least two lines"},
		{"a\nb", "at least two lines"},
		{"a\nb\nc", "does not end with a line break"},
	} {
		l := &lineHasher{h: sha256.New()}
		for _, c := range []byte(tc.in) { // byte by byte: the split must not matter
			l.Write([]byte{c})
		}
		if err := l.check(""); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.wantErr)
		}
	}
	in := "first\nsecond line\n\"Manifest-Checksum\": \"x\"}\n"
	sum := sha256.Sum256([]byte("first\nsecond line\n"))
	for _, chunk := range []int{1, 3, 7, len(in)} {
		l := &lineHasher{h: sha256.New()}
		for rest := in; rest != ""; {
			n := min(chunk, len(rest))
			l.Write([]byte(rest[:n]))
			rest = rest[n:]
		}
		if err := l.check(hex.EncodeToString(sum[:])); err != nil {
			t.Errorf("chunks of %d: %v", chunk, err)
		}
	}
}
