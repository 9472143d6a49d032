package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/walvault/walvault/storage"
)

// rotatingChain stands in for the AWS credential chain reading a shared
// credentials file whose keys someone rotates.
type rotatingChain struct {
	mu    sync.Mutex
	key   string
	loads int
}

func (c *rotatingChain) rotate(key string) { c.mu.Lock(); c.key = key; c.mu.Unlock() }

func (c *rotatingChain) load(context.Context) (aws.CredentialsProvider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads++
	return credentials.NewStaticCredentialsProvider(c.key, "secret-of-"+c.key, ""), nil
}

// TestCredentialsFollowRotation: a long-running process picks up keys
// rotated in the shared credentials file once the server refuses the old
// ones (at most one reload a refusalSpacing), and, for keys that do not
// expire on their own, every credentialsRefresh; a 403 seen by translate
// counts as a refusal (explore22c F1, F3).
func TestCredentialsFollowRotation(t *testing.T) {
	chain := &rotatingChain{key: "OLDKEY"}
	first, _ := chain.load(t.Context())
	r := newReloadingCredentials(first, chain.load)
	key := func() string {
		t.Helper()
		c, err := r.cache.Retrieve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return c.AccessKeyID
	}
	if got := key(); got != "OLDKEY" {
		t.Fatalf("first credentials %s, want OLDKEY", got)
	}
	chain.rotate("NEWKEY")
	if got := key(); got != "OLDKEY" {
		t.Fatalf("before any refusal or refresh: %s, want the cached OLDKEY", got)
	}
	b := &Backend{bucket: "bkt", location: "s3://bkt", creds: r}
	_ = b.translate(opError("HeadObject", 403, ""))
	if got := key(); got != "NEWKEY" {
		t.Fatalf("after a 403: %s, want the rotated NEWKEY", got)
	}
	chain.rotate("NEWERKEY")
	_ = b.translate(apiError(403, "SignatureDoesNotMatch"))
	if got := key(); got != "NEWKEY" {
		t.Fatalf("a second refusal within %v: %s, want no reload (NEWKEY)", refusalSpacing, got)
	}
	// The periodic refresh of static keys.
	defer func(d time.Duration) { credentialsRefresh = d }(credentialsRefresh)
	credentialsRefresh = 10 * time.Millisecond
	r.cache.Invalidate() // let the shorter refresh apply to what is cached
	key()
	chain.rotate("NEWESTKEY")
	if got := key(); got != "NEWERKEY" {
		t.Fatalf("within the refresh interval: %s, want the cached NEWERKEY", got)
	}
	time.Sleep(30 * time.Millisecond)
	if got := key(); got != "NEWESTKEY" {
		t.Fatalf("after the refresh interval: %s, want NEWESTKEY", got)
	}
}

// TestSDKEndpointChecked: an endpoint set by the AWS configuration
// (AWS_ENDPOINT_URL_S3 here) is checked as s3-endpoint is, http:// refused
// without AllowHTTP, and named in the backend's location (explore22c F2).
func TestSDKEndpointChecked(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
	cfg := Config{Bucket: "bkt", Prefix: "db1", Region: "us-east-1"}
	_, err := New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL") || !strings.Contains(err.Error(), "s3-allow-http") {
		t.Fatalf("http:// endpoint from the AWS configuration without AllowHTTP: %v; want a refusal naming where it came from", err)
	}
	cfg.AllowHTTP = true
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if loc := b.Location(); loc != "s3://bkt/db1 at http://127.0.0.1:9" {
		t.Errorf("location %q, want it to name the endpoint", loc)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.test/bkt")
	if _, err := New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "names the bucket") {
		t.Errorf("endpoint naming the bucket from the AWS configuration: %v; want refused as s3-endpoint is", err)
	}
}

// TestCredentialProcessOutputWithheld: a credential_process whose output
// the SDK cannot parse is quoted whole in its error, keys and all: the
// output is dropped from walvault's message, the parse error kept
// (explore22c F7).
func TestCredentialProcessOutputWithheld(t *testing.T) {
	sdk := errors.New(`failed to refresh cached credentials, process provider error: parse failed of process output: fetched from vault
{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "TopSecretValue", "SessionToken": "TokenValue"}
, error: invalid character 'e' in literal false (expecting 'a')`)
	msg := (&credentialsError{err: sdk}).Error()
	for _, secret := range []string{"TopSecretValue", "TokenValue", "AKIAEXAMPLE"} {
		if strings.Contains(msg, secret) {
			t.Errorf("message %q shows %s", msg, secret)
		}
	}
	if !strings.Contains(msg, "process provider error") || !strings.Contains(msg, "invalid character 'e'") {
		t.Errorf("message %q lost what failed", msg)
	}
}

