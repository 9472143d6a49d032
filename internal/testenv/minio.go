package testenv

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// MinIOVersion is the MinIO server the tests are written against: its last
// module version, built from source (the project publishes no release
// binaries through the Go module proxy).
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOInstall is the command that installs it.
const MinIOInstall = "go install github.com/minio/minio@" + MinIOVersion

// MinIOBinary finds the minio server binary: $WALVAULT_MINIO, PATH,
// $(go env GOPATH)/bin, /root/go/bin. It fails the test, saying how to
// install MinIO, when there is none.
func MinIOBinary(t testing.TB) string {
	t.Helper()
	return serverBinary(t, "WALVAULT_MINIO", "minio", "the MinIO server", MinIOInstall)
}

// StartMinIO starts a MinIO server on one drive in a temporary directory,
// over plain HTTP on a free loopback port. Buckets created with Object
// Lock are versioned, as on AWS.
func StartMinIO(t testing.TB) *S3Server {
	t.Helper()
	bin := MinIOBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	v := newS3Server(t, "minio")
	env := append(environWithout("MINIO_", "MC_", "HOME="),
		"MINIO_ROOT_USER="+v.AccessKey,
		"MINIO_ROOT_PASSWORD="+v.SecretKey,
		"MINIO_BROWSER=off", // no console, so no second port
		"MINIO_UPDATE=off",
		"HOME="+filepath.Dir(data), // its client config (~/.minio), if any
	)
	v.start(t, bin, "http", env, minioReady, func(addr string) []string {
		return []string{"server", "--quiet", "--address", addr, data}
	})
	return v
}

// minioReady says whether MinIO answers its liveness check: it listens
// before it serves requests.
func minioReady(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/minio/health/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
