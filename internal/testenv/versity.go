package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// VersityInstall is the command that installs the gateway version the tests
// are written against.
const VersityInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// VersityRegion is the region the gateway answers for.
const VersityRegion = "us-east-1"

// S3Server is a running S3 server on a loopback port: the Versity S3
// Gateway (posix backend, with versioning enabled so Object Lock buckets
// work; StartVersity) or MinIO (StartMinIO). It is stopped in t.Cleanup,
// or earlier by Stop.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT, or https:// for StartVersityTLS
	AccessKey string
	SecretKey string
	Region    string // us-east-1
	CAFile    string // PEM of the CA that signed the server cert; "" without TLS

	name string // the program, for messages
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{} // closed when the process has exited
	stop sync.Once
}

// StartVersity starts a gateway over plain HTTP on a free loopback port.
func StartVersity(t testing.TB) *S3Server {
	t.Helper()
	return startVersity(t, false)
}

// StartVersityTLS starts a gateway over HTTPS with a certificate for
// 127.0.0.1 signed by a fresh self-signed CA, whose PEM is in CAFile.
func StartVersityTLS(t testing.TB) *S3Server {
	t.Helper()
	return startVersity(t, true)
}

// VersityBinary finds the versitygw binary: $WALVAULT_VERSITYGW, PATH,
// $(go env GOPATH)/bin, /root/go/bin. It fails the test, saying how to
// install the gateway, when there is none.
func VersityBinary(t testing.TB) string {
	t.Helper()
	return serverBinary(t, "WALVAULT_VERSITYGW", "versitygw", "the Versity S3 Gateway", VersityInstall)
}

// serverBinary finds the program name: $envVar, PATH, $(go env
// GOPATH)/bin, /root/go/bin. It fails the test, saying how to install what
// (with install) when there is none.
func serverBinary(t testing.TB, envVar, name, what, install string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		if err := isExecutable(p); err != nil {
			t.Fatalf("testenv: %s=%s: %v", envVar, p, err)
		}
		return p
	}
	p, dirs := findTool(name)
	if p != "" {
		return p
	}
	t.Fatalf("testenv: %s (%s) is not installed: not in $%s, PATH, %s.\n"+
		"Install it with ./scripts/install-deps.sh, or:\n\t%s\nor set %s to the binary.", what, name, envVar, strings.Join(dirs, ", "), install, envVar)
	return ""
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func startVersity(t testing.TB, useTLS bool) *S3Server {
	t.Helper()
	bin := VersityBinary(t)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	versions := filepath.Join(base, "versions") // must not lie inside root
	for _, d := range []string{root, versions} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	v := newS3Server(t, "versitygw")
	scheme := "http"
	var tlsArgs []string
	if useTLS {
		scheme = "https"
		cert, key, ca := writeTestCerts(t, base)
		v.CAFile = ca
		tlsArgs = []string{"--cert", cert, "--key", key}
	}

	env := append(environWithout("VGW_", "ROOT_"), "ROOT_ACCESS_KEY="+v.AccessKey, "ROOT_SECRET_KEY="+v.SecretKey)
	v.start(t, bin, scheme, env, nil, func(addr string) []string {
		args := append([]string{"--port", addr, "--quiet"}, tlsArgs...)
		return append(args, "posix", "--versioning-dir", versions, root)
	})
	return v
}

// newS3Server is a server about to be started, with fresh root
// credentials.
func newS3Server(t testing.TB, name string) *S3Server {
	return &S3Server{AccessKey: "AK" + randomHex(t, 9), SecretKey: randomHex(t, 20), Region: VersityRegion, name: name}
}

// start launches the server on a free loopback port (argsFor gives its
// arguments for an address), trying other ports while another process
// takes the one chosen first, and stops it in t.Cleanup.
func (v *S3Server) start(t testing.TB, bin, scheme string, env []string, ready func(addr string) bool, argsFor func(addr string) []string) {
	t.Helper()
	const attempts = 5
	var lastErr error
	for range attempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: finding a free port: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", port)
		err = v.launch(bin, argsFor(addr), env, addr, ready)
		if err == nil {
			v.Endpoint = scheme + "://" + addr
			t.Cleanup(func() { v.Stop(t) })
			return
		}
		lastErr = err
		if !strings.Contains(v.out.String(), "address already in use") {
			break // not a bind race: retrying will not help
		}
	}
	t.Fatalf("testenv: starting %s (%s): %v\n--- its output ---\n%s", v.name, bin, lastErr, v.out.String())
}

// launch starts the server and waits until it is ready (ready nil: addr
// accepts connections) or the process exits.
func (v *S3Server) launch(bin string, args, env []string, addr string, ready func(addr string) bool) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	v.cmd, v.out, v.done, v.stop = cmd, out, make(chan struct{}), sync.Once{}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := v.done
	go func() { cmd.Wait(); close(done) }()
	if ready == nil {
		ready = func(addr string) bool {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("%s exited early: %v", v.name, cmd.ProcessState)
		default:
		}
		if ready(addr) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.kill()
	return fmt.Errorf("%s was not ready on %s within 30s", v.name, addr)
}