// TestProxyAuthenticationPermanent: a proxy's 407 is a setting to fix,
// not retried for the whole timeout.
func TestProxyAuthenticationPermanent(t *testing.T) {
	b := &Backend{bucket: "bkt", location: "s3://bkt"}
	err := b.translate(&url.Error{Op: "Get", URL: "https://s3.example.test/bkt", Err: errors.New("Proxy Authentication Required")})
	if !storage.IsPermanent(err) || !strings.Contains(err.Error(), "HTTPS_PROXY") {
		t.Errorf("407 from the proxy: %v (permanent %v); want permanent, naming the proxy setting", err, storage.IsPermanent(err))
	}
}

// TestValidateCABundle: a CA bundle that cannot be read is a setting to
// fix (exit 2 through open's ConfigError), named as such.
func TestValidateCABundle(t *testing.T) {
	err := Config{Bucket: "bkt", CABundle: filepath.Join(t.TempDir(), "absent.pem")}.Validate()
	if err == nil || !strings.Contains(err.Error(), "s3-ca-bundle") {
		t.Errorf("Validate with an absent CA bundle: %v; want an error naming s3-ca-bundle", err)
	}
}

// TestUnreadableSharedCredentials: when the chain finds no credentials
// and the shared credentials file is there but unreadable to this
// process (root's, mode 0600, while archive_command runs as postgres),
// the hint says so instead of naming instance roles (explore22c F6).
func TestUnreadableSharedCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte("[default]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", path)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "absent"))
	defer func(o func(string) (*os.File, error)) { openShared = o }(openShared)
	openShared = func(p string) (*os.File, error) {
		if p == path {
			return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrPermission}
		}
		return os.Open(p)
	}
	b := &Backend{bucket: "bkt", location: "s3://bkt"}
	err := b.translate(&credentialsError{err: errors.New("failed to refresh cached credentials, no EC2 IMDS role found")})
	if !storage.IsPermanent(err) || !strings.Contains(err.Error(), path+" exists, but this process") {
		t.Errorf("no credentials, shared file unreadable: %v; want the hint naming %s", err, path)
	}
}

// TestCertificateHints: a refused certificate's hint follows why it was
// refused: expired, another host name (the bucket in it, virtual-hosted),
// a CA the bundle set lacks, or an unknown CA (explore22a F8).
func TestCertificateHints(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: "https://bkt.s3.example.test/", Err: err} }
	for _, tc := range []struct {
		b    *Backend
		err  error
		want string
	}{
		{&Backend{}, x509.CertificateInvalidError{Reason: x509.Expired}, "has expired"},
		{&Backend{}, x509.HostnameError{Host: "bkt.s3.example.test", Certificate: &x509.Certificate{}}, "s3-path-style true"},
		{&Backend{pathStyle: true}, x509.HostnameError{Host: "s3.example.test", Certificate: &x509.Certificate{}}, "a name the certificate holds"},
		{&Backend{caBundle: true}, x509.UnknownAuthorityError{}, "not signed by a CA of the S3 CA bundle set"},
		{&Backend{}, x509.UnknownAuthorityError{}, "for a private CA set the S3 CA bundle"},
	} {
		tc.b.bucket, tc.b.location = "bkt", "s3://bkt"
		if err := tc.b.translate(wrap(tc.err)); !storage.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T: %v; want a permanent error saying %q", tc.err, err, tc.want)
		}
	}
}

// TestExpiredSessionHint: with AWS_SESSION_TOKEN set, a refusal of the
// credentials names temporary credentials that expire (MinIO calls an
// expired STS key unknown) (explore22c F9).
func TestExpiredSessionHint(t *testing.T) {
	t.Setenv("AWS_SESSION_TOKEN", "token")
	b := &Backend{bucket: "bkt", location: "s3://bkt"}
	if err := b.translate(apiError(403, "InvalidAccessKeyId")); !strings.Contains(err.Error(), "AWS_SESSION_TOKEN is set") {
		t.Errorf("refused credentials with a session token: %v; want the temporary-credentials hint", err)
	}
}

// TestRotatingSignerNewSecretSameKeyID: a secret rotated under the same
// access key id signs with the new secret at once; the SDK's signer
// alone keeps the key derived from the old one until the next UTC day
// (explore22f F1).
func TestRotatingSignerNewSecretSameKeyID(t *testing.T) {
	at := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	sign := func(s interface {
		SignHTTP(context.Context, aws.Credentials, *http.Request, string, string, string, time.Time, ...func(*v4.SignerOptions)) error
	}, secret string) string {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, "https://s3.example.test/bkt/key", nil)
		if err := s.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIASAME", SecretAccessKey: secret}, r, "UNSIGNED-PAYLOAD", "s3", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
		return r.Header.Get("Authorization")
	}
	opts := func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }
	want := sign(v4.NewSigner(opts), "new-secret") // a fresh signer's, with the new secret
	s := &rotatingSigner{options: opts}
	sign(s, "old-secret")
	if got := sign(s, "new-secret"); got != want {
		t.Errorf("after a rotation under the same key id: signature %q, want the new secret's %q", got, want)
	}
}
