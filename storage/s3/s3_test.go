package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
	"github.com/walvault/walvault/storage/storagetest"
)

// testPartSize is S3's smallest part, so the suite's 6 MiB and larger
// streams go through multipart uploads.
const testPartSize = s3.MinPartSize

var bucketSeq atomic.Int64

// newBucket creates a fresh bucket with a unique name (3+ lower-case
// characters).
func newBucket(t *testing.T, v *testenv.S3Server, objectLock bool) string {
	t.Helper()
	name := fmt.Sprintf("wv-%d", bucketSeq.Add(1))
	v.CreateBucket(t, name, objectLock)
	return name
}

// useGateway points the AWS chain at the gateway's credentials and nothing
// else (no shared config or profile from the machine running the tests).
func useGateway(t *testing.T, v *testenv.S3Server) {
	t.Helper()
	v.UseAsAWSChain(t)
}

func newBackend(t *testing.T, v *testenv.S3Server, cfg s3.Config) *s3.Backend {
	t.Helper()
	cfg.Endpoint = v.Endpoint
	cfg.PathStyle = true
	if cfg.PartSize == 0 {
		cfg.PartSize = testPartSize
	}
	b, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3.New(%+v): got %v, want nil", cfg, err)
	}
	return b
}

func TestConformance(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newBackend(t, v, s3.Config{Bucket: newBucket(t, v, false), Prefix: "repo/one"})
	}, storagetest.Options{})
}

func TestConformanceObjectLock(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newBackend(t, v, s3.Config{Bucket: newBucket(t, v, true)})
	}, storagetest.Options{ObjectLock: true, Hide: hideInner})
}

// TestConformanceMinIO runs the suite on MinIO too, a second S3
// implementation with its own answers, on a plain bucket and on one with
// Object Lock (so versioned).
func TestConformanceMinIO(t *testing.T) {
	v := testenv.StartMinIO(t)
	useGateway(t, v)
	t.Run("plain", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Backend {
			return newBackend(t, v, s3.Config{Bucket: newBucket(t, v, false), Prefix: "repo/one"})
		}, storagetest.Options{})
	})
	t.Run("ObjectLock", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Backend {
			return newBackend(t, v, s3.Config{Bucket: newBucket(t, v, true)})
		}, storagetest.Options{ObjectLock: true, Hide: hideInner})
	})
}

// TestConformanceStacked runs the suite on the stack commands get
// (storage.Stack), on a lock-enabled, so versioned, bucket: the versioned
// calls go through the decorators too; with the read-through of hidden
// objects, as restore reads.
func TestConformanceStacked(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	policy := storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
	for _, readHidden := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReadHidden=%v", readHidden), func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Backend {
				b := newBackend(t, v, s3.Config{Bucket: newBucket(t, v, true), Prefix: "repo"})
				return storage.Stack(b, storage.StackOptions{Retry: policy, Counter: &storage.Counter{}, ReadHidden: readHidden})
			}, storagetest.Options{ObjectLock: true, Hide: hideInner, ReadsHidden: readHidden, LargeObjectSize: 16 << 20})
		})
	}
}

// hideInner is storagetest's Options.Hide: a DELETE without a version id
// through the S3 backend under the stack.
func hideInner(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	sb, ok := storagetest.Inner[*s3.Backend](b)
	if !ok {
		t.Fatalf("no s3 backend in %T", b)
	}
	if err := s3.Hide(t.Context(), sb, key); err != nil {
		t.Fatalf("DeleteObject %s without a version id: %v", key, err)
	}
}

// checkHardError checks that err is a permanent error that is not
// ErrNotFound and whose message contains want and none of secrets.
func checkHardError(t *testing.T, what string, err error, want string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got nil, want an error", what)
		return
	}
	t.Logf("%s: %v", what, err)
	if errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s: got %v, want an error not matching storage.ErrNotFound", what, err)
	}
	if !storage.IsPermanent(err) {
		t.Errorf("%s: got %v, want a permanent error", what, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %q, want it to contain %q", what, err, want)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q contains a secret", what, err)
		}
	}
}

