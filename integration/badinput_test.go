package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
)

func TestPushRefusesSegmentOfAnotherCluster(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, _ := archivingServer(t, r)
		name := pg.SwitchWAL(t)
		pg.WaitArchived(t, name, 60*time.Second)
		ours := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")

		other := testenv.StartPostgres(t, testenv.PostgresOptions{})
		theirs := other.SQL(t, "SELECT system_identifier FROM pg_control_system()")
		foreign := other.SwitchWAL(t)
		seg := filepath.Join(t.TempDir(), foreign)
		if err := os.WriteFile(seg, readFile(t, filepath.Join(other.DataDir, "pg_wal", foreign)), 0o600); err != nil {
			t.Fatal(err)
		}
		res := walvault(t, r.env, "wal-push", seg)
		if res.code == 0 {
			t.Fatalf("a segment of another cluster was accepted: %v", res)
		}
		for _, want := range []string{ours, theirs, "new repository prefix"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("message lacks %q:\n%s", want, res.stderr)
			}
		}
	})
}

// TestBadInput: every mistake gets one line on stderr that says what
// failed, a non-zero exit, and nothing written to the repository.
func TestBadInput(t *testing.T) {
	r := fileRepo(t)
	dir := t.TempDir()
	segName := "000000010000000000000001"
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Mkdir(filepath.Join(dir, "000000010000000000000002"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string
	}{
		{"no argument", r.env, []string{"wal-push"}, 2, "exactly one argument"},
		{"nonexistent path", r.env, []string{"wal-push", filepath.Join(dir, "000000010000000000000009")}, 1, "does not exist"},
		{"a directory", r.env, []string{"wal-push", filepath.Join(dir, "000000010000000000000002")}, 1, "not a regular file"},
		{"not a WAL name", r.env, []string{"wal-push", write("postgresql.conf", []byte("x"))}, 1, "not a WAL file name"},
		{"truncated segment", r.env, []string{"wal-push", write(segName, make([]byte, 100))}, 1, segName},
		{"no repository", nil, []string{"wal-push", write("a/"+segName, make([]byte, 100))}, 2, "WALVAULT_REPO"},
		{"malformed repository URL", []string{"WALVAULT_REPO=s3//bucket"}, []string{"wal-push", filepath.Join(dir, segName)}, 2, "repository URL"},
		{"relative file URL", []string{"WALVAULT_REPO=file://relative/dir"}, []string{"wal-push", filepath.Join(dir, segName)}, 2, "repository URL"},
		{"bad compression", append([]string{"WALVAULT_COMPRESSION=zip"}, r.env...), []string{"wal-push", filepath.Join(dir, segName)}, 2, "WALVAULT_COMPRESSION"},
		{"unknown config key", append([]string{"WALVAULT_CONFIG=" + write("walvault.yaml", []byte("rpeo: x\n"))}, r.env...), []string{"wal-push", filepath.Join(dir, segName)}, 2, `unknown setting "rpeo"`},
		{"fetch with bad repository stops recovery", []string{"WALVAULT_REPO=nope"}, []string{"wal-fetch", segName, filepath.Join(dir, "x")}, 200, "repository URL"},
		{"fetch from an empty repository stops recovery", r.env, []string{"wal-fetch", segName, filepath.Join(dir, "x")}, 200, "not a walvault repository"},
		{"repository directory missing", []string{"WALVAULT_REPO=file://" + filepath.Join(dir, "unmounted")}, []string{"wal-fetch", segName, filepath.Join(dir, "x")}, 200, "does not exist"},
		{"fetch of a non-WAL name", r.env, []string{"wal-fetch", "../etc/passwd", filepath.Join(dir, "x")}, 200, "not a WAL file name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := walvault(t, tc.env, tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %v", res.code, tc.wantCode, res)
			}
			if !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("stderr lacks %q: %v", tc.want, res)
			}
			if lines := strings.Count(strings.TrimSpace(res.stderr), "\n") + 1; lines != 1 {
				t.Fatalf("want one line on stderr, got %d: %v", lines, res)
			}
		})
	}
	assertEmptyRepo(t, r.backend)
}