// environWithout is our environment without the variables whose names
// start with one of prefixes, so a developer's settings cannot change a
// test server.
func environWithout(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}

// Stop stops the gateway now (for tests of a server that went away). It is
// safe to call more than once; t.Cleanup calls it too.
func (v *S3Server) Stop(t testing.TB) {
	t.Helper()
	v.stop.Do(func() {
		if v.cmd == nil || v.cmd.Process == nil {
			return
		}
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.done:
		case <-time.After(5 * time.Second):
			v.kill()
		}
	})
}

func (v *S3Server) kill() {
	_ = v.cmd.Process.Kill()
	<-v.done
}

// Output returns what the gateway printed so far.
func (v *S3Server) Output() string { return v.out.String() }

// Env returns the environment a walvault process needs to reach the
// gateway: AWS credentials and region, endpoint, path style and, with TLS,
// the CA bundle.
func (v *S3Server) Env() []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + v.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + v.SecretKey,
		"AWS_REGION=" + v.Region,
		"WALVAULT_S3_ENDPOINT=" + v.Endpoint,
		"WALVAULT_S3_PATH_STYLE=true",
		// The gateway and the fault proxies in front of it are loopback
		// http:// servers, which walvault refuses unless told.
		"WALVAULT_S3_ALLOW_HTTP=true",
	}
	if v.CAFile != "" {
		env = append(env, "WALVAULT_S3_CA_BUNDLE="+v.CAFile)
	}
	return env
}

// EnvThrough is Env with the S3 endpoint replaced by a proxy in front of
// the gateway (FaultProxy or HTTPFaultProxy).
func (v *S3Server) EnvThrough(endpoint string) []string {
	env := v.Env()
	for i, kv := range env {
		if strings.HasPrefix(kv, "WALVAULT_S3_ENDPOINT=") {
			env[i] = "WALVAULT_S3_ENDPOINT=" + endpoint
		}
	}
	return env
}

// HTTPClient returns an HTTP client that trusts the gateway's certificate
// (StartVersityTLS), with timeout.
func (v *S3Server) HTTPClient(t testing.TB, timeout time.Duration) *http.Client {
	t.Helper()
	httpClient := &http.Client{Timeout: timeout}
	if v.CAFile != "" {
		pemBytes, err := os.ReadFile(v.CAFile)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		httpClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	return httpClient
}

// Client returns an SDK client for the gateway with its root credentials,
// for test setup and inspection.
func (v *S3Server) Client(t testing.TB) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		Region:                     v.Region,
		BaseEndpoint:               aws.String(v.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, ""),
		HTTPClient:                 v.HTTPClient(t, 2*time.Minute),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates a bucket (3 or more lower-case characters), with
// Object Lock enabled when objectLock is true.
func (v *S3Server) CreateBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	client := v.Client(t)
	for {
		_, err := client.CreateBucket(ctx, in)
		if err == nil {
			return
		}
		// MinIO reports ready on its health endpoint a moment before its
		// S3 API takes requests, and answers 503 until then.
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "XMinioServerNotInitialized" && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Fatalf("testenv: creating bucket %q (object lock %v): %v", name, objectLock, err)
	}
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before the gateway binds it; startVersity retries then.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return hex.EncodeToString(b)
}

// writeTestCerts writes a self-signed CA and a server certificate for
// 127.0.0.1 and localhost signed by it into dir, and returns the paths of
// the server cert, its key and the CA cert.
func writeTestCerts(t testing.TB, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	fail := func(err error) { t.Fatalf("testenv: generating test certificates: %v", err) }
	now := time.Now()
	// issue makes a key and a certificate of it from tmpl, signed by
	// parent's key, or self-signed when parent is nil.
	issue := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			fail(err)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			fail(err)
		}
		return key, der
	}

	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "walvault test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caKey, caDER := issue(caTmpl, nil, nil)
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		fail(err)
	}

	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvKey, srvDER := issue(srvTmpl, caCert, caKey)
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		fail(err)
	}

	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			fail(err)
		}
		return p
	}
	return write("server.pem", "CERTIFICATE", srvDER),
		write("server-key.pem", "PRIVATE KEY", srvKeyDER),
		write("ca.pem", "CERTIFICATE", caDER)
}

// SyncBuffer collects a child's output from two pipes at once, and may be
// read while the child still writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// UseAsAWSChain points the test process's AWS chain at the gateway's
// credentials and nothing else: no shared config, profile, session token,
// endpoint or CA bundle from the machine running the tests.
func (v *S3Server) UseAsAWSChain(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", v.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", v.SecretKey)
	t.Setenv("AWS_REGION", v.Region)
}