// TestS3Failures covers what the suite cannot: a missing bucket, refused
// credentials, a server gone away.
func TestS3Failures(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	key := "wal/00000001/000000010000000000000001.lz4"

	t.Run("MissingBucket", func(t *testing.T) {
		b := newBackend(t, v, s3.Config{Bucket: "no-such-bucket", Prefix: "p"})
		ctx := t.Context()
		_, _, err := b.Get(ctx, key)
		checkHardError(t, "Get", err, `bucket "no-such-bucket" does not exist`)
		_, err = b.Stat(ctx, key)
		checkHardError(t, "Stat", err, `bucket "no-such-bucket" does not exist`)
		err = b.Delete(ctx, key)
		checkHardError(t, "Delete", err, `bucket "no-such-bucket" does not exist`)
		err = b.Put(ctx, key, strings.NewReader("x"), storage.PutOptions{Size: 1})
		checkHardError(t, "Put", err, `bucket "no-such-bucket" does not exist`)
		err = b.List(ctx, "", func(storage.ObjectInfo) error { return nil })
		checkHardError(t, "List", err, `bucket "no-such-bucket" does not exist`)
	})

	t.Run("WrongSecret", func(t *testing.T) {
		bucket := newBucket(t, v, false)
		good := newBackend(t, v, s3.Config{Bucket: bucket})
		if err := good.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
			t.Fatalf("Put with the right secret: got %v, want nil", err)
		}
		wrong := "wrong" + v.SecretKey[5:]
		t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
		b := newBackend(t, v, s3.Config{Bucket: bucket})
		_, _, err := b.Get(t.Context(), key)
		checkHardError(t, "Get", err, "AWS credential chain", wrong, v.SecretKey)
		_, err = b.Stat(t.Context(), key)
		checkHardError(t, "Stat", err, "", wrong, v.SecretKey)
		err = b.Put(t.Context(), key, strings.NewReader("y"), storage.PutOptions{Size: 1})
		checkHardError(t, "Put", err, "AWS credential chain", wrong, v.SecretKey)
	})

	// The gateway answers an access key it does not know with 404
	// XAdminUserNotFound (AWS and MinIO: 403 InvalidAccessKeyId), and a
	// HEAD with a bodiless 404: never "not found", never retried.
	t.Run("UnknownAccessKey", func(t *testing.T) {
		bucket := newBucket(t, v, false)
		t.Setenv("AWS_ACCESS_KEY_ID", "nosuchkey")
		b := newBackend(t, v, s3.Config{Bucket: bucket})
		const hint = "the server refused the credentials"
		_, _, err := b.Get(t.Context(), key)
		checkHardError(t, "Get", err, hint, v.SecretKey)
		_, err = b.Stat(t.Context(), key)
		checkHardError(t, "Stat", err, hint, v.SecretKey)
		err = b.List(t.Context(), "", func(storage.ObjectInfo) error { return nil })
		checkHardError(t, "List", err, hint, v.SecretKey)
		err = b.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{Size: 1, IfNotExists: true})
		checkHardError(t, "Put", err, hint, v.SecretKey)
	})

	// The gateway answers a request signed for another region than its
	// own with 400 AuthorizationHeaderMalformed naming the region it
	// expects (a HEAD with a bare 400): the region is to fix, not the
	// credentials.
	t.Run("WrongRegion", func(t *testing.T) {
		b := newBackend(t, v, s3.Config{Bucket: newBucket(t, v, false), Region: "eu-west-3"})
		_, _, err := b.Get(t.Context(), key)
		checkHardError(t, "Get", err, "is in region "+v.Region)
		if err != nil && strings.Contains(err.Error(), "credential") {
			t.Errorf("Get: got %q: it blames the credentials", err)
		}
		err = b.List(t.Context(), "", func(storage.ObjectInfo) error { return nil })
		checkHardError(t, "List", err, "set s3-region")
		err = b.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{Size: 1})
		checkHardError(t, "Put", err, "is in region "+v.Region)
		// A HEAD answer has no body to name the region in.
		_, err = b.Stat(t.Context(), key)
		checkHardError(t, "Stat", err, "set s3-region")
	})

	t.Run("ServerGone", func(t *testing.T) {
		gone := testenv.StartVersity(t)
		gone.CreateBucket(t, "gone", false)
		useGateway(t, gone)
		b := newBackend(t, gone, s3.Config{Bucket: "gone"})
		if err := b.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
			t.Fatalf("Put: got %v, want nil", err)
		}
		gone.Stop(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		_, _, err := b.Get(ctx, key)
		elapsed := time.Since(start)
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get from a stopped server: got %v, want an error not matching storage.ErrNotFound", err)
		}
		if elapsed > 10*time.Second {
			t.Errorf("Get from a stopped server took %v, want under 10s", elapsed)
		}
		t.Logf("Get from a stopped server: %v after %v", err, elapsed.Round(time.Millisecond))
	})
}

