package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/walvault/walvault/internal/freelist"
	"github.com/walvault/walvault/storage"
)

const (
	// DefaultPartSize is the multipart part size, and the largest object
	// sent as a single PutObject.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is the number of parts uploaded at once.
	DefaultConcurrency = 4
	// MinPartSize and MaxPartSize are S3's limits on a part.
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	// maxParts is S3's limit on the parts of one upload: with the default
	// part size an object can be up to 160 GiB.
	maxParts = 10000
	// DefaultRegion is used when neither Config.Region nor the AWS chain
	// names one.
	DefaultRegion = "us-east-1"

	dialTimeout         = 5 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	// sdkMaxAttempts bounds the SDK's own retries, which only the requests
	// of a multipart upload get (see multipartRetries); walvault's retry
	// decorator (storage.WithRetry) retries every other call.
	sdkMaxAttempts = 3
	// DefaultRequestRetryTime is Config.RequestRetryTime's default.
	DefaultRequestRetryTime = 2 * time.Minute
	// abortTimeout bounds the cleanup of a failed multipart upload, which
	// runs even when the caller's context is already done.
	abortTimeout = 30 * time.Second
)

// Config is what New needs. Credentials are not part of it: they come only
// from the standard AWS chain (environment, shared config and credentials
// files, SSO, web identity, container and instance roles).
type Config struct {
	// SSE asks the server to encrypt every object written: "" (the
	// bucket's default), "AES256" or "aws:kms"; SSEKMSKeyID names the KMS
	// key for "aws:kms" ("" is the account's default key).
	SSE         string
	SSEKMSKeyID string
	Bucket      string
	// Prefix is prepended to every key ("prefix/key"); empty for the
	// bucket's root. Leading and trailing slashes are ignored.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server
	// ("https://minio.example:9000"); empty for AWS.
	Endpoint string
	// Region defaults to the AWS chain's, else DefaultRegion.
	Region string
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint (most S3-compatible servers need it).
	PathStyle bool
	// AllowHTTP accepts an http:// endpoint set in the AWS configuration
	// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, a profile's endpoint_url),
	// which the caller could not check as it checks Endpoint.
	AllowHTTP bool
	// CABundle is a PEM file of CA certificates to trust instead of the
	// system's, for servers with a private CA.
	CABundle string
	// PartSize is the multipart part size in bytes (default 16 MiB, at
	// least 5 MiB). Objects up to PartSize go in one PutObject.
	PartSize int64
	// Concurrency is how many parts of one Put are in flight (default 4).
	//
	// Memory: one Put holds at most PartSize x Concurrency bytes of
	// buffers (64 MiB with the defaults), whatever the object's size.
	// Reads hold at most 32 MiB of buffers (4 chunks of 8 MiB, downloaded
	// ahead of their readers) for all the Gets of a Backend together,
	// whatever their number: a Get that finds none free reads its next
	// ranges itself, one request at a time.
	Concurrency int
	// Log, when set, receives the SDK's own messages (such as its fallback
	// to IMDSv1 while it looks for credentials), so they keep the
	// command's log format and level instead of the SDK's plain line on
	// stderr.
	Log *slog.Logger
	// StallTimeout is how long one request may go without progress before
	// it is abandoned and, as any transient failure, retried (default
	// DefaultStallTimeout). It bounds what no deadline can: a body that
	// stops mid-transfer.
	StallTimeout time.Duration
	// RequestRetryTime is how long one request of a multipart upload is
	// sent again through a transient failure (an outage), from its first
	// attempt (default DefaultRequestRetryTime): the command's --timeout,
	// the budget storage.WithRetry gives every other call.
	RequestRetryTime time.Duration
	// ObjectLock says the caller will write with retention (a lock-mode is
	// set): whether the bucket has Object Lock, which such a write checks
	// first, is then asked beside the Backend's first HEAD, so a wal-push
	// in a process of its own makes two round trips, not three.
	ObjectLock bool
}