func assertEmptyRepo(t *testing.T, b storage.Backend) {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Fatalf("bad input wrote to the repository: %v", keys)
	}
}

func TestBadS3Settings(t *testing.T) {
	gw := testenv.StartVersity(t)
	gw.CreateBucket(t, "present", false)
	seg := realSegment(t)
	wrongSecret := "definitely-not-the-secret-42"
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"missing bucket", append(gw.Env(), "WALVAULT_REPO=s3://absent-bucket/x"), "absent-bucket"},
		{"bad credentials", append(gw.Env(), "WALVAULT_REPO=s3://present/x", "AWS_SECRET_ACCESS_KEY="+wrongSecret), "credential"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := walvault(t, tc.env, "wal-push", seg)
			if res.code != 1 {
				t.Fatalf("want exit 1: %v", res)
			}
			if !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("stderr lacks %q: %v", tc.want, res)
			}
			if strings.Contains(res.stderr, wrongSecret) || strings.Contains(res.stderr, gw.SecretKey) {
				t.Fatalf("stderr shows a secret: %v", res)
			}
			fetch := walvault(t, tc.env, "wal-fetch", filepath.Base(seg), filepath.Join(t.TempDir(), "x"))
			if fetch.code != 200 {
				t.Fatalf("wal-fetch must stop recovery (exit 200), not report the file missing: %v", fetch)
			}
		})
	}
}

// realSegment makes one real, complete segment from a throw-away cluster.
func realSegment(t *testing.T) string {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	name := pg.SwitchWAL(t)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, readFile(t, filepath.Join(pg.DataDir, "pg_wal", name)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushOfUnreadableFile(t *testing.T) {
	r := fileRepo(t)
	dir := testenv.UserDir(t)
	seg := filepath.Join(dir, "000000010000000000000001")
	if err := os.WriteFile(seg, make([]byte, 16<<20), 0o000); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, seg)
	// As the server user: root reads any file.
	cmd := testenv.ServerCommand(t, testenv.BuildWalvault(t), "wal-push", seg)
	cmd.Env = append(cleanEnv(), r.env...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("push of an unreadable file succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "permission denied") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("want one line saying permission denied, got:\n%s", out)
	}
	assertEmptyRepo(t, r.backend)
}

// TestNoSecretInOutput runs every command at debug level against S3 and
// looks for the credentials in all that walvault printed.
func TestNoSecretInOutput(t *testing.T) {
	r := s3Repo(t)
	seg := realSegment(t)
	env := append(r.env, "WALVAULT_LOG_LEVEL=debug")
	secret := valueOf(r.env, "AWS_SECRET_ACCESS_KEY")
	if secret == "" {
		t.Fatal("the gateway environment has no AWS_SECRET_ACCESS_KEY")
	}
	runs := []result{
		walvault(t, env, "wal-push", seg),
		walvault(t, env, "wal-push", seg),
		walvault(t, env, "wal-fetch", filepath.Base(seg), filepath.Join(t.TempDir(), "x")),
		walvault(t, env, "wal-fetch", "0000000100000000000000FF", filepath.Join(t.TempDir(), "y")),
		walvault(t, append(env, "AWS_SECRET_ACCESS_KEY=wrong"+secret), "wal-push", seg),
		walvault(t, env, "wal-push", "--help"),
	}
	for i, res := range runs {
		if strings.Contains(res.stdout+res.stderr, secret) {
			t.Errorf("run %d printed the secret key: %v", i, res)
		}
	}
	if runs[0].code != 0 || runs[1].code != 0 || runs[2].code != 0 || runs[3].code != 1 || runs[4].code != 1 {
		t.Fatalf("unexpected exit codes: %v / %v / %v / %v / %v", runs[0], runs[1], runs[2], runs[3], runs[4])
	}
}

func valueOf(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