// TestS3IfNotExistsMultipart: a conditional multipart create over an
// existing key gets ErrExists, keeps the original and leaves no upload.
func TestS3IfNotExistsMultipart(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	b := newBackend(t, v, s3.Config{Bucket: bucket, Prefix: "p", PartSize: 5 << 20, Concurrency: 2})
	ctx := t.Context()
	key := "backups/b1/base.tar.lz4"
	orig := randomBytes(1, 12<<20)
	if err := b.Put(ctx, key, bytes.NewReader(orig), storage.PutOptions{IfNotExists: true, Size: -1, Metadata: map[string]string{"v": "1"}}); err != nil {
		t.Fatalf("first Put: got %v, want nil", err)
	}
	other := randomBytes(2, 12<<20)
	err := b.Put(ctx, key, onlyReader{bytes.NewReader(other)}, storage.PutOptions{IfNotExists: true, Size: -1, Metadata: map[string]string{"v": "2"}})
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Put(IfNotExists) of 12 MiB in 5 MiB parts: got %v, want one matching storage.ErrExists", err)
	}
	rc, info, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: got %v, want nil", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, orig) || info.Metadata["v"] != "1" {
		t.Errorf("Get after refused Put: got %d bytes (equal %v), metadata %v, err %v; want the original 12 MiB, v=1",
			len(got), bytes.Equal(got, orig), info.Metadata, err)
	}
	checkNoUploads(t, v, bucket)
}

// TestS3RetentionMultipart: a multipart upload with retention (CRC32 part
// checksums) is locked; on a bucket without Object Lock it is refused with
// ErrUnsupported and nothing is stored.
func TestS3RetentionMultipart(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	key := "backups/b1/base.tar.lz4"
	body := randomBytes(4, 12<<20)
	until := time.Now().Add(time.Minute).Truncate(time.Second)
	opts := storage.PutOptions{IfNotExists: true, Size: -1, Retention: &storage.Retention{Mode: storage.Governance, Until: until}}

	locked := newBackend(t, v, s3.Config{Bucket: newBucket(t, v, true), PartSize: 5 << 20})
	if err := locked.Put(t.Context(), key, bytes.NewReader(body), opts); err != nil {
		t.Fatalf("Put 12 MiB with retention: got %v, want nil", err)
	}
	info, err := locked.Stat(t.Context(), key)
	if err != nil || info.Size != int64(len(body)) || !info.RetainUntil.Equal(until) {
		t.Errorf("Stat: got %+v, %v; want size %d, RetainUntil %v", info, err, len(body), until)
	}
	if err := locked.Delete(t.Context(), key); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("Delete of a locked object: got %v, want storage.ErrLocked", err)
	}
	if _, err := locked.Stat(t.Context(), key); err != nil {
		t.Errorf("Stat after refused Delete: got %v, want nil", err)
	}

	bucket := newBucket(t, v, false)
	plain := newBackend(t, v, s3.Config{Bucket: bucket, PartSize: 5 << 20})
	if err := plain.Put(t.Context(), key, bytes.NewReader(body), opts); !errors.Is(err, storage.ErrUnsupported) {
		t.Errorf("Put with retention on a bucket without Object Lock: got %v, want storage.ErrUnsupported", err)
	}
	if _, err := plain.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after refused Put: got %v, want storage.ErrNotFound", err)
	}
	checkNoUploads(t, v, bucket)
}

// TestS3FailedMultipartAborts: a reader failing after two parts leaves no
// object and no multipart upload behind.
func TestS3FailedMultipartAborts(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	b := newBackend(t, v, s3.Config{Bucket: bucket, PartSize: 5 << 20, Concurrency: 2})
	errBoom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(randomBytes(3, 11<<20)), errReader{errBoom})
	err := b.Put(t.Context(), "big", r, storage.PutOptions{Size: -1})
	if !errors.Is(err, errBoom) {
		t.Errorf("Put with a failing reader: got %v, want one matching %v", err, errBoom)
	}
	if _, err := b.Stat(t.Context(), "big"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after failed Put: got %v, want storage.ErrNotFound", err)
	}
	checkNoUploads(t, v, bucket)
}

func checkNoUploads(t *testing.T, v *testenv.S3Server, bucket string) {
	t.Helper()
	out, err := v.Client(t).ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("multipart uploads left: got %d, want 0", len(out.Uploads))
	}
}

func TestS3TLS(t *testing.T) {
	v := testenv.StartVersityTLS(t)
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	key := "walvault.json"

	b := newBackend(t, v, s3.Config{Bucket: bucket, CABundle: v.CAFile})
	body := []byte(`{"version":1}`)
	if err := b.Put(t.Context(), key, bytes.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body))}); err != nil {
		t.Fatalf("Put over TLS with the CA bundle: got %v, want nil", err)
	}
	rc, _, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get over TLS: got %v, want nil", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("Get over TLS: got %q, %v; want %q", got, err, body)
	}

	untrusting := newBackend(t, v, s3.Config{Bucket: bucket})
	_, err = untrusting.Stat(t.Context(), key)
	checkHardError(t, "Stat over TLS without the CA bundle", err, "certificate")
}

func TestNewConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  s3.Config
		want string
	}{
		{"no bucket", s3.Config{}, "no bucket"},
		{"short bucket", s3.Config{Bucket: "ab"}, "invalid bucket name"},
		{"bad prefix", s3.Config{Bucket: "abc", Prefix: "a/../b"}, "bad prefix"},
		{"small part", s3.Config{Bucket: "abc", PartSize: 1 << 20}, "part size"},
		{"bad endpoint", s3.Config{Bucket: "abc", Endpoint: "ftp://user:pw@host"}, "bad endpoint"},
		{"endpoint without a scheme", s3.Config{Bucket: "abc", Endpoint: "minio.internal:9000"}, "write https://minio.internal:9000"},
		{"endpoint with a query", s3.Config{Bucket: "abc", Endpoint: "https://minio.internal:9000/?x=1"}, "has a query or a fragment"},
		{"endpoint without a scheme, with credentials", s3.Config{Bucket: "abc", Endpoint: "minio:pw@minio.internal:9000"}, "minio.internal:9000"},
		{"endpoint naming the bucket", s3.Config{Bucket: "abc", Endpoint: "https://minio.internal:9000/abc/"}, "give the server alone as the endpoint (https://minio.internal:9000)"},
		// The server would take "minio" for the bucket.
		{"endpoint with a path", s3.Config{Bucket: "abc", Endpoint: "http://127.0.0.1:56901/minio"}, "give the server alone as the endpoint (http://127.0.0.1:56901)"},
		{"missing CA bundle", s3.Config{Bucket: "abc", CABundle: filepath.Join(dir, "missing.pem")}, "CA bundle"},
		{"CA bundle without certs", s3.Config{Bucket: "abc", CABundle: notPEM}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3.New(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v): got %v, want an error containing %q", tc.cfg, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("New: error %q shows the endpoint's password", err)
			}
		})
	}
}

func TestLocation(t *testing.T) {
	for _, tc := range []struct {
		cfg  s3.Config
		want string
	}{
		{s3.Config{Bucket: "bkt"}, "s3://bkt"},
		{s3.Config{Bucket: "bkt", Prefix: "/a/b/"}, "s3://bkt/a/b"},
		{s3.Config{Bucket: "bkt", Prefix: "a", Endpoint: "https://s3.example:9000"}, "s3://bkt/a at https://s3.example:9000"},
		{s3.Config{Bucket: "bkt", Endpoint: "https://s3.example:9000/"}, "s3://bkt at https://s3.example:9000/"}, // a bare "/" is no path
	} {
		b, err := s3.New(t.Context(), tc.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", tc.cfg, err)
		}
		if got := b.Location(); got != tc.want {
			t.Errorf("Location of %+v: got %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides every method but Read (no Seeker, no WriterTo).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestS3PutShortSizeHint: a stream longer than its Size hint says (below
// the part size, so Put starts reading it into a small buffer) moves on
// into a part buffer and still stores every byte.
func TestS3PutShortSizeHint(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	b := newBackend(t, v, s3.Config{Bucket: newBucket(t, v, false), PartSize: 5 << 20, Concurrency: 2})
	for _, size := range []int{4000, 7 << 20} {
		body := randomBytes(4, size)
		key := fmt.Sprintf("hinted-%d", size)
		if err := b.Put(t.Context(), key, onlyReader{bytes.NewReader(body)}, storage.PutOptions{Size: 1000}); err != nil {
			t.Fatalf("Put of %d bytes with Size 1000: %v", size, err)
		}
		rc, _, err := b.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: read %d bytes (equal: %v), err %v; want the %d put", key, len(got), bytes.Equal(got, body), err, size)
		}
	}
}

// TestConnectionsKeptForTheNextRound: after a round of 32 requests at once
// (an inventory's small reads), the next round reuses their connections
// instead of opening most of them again (the SDK alone keeps 10).
func TestConnectionsKeptForTheNextRound(t *testing.T) {
	var opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // long enough for the round's requests to overlap
		w.Header().Set("Content-Length", "1")
		w.Header().Set("ETag", `"e"`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	b := newAgainstServer(t, srv, func(*s3.Config) {})
	round := func() {
		var g errgroup.Group
		for i := range 32 {
			g.Go(func() error {
				_, err := b.Stat(t.Context(), fmt.Sprintf("k%d", i))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	round()
	first := opened.Load()
	round()
	if again := opened.Load() - first; again > 4 {
		t.Errorf("the second round of 32 requests opened %d connections more (the first opened %d), want them reused", again, first)
	}
}