// Backend is a storage.Backend on an S3 bucket.
type Backend struct {
	client      *s3.Client
	creds       *reloadingCredentials // nil without a credential chain
	bucket      string
	region      string // requests are signed for
	prefix      string // "" or "p/" (with the trailing slash)
	location    string
	partSize    int64
	concurrency int
	buffers     *freelist.List // part buffers: a sync.Pool would lose them to the frequent collections of backup-push's soft memory limit
	// partSlots holds one token per part buffer out, across all Puts:
	// at most Concurrency (see partBuffer).
	partSlots chan struct{}
	// lockConfirmed: the bucket has Object Lock (see lock.go).
	lockConfirmed atomic.Bool
	// bucketCheck: whether the bucket exists, for HEAD 404s.
	bucketCheck settledCheck
	// lockCheck: whether the bucket has Object Lock, before a write with
	// retention; asked early when Config.ObjectLock says one will come.
	lockCheck       settledCheck
	expectLockWrite bool
	// multipartRetries gives a request of a multipart upload the SDK's
	// retries: walvault's retry decorator can only redo a whole Put, and
	// not at all one streamed from a pipe, so a lost part would otherwise
	// fail a backup of many gigabytes.
	multipartRetries func(*s3.Options)
	// requestRetryTime bounds sendAgain (Config.RequestRetryTime); log
	// is where its warning goes when the context carries no call log.
	requestRetryTime time.Duration
	log              *slog.Logger
	// rangeRetries gives the later ranges of a Get (ranged.go) the SDK's
	// retries, for the same reason: the decorator redoes only the Get's
	// first request, and a lost range would fail a read of the whole object.
	rangeRetries func(*s3.Options)
	// Get's chunks (ranged.go): their size, and the budget of buffers all
	// Gets share (a token in getBudget for each buffer out).
	getChunk   int64
	getBudget  chan struct{}
	getBuffers *freelist.List
	// ifMatchRefused: the server answered If-Match on a GET with 501 Not
	// Implemented; later ranges go without it (see rangedBody.open).
	ifMatchRefused atomic.Bool
	// versionsPageSize caps ListObjectVersions pages (0: the server's
	// default of 1000); tests lower it to cross page boundaries.
	versionsPageSize int32
	// sse and sseKMSKeyID go with every write (see Config.SSE).
	sse, sseKMSKeyID string
	// endpointHost is the host name of Config.Endpoint ("" for AWS), and
	// pathStyle Config.PathStyle: with them a DNS failure of
	// <bucket>.<endpointHost> is told apart (see unresolvedHost).
	endpointHost string
	// endpoint is Config.Endpoint, or the one the AWS configuration set.
	endpoint  string
	pathStyle bool
	// caBundle: Config.CABundle was set (certificateHint).
	caBundle bool
	// lookupHost resolves a host name (nil: net.DefaultResolver's).
	lookupHost func(ctx context.Context, host string) ([]string, error)
}

var _ storage.Backend = (*Backend)(nil)

