package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/open"
	"github.com/walvault/walvault/storage/s3"
)

// repo is a repository under test, with what walvault needs to reach it
// and a backend the test uses to look at it directly.
type repo struct {
	name    string
	url     string
	env     []string // WALVAULT_* and AWS_* for walvault
	backend storage.Backend
	// tamper rewrites an object's body, keeping its metadata: what bit rot
	// or a hostile overwrite would leave behind.
	tamper func(t *testing.T, key string, body []byte)
	// stop makes the storage unreachable (nil when it cannot be stopped).
	stop func(t *testing.T)
}

// fileRepo is a file:// repository in a directory the server user owns.
func fileRepo(t *testing.T) *repo {
	dir := filepath.Join(testenv.UserDir(t), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, dir)
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + dir
	return &repo{
		name:    "file",
		url:     url,
		env:     []string{"WALVAULT_REPO=" + url},
		backend: b,
		tamper: func(t *testing.T, key string, body []byte) {
			t.Helper()
			rewriteKeepingMetadata(t, b, key, body)
		},
	}
}

// s3Repo is an s3:// repository on a Versity gateway started for the test.
func s3Repo(t *testing.T) *repo {
	return s3RepoOn(t, testenv.StartVersity(t))
}

// s3RepoOn is an s3:// repository in a new bucket of gw.
func s3RepoOn(t *testing.T, gw *testenv.S3Server) *repo {
	bucket := "walvault-it"
	gw.CreateBucket(t, bucket, false)
	url := "s3://" + bucket + "/cluster1"
	for _, kv := range gw.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // the test's own backend reads the AWS chain too
	}
	loc, err := open.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.New(context.Background(), s3.Config{Bucket: loc.Bucket, Prefix: loc.Prefix, Endpoint: gw.Endpoint, PathStyle: true, Region: gw.Region})
	if err != nil {
		t.Fatal(err)
	}
	return &repo{
		name:    "s3",
		url:     url,
		env:     append(gw.Env(), "WALVAULT_REPO="+url),
		backend: b,
		tamper: func(t *testing.T, key string, body []byte) {
			t.Helper()
			rewriteKeepingMetadata(t, b, key, body)
		},
		stop: func(t *testing.T) { gw.Stop(t) },
	}
}

// rewriteKeepingMetadata replaces key's body with an unconditional Put that
// keeps its metadata. Only a test does this: walvault never rewrites.
func rewriteKeepingMetadata(t *testing.T, b storage.Backend, key string, body []byte) {
	t.Helper()
	info, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatalf("stat %s before tampering: %v", key, err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Metadata: info.Metadata, Size: int64(len(body))}); err != nil {
		t.Fatalf("tamper with %s: %v", key, err)
	}
}

func getObject(t *testing.T, b storage.Backend, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return buf.Bytes(), info
}

// result is one walvault run.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %v\nstdout: %s\nstderr: %s", r.code, r.elapsed, r.stdout, r.stderr)
}

// walvault runs the built binary as the test's own user with env on top of a
// clean environment (no WALVAULT_* or AWS_* leaking in from the test).
// Prefetch is off unless env turns it on: a wal-fetch into a test's
// temporary directory would otherwise leave a background prefetcher
// writing there while the test's cleanup removes it.
func walvault(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(testenv.BuildWalvault(t), args...)
	cmd.Env = append(append(cleanEnv(), "WALVAULT_PREFETCH=0"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run walvault %v: %v", args, err)
	}
	return res
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WALVAULT_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