// New checks cfg and builds the client. It loads credentials lazily: it
// does not contact the server or the credential providers.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(newHTTPClient()),
		config.WithRetryer(newRetryer),
	}
	if cfg.CABundle != "" {
		// Trust exactly these CAs; takes precedence over AWS_CA_BUNDLE.
		pem, err := readCABundle(cfg.CABundle)
		if err != nil {
			return nil, err
		}
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Log != nil {
		opts = append(opts, config.WithLogger(sdkLogger{cfg.Log}))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// The message names files and profiles, not secrets.
		return nil, fmt.Errorf("s3: loading the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.RequestRetryTime <= 0 {
		cfg.RequestRetryTime = DefaultRequestRetryTime
	}
	// Wrapped after loading, so the AWS chain's own CA bundle still
	// reached the buildable client.
	awsCfg.HTTPClient = &stallGuard{next: awsCfg.HTTPClient, idle: cfg.StallTimeout}
	var creds *reloadingCredentials
	if awsCfg.Credentials != nil {
		creds = newReloadingCredentials(awsCfg.Credentials, func(ctx context.Context) (aws.CredentialsProvider, error) {
			c, err := config.LoadDefaultConfig(ctx, opts...)
			return c.Credentials, err
		})
		awsCfg.Credentials = markedCredentials{creds.cache}
	}
	var sdkEndpoint string
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// The SDK has resolved its own endpoint settings by now.
		if cfg.Endpoint == "" && o.BaseEndpoint != nil {
			sdkEndpoint = *o.BaseEndpoint
		}
		// The SDK's S3 signer, but for keys rotated under one access key
		// id (rotatingSigner).
		logger := o.Logger
		o.HTTPSignerV4 = &rotatingSigner{options: func(so *v4.SignerOptions) {
			so.Logger = logger
			so.DisableURIPathEscaping = true
		}}
		// One retry budget per call: walvault's retry decorator's. The SDK's
		// retryer stays on for the credential providers built from awsCfg,
		// and for the requests of a multipart upload (multipartRetries).
		o.Retryer = aws.NopRetryer{}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// S3-compatible servers often reject the CRC checksums the SDK sends
		// by default; send them only when an operation requires one or a
		// Put asks (Object Lock writes, see put.go).
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// No "Expect: 100-continue" on uploads over 2 MB (the SDK's
		// default): waiting for the server's interim answer before sending
		// the body costs a round trip on every segment and part, and saves
		// only the bytes of a request the server refuses, which walvault
		// does not make in normal operation.
		o.ContinueHeaderThresholdBytes = -1
	})

	if sdkEndpoint != "" {
		// AWS_ENDPOINT_URL(_S3) or a profile's endpoint_url sends every
		// request elsewhere than AWS: checked as s3-endpoint is, and named
		// in every message.
		if err := sdkEndpointAllowed(sdkEndpoint, cfg); err != nil {
			return nil, err
		}
		cfg.Endpoint = sdkEndpoint
	}
	partRetryer, rangeRetryer := newRetryer(), newRetryer()
	b := &Backend{
		creds:            creds,
		client:           client,
		multipartRetries: func(o *s3.Options) { o.Retryer = partRetryer },
		rangeRetries:     func(o *s3.Options) { o.Retryer = rangeRetryer },
		bucket:           cfg.Bucket,
		region:           awsCfg.Region,
		prefix:           prefix,
		partSize:         cfg.PartSize,
		concurrency:      cfg.Concurrency,
		sse:              cfg.SSE,
		sseKMSKeyID:      cfg.SSEKMSKeyID,
		expectLockWrite:  cfg.ObjectLock,
		pathStyle:        cfg.PathStyle,
		caBundle:         cfg.CABundle != "",
		requestRetryTime: cfg.RequestRetryTime,
		log:              cfg.Log,
	}
	b.endpoint = cfg.Endpoint
	if u, err := url.Parse(cfg.Endpoint); err == nil && cfg.Endpoint != "" {
		b.endpointHost = strings.ToLower(u.Hostname())
	}
	b.partSlots = make(chan struct{}, b.concurrency) // see partBuffer
	b.location = "s3://" + cfg.Bucket
	if prefix != "" {
		b.location += "/" + strings.TrimSuffix(prefix, "/")
	}
	if cfg.Endpoint != "" {
		b.location += " at " + redactURL(cfg.Endpoint)
	}
	b.buffers = freelist.New(int(b.partSize), b.concurrency)
	b.setGetChunks(getChunkSize, getBuffers)
	return b, nil
}

// newHTTPClient builds the SDK's client with timeouts, so a dead or silent
// server fails a call instead of hanging it. Long transfers are bounded by
// the caller's context, not by a client timeout. It stays an
// awshttp.BuildableClient so the AWS chain's own CA bundle (AWS_CA_BUNDLE,
// ca_bundle in the shared config) still works.
func newHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = tlsHandshakeTimeout
			// No ResponseHeaderTimeout: it runs from when the body is
			// with the kernel, which over a slow link still has
			// megabytes of it to send (explore25f). The stall guard
			// (stallGuard) waits for the answer with that allowance.
			tr.MaxIdleConnsPerHost = idleConnsPerHost
			// A server or load balancer that closes connections (some
			// after every answer, most after an idle while: a quiet
			// database pushes a segment every few minutes) makes each
			// request a new TLS connection; resuming the session spares
			// both sides the certificate's signature and its checks.
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		})
}

// idleConnsPerHost is how many connections to the endpoint stay open
// between requests. The SDK keeps 10; a repository's inventory reads 32
// small objects at once (and backup-push's parts, restore's ranged reads
// and push-ahead run several requests at once too), so with 10 each round
// of reads would open 22 new connections, each a TCP and TLS handshake.
const idleConnsPerHost = 64

// newRetryer is the SDK's standard retryer with sdkMaxAttempts attempts,
// which does not retry TLS certificate failures (the SDK counts them as
// connection errors): no retry can make an untrusted certificate trusted.
// It has no retry quota: the SDK's default, a token bucket shared by the
// client's requests, is drained by an outage in a long-lived process
// (wal-helper, wal-receive, a backup), which then gets no attempt but the
// first ("retry quota exceeded") until successes refill it. walvault
// bounds retries itself (storage.Retry, sendAgain: backoff up to the
// deadline).
func newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = sdkMaxAttempts
		o.RateLimiter = ratelimit.None
		noCert := retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if isCertificateError(err) {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})
		o.Retryables = append([]retry.IsErrorRetryable{noCert}, o.Retryables...)
	})
}

// readCABundle reads a PEM file of CA certificates, checking that it holds
// at least one.
func readCABundle(path string) ([]byte, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("s3: reading the CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3: CA bundle %s holds no PEM certificate", path)
	}
	return pem, nil
}

// Validate checks the settings without touching the network: what it
// refuses is a configuration to fix (zero PartSize and Concurrency mean
// their defaults).
func (cfg Config) Validate() error {
	if err := validBucket(cfg.Bucket); err != nil {
		return err
	}
	if prefix := strings.Trim(cfg.Prefix, "/"); prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return fmt.Errorf("s3: bad prefix: %v", err)
		}
	}
	if cfg.PartSize != 0 && (cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize) {
		return fmt.Errorf("s3: part size %d is out of range: S3 parts are %d (5 MiB) to %d (5 GiB) bytes", cfg.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if cfg.Concurrency < 0 {
		return fmt.Errorf("s3: concurrency %d: want at least 1", cfg.Concurrency)
	}
	if err := validSSE(cfg.SSE, cfg.SSEKMSKeyID); err != nil {
		return err
	}
	if cfg.CABundle != "" {
		if _, err := readCABundle(cfg.CABundle); err != nil {
			return fmt.Errorf("s3-ca-bundle: %w", err)
		}
	}
	return validEndpoint(cfg.Endpoint, cfg.Bucket)
}

// validBucket checks the bucket name loosely (S3-compatible servers differ),
// catching what would otherwise become a confusing request error.
func validBucket(name string) error {
	if name == "" {
		return errors.New("s3: no bucket: the repository URL is s3://bucket/prefix")
	}
	if len(name) < 3 || len(name) > 63 || strings.ContainsAny(name, "/\\ ") {
		return fmt.Errorf("s3: invalid bucket name %q: 3 to 63 characters, no slashes or spaces", name)
	}
	return nil
}

// validEndpoint refuses an endpoint that is not http(s)://host[:port],
// saying what to write. One that ends in the bucket's name is the
// bucket's URL, which S3 requests would then name twice. Any other path is
// refused too: S3 servers (AWS, MinIO, Ceph RGW, R2, B2, GCS, Versity) take
// the bucket from the host name or the first path element, never from
// under a prefix, so the server would read the path's first element as
// the bucket; and since SigV4 signs the path, no proxy can strip one.
func validEndpoint(endpoint, bucket string) error {
	if endpoint == "" {
		return nil
	}
	if !strings.Contains(endpoint, "://") && !strings.Contains(endpoint, "@") {
		return fmt.Errorf("s3: endpoint %q has no scheme: write https://%s (or http:// with s3-allow-http)", endpoint, endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("s3: bad endpoint %q: want http(s)://host[:port] without credentials", redactURL(endpoint))
	}
	path := strings.Trim(u.Path, "/")
	if path == bucket || strings.HasPrefix(path, bucket+"/") {
		return fmt.Errorf("s3: endpoint %q names the bucket: give the server alone as the endpoint (%s://%s) and the bucket in the repository URL (s3://%s/PREFIX)", redactURL(endpoint), u.Scheme, u.Host, bucket)
	}
	if path != "" {
		return fmt.Errorf("s3: endpoint %q has a path: S3 servers take the bucket from the host name or the path's first element, so the server would take %q for the bucket: give the server alone as the endpoint (%s://%s)", redactURL(endpoint), strings.SplitN(path, "/", 2)[0], u.Scheme, u.Host)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// The SDK refuses it on every request, which would be retried
		// until the timeout.
		return fmt.Errorf("s3: endpoint %q has a query or a fragment: give the server alone as the endpoint (%s://%s)", redactURL(endpoint), u.Scheme, u.Host)
	}
	return nil
}

// redactURL drops userinfo, query and fragment from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery, u.Fragment = "", ""
	// Without "//" ("minio:secret@host:9000"), what follows the first
	// colon is opaque, credentials included.
	if i := strings.LastIndex(u.Opaque, "@"); i >= 0 {
		u.Opaque = u.Opaque[i+1:]
	}
	return u.String()
}

// objectKey maps a storage key to the bucket's key.
func (b *Backend) objectKey(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", storage.Permanent(err)
	}
	return b.prefix + key, nil
}

// Location is "s3://bucket/prefix", plus " at <endpoint>" for a custom
// endpoint. It never holds credentials.
func (b *Backend) Location() string { return b.location }

// Reach is the endpoint ("" for AWS) and region the requests go to and are
// signed for, wherever they were set: a flag, WALVAULT_S3_*, or the AWS
// configuration (AWS_ENDPOINT_URL_S3, AWS_REGION, a profile).
func (b *Backend) Reach() (endpoint, region string) { return b.endpoint, b.region }

// Close does nothing: the SDK's client holds no resources beyond idle
// connections, which its transport closes after 90 seconds.
func (b *Backend) Close() error { return nil }

// ErrSetting marks an error of New that is a setting to fix, not the
// storage failing (exit code 2 through storage/open).
var ErrSetting = errors.New("bad S3 setting")

// sdkEndpointAllowed checks an endpoint the AWS configuration set as an
// s3-endpoint is checked.
func sdkEndpointAllowed(endpoint string, cfg Config) error {
	const from = "the AWS configuration (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, or endpoint_url in the shared config) sets the S3 endpoint"
	if err := validEndpoint(endpoint, cfg.Bucket); err != nil {
		return fmt.Errorf("%w: %s: %w; set s3-endpoint (WALVAULT_S3_ENDPOINT) instead, or remove that setting", ErrSetting, from, err)
	}
	if strings.HasPrefix(strings.ToLower(endpoint), "http://") && !cfg.AllowHTTP {
		return fmt.Errorf("%w: %s to %s, and http:// sends every object and request unencrypted over the network: use https://, or set s3-allow-http true (WALVAULT_S3_ALLOW_HTTP) for a loopback or test server", ErrSetting, from, redactURL(endpoint))
	}
	return nil
}

// markedCredentials marks failures of the credential chain, so errors.go can
// tell "no usable credentials" from a network error.
type markedCredentials struct{ aws.CredentialsProvider }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err: err}
	}
	return c, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	return "no usable AWS credentials: " + withoutProcessOutput(e.err.Error())
}

// withoutProcessOutput drops from a credential chain's error the output
// of a credential_process the SDK could not parse, which it quotes whole:
// keys and tokens the process printed around whatever broke the parse.
func withoutProcessOutput(msg string) string {
	const quoted = "parse failed of process output: "
	i := strings.Index(msg, quoted)
	if i < 0 {
		return msg
	}
	rest := msg[i+len(quoted):]
	tail := ""
	if j := strings.LastIndex(rest, ", error: "); j >= 0 {
		tail = rest[j:]
	}
	return msg[:i+len(quoted)] + "[the output is not shown: it may hold credentials]" + tail
}
func (e *credentialsError) Unwrap() error { return e.err }

// sdkLogger hands the SDK's messages to a slog.Logger: warnings as
// warnings, the rest at debug level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelDebug
	// Failing to drain a body that broke (a read cut short, which
	// walvault retries itself) only costs a connection: no warning.
	if c == logging.Warn && !strings.HasPrefix(msg, "failed to discard remaining HTTP response body") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, msg, "source", "aws-sdk")
}

// WithContext is the logger of one operation: the calling command's
// (storage.WithCallLog), when its context names one.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return sdkLogger{storage.CallLog(ctx, l.log)}
}
