package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walvault/walvault/storage"
)

// Error codes S3 (and S3-compatible servers) answer with. HEAD responses
// have no body, so for them only the HTTP status is known; the SDK then
// reports "NotFound", "Forbidden" or the bare status.
const (
	codeNoSuchKey           = "NoSuchKey"
	codeNotFound            = "NotFound"
	codeNoSuchBucket        = "NoSuchBucket"
	codeAccessDenied        = "AccessDenied"
	codeForbidden           = "Forbidden"
	codePreconditionFailed  = "PreconditionFailed"
	codeConditionalConflict = "ConditionalRequestConflict"
	codeInvalidRequest      = "InvalidRequest"
	// codeClockSkewed: the request's signing time is more than
	// maxClockSkew away from the server's clock (AWS answers 403).
	codeClockSkewed = "RequestTimeTooSkewed"
	// codeR2Locked is Cloudflare R2's refusal of an object under a bucket
	// lock rule (403); R2 sends no x-amz-object-lock-* headers for it.
	codeR2Locked = "ObjectLockedByBucketPolicy"
)

// maxClockSkew is how far S3 lets a request's time stray from its own.
const maxClockSkew = 15 * time.Minute

// transientCodes mean "busy or briefly broken, try again": throttling
// (AWS, MinIO, Ceph RGW and B2 answer 503 SlowDown; R2 429
// TooManyRequests), server faults, an idle socket the server gave up on
// (400 RequestTimeout), a body cut in transit (400 IncompleteBody) and,
// AWS's 409s, another operation on the resource in flight
// (OperationAborted; ConditionalRequestConflict, which only a conditional
// create reads as ErrExists, see putError). These are the only 4xx
// answers retried: any other 4xx asks again what the server has refused.
var transientCodes = map[string]bool{
	"SlowDown":              true,
	"TooManyRequests":       true,
	"ServiceUnavailable":    true,
	"InternalError":         true,
	"RequestTimeout":        true,
	"IncompleteBody":        true,
	"OperationAborted":      true,
	codeConditionalConflict: true,
}

// credentialCodes mean the credentials are wrong, not the request.
// XAdminUserNotFound is Versity S3 Gateway's answer (404, in its
// single-account mode) to an access key it does not know, where AWS and
// MinIO answer 403 InvalidAccessKeyId.
var credentialCodes = map[string]bool{
	"InvalidAccessKeyId":           true,
	"SignatureDoesNotMatch":        true,
	"InvalidToken":                 true,
	"InvalidTokenId":               true, // MinIO: a bad or missing session token
	"InvalidClientTokenId":         true,
	"ExpiredToken":                 true,
	"TokenRefreshRequired":         true,
	"InvalidSecurity":              true,
	"AuthorizationHeaderMalformed": true,
	"XAdminUserNotFound":           true,
}

// permanentCodes are request errors that a retry repeats.
var permanentCodes = map[string]bool{
	codeInvalidRequest:                     true,
	"InvalidArgument":                      true,
	"InvalidBucketName":                    true,
	"InvalidObjectState":                   true,
	"InvalidPart":                          true,
	"InvalidPartOrder":                     true,
	"InvalidDigest":                        true,
	"BadDigest":                            true,
	"EntityTooLarge":                       true,
	"EntityTooSmall":                       true,
	"KeyTooLongError":                      true,
	"MetadataTooLarge":                     true,
	"MalformedXML":                         true,
	"MethodNotAllowed":                     true,
	"NotImplemented":                       true,
	"MissingContentLength":                 true,
	"InvalidBucketState":                   true,
	"InvalidRetentionPeriod":               true,
	"ObjectLockConfigurationNotFoundError": true,
	"PermanentRedirect":                    true,
	"AuthorizationQueryParametersError":    true,
	"AccountProblem":                       true,
	"AllAccessDisabled":                    true,
}

// errorCode returns the S3 error code and HTTP status of err, if it is a
// service answer ("" and 0 otherwise).
func errorCode(err error) (code string, status int) {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return code, status
}

// isNotFound reports a 404 for a key: NoSuchKey from GET, or, for HEAD
// (no body, no code), the bare status, which may also mean a missing bucket:
// callers of HeadObject confirm the bucket with bucketMissing.
func isNotFound(err error) bool {
	code, status := errorCode(err)
	switch code {
	case codeNoSuchKey, codeNotFound:
		return true
	case "":
		return status == http.StatusNotFound
	}
	return false
}

// isPreconditionFailed reports the answer to a conditional create over an
// existing key: 412, or 409 when a racing conditional write was in flight.
func isPreconditionFailed(err error) bool {
	code, status := errorCode(err)
	return code == codePreconditionFailed || code == codeConditionalConflict ||
		status == http.StatusPreconditionFailed
}

// isNotImplemented reports S3's answer to a header that asks for what the
// server does not do.
func isNotImplemented(err error) bool {
	code, status := errorCode(err)
	return code == "NotImplemented" || status == http.StatusNotImplemented
}

// isTransient reports an answer that a later attempt may not get: the
// codes above (whatever the status), 408 (a proxy's request timeout), 429
// and 5xx but 501 Not Implemented.
func isTransient(err error) bool {
	code, status := errorCode(err)
	return transientCodes[code] || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		(status >= 500 && status != http.StatusNotImplemented)
}

// isCredentialError reports an answer that refuses the credentials: a
// code that says so, or 401 (S3 itself never sends 401, but a gateway or
// proxy in front of a server may).
func isCredentialError(err error) bool {
	code, status := errorCode(err)
	return credentialCodes[code] || status == http.StatusUnauthorized
}

// isRefusal reports that the server answered the request itself with "no"
// (a 4xx): not a missing key or bucket, not throttling, not the
// credentials or the clock. A refused delete is then either a lock or a
// permission problem, which the object's headers settle (delete.go).
func isRefusal(err error) bool {
	code, status := errorCode(err)
	if status < 400 || status >= 500 || status == http.StatusNotFound || isTransient(err) {
		return false
	}
	return code != codeNoSuchBucket && code != codeClockSkewed && !isCredentialError(err)
}

// isAccessDenied reports a 403.
func isAccessDenied(err error) bool {
	code, status := errorCode(err)
	return code == codeAccessDenied || code == codeForbidden || status == http.StatusForbidden
}

// translate turns an SDK error into walvault's vocabulary: permanent errors
// with a hint for what a person must fix, everything else (network, 5xx,
// throttling, timeouts) as is, so the retry decorator retries it. Throttling
// is recognised by its code before any status rule, and a clock more than
// 15 minutes off (403 RequestTimeTooSkewed) is permanent with its own
// message, not an access problem. Every other 4xx is permanent, known code
// or not: the server understood the question and refused it, and a retry
// until the deadline (two minutes for wal-push, ten for wal-fetch) would
// only hold up the report of what to fix. It never
// maps anything to storage.ErrNotFound: callers decide that, knowing the
// operation. It does not add the operation and key; callers wrap with
// storage.OpError.
func (b *Backend) translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The SDK's words for it ("StatusCode: 0, ... canceled") say
		// nothing a person can use.
		// It may have been a transfer too slow to end in time rather than
		// a silent server (explore25b F2): both are named.
		return fmt.Errorf("no answer from %s before the deadline (the storage did not answer, or the transfer was too slow to finish in time: over a slow link raise --timeout): %w", b.location, context.DeadlineExceeded)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		if why := unreadableSharedFile(); why != "" {
			return storage.Permanent(fmt.Errorf("%w; hint: %s", err, why))
		}
		return storage.Permanent(fmt.Errorf("%w; hint: set credentials for the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or container role)", err))
	}
	if herr := b.unresolvedHost(err); herr != nil {
		return herr
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// net/http's words when the endpoint answers a TLS handshake in
		// plain HTTP: a setting to fix, not an outage to wait out.
		return storage.Permanent(fmt.Errorf("%w; hint: the endpoint speaks plain HTTP, not HTTPS: write it as http://... (with s3-allow-http) or turn TLS on at the server", err))
	}
	if strings.Contains(err.Error(), "Proxy Authentication Required") {
		// Go's CONNECT through HTTPS_PROXY answered 407: no retry helps.
		return storage.Permanent(fmt.Errorf("%w; hint: the HTTP proxy (HTTPS_PROXY / HTTP_PROXY) wants credentials it was not given or refused: put them in the proxy URL (http://user:password@host:port), or set NO_PROXY for the S3 endpoint", err))
	}
	if isCertificateError(err) {
		return storage.Permanent(fmt.Errorf("%w; hint: %s", err, b.certificateHint(err)))
	}
	if region, ok := wrongRegion(err, b.region); ok {
		return storage.Permanent(fmt.Errorf("%s: set s3-region (WALVAULT_S3_REGION) to the bucket's region: %w", b.regionMismatch(region), err))
	}
	code, status := errorCode(err)
	if isCredentialError(err) || status == http.StatusForbidden {
		// Keys rotated on the host since this process loaded them (a
		// HEAD's 403 cannot say which refusal it is).
		b.creds.refused()
	}
	switch {
	case code == codeClockSkewed:
		return storage.Permanent(fmt.Errorf("the host's clock is off by more than 15 minutes from the server's (S3 refuses requests signed that far off): set the clock right (NTP) and try again: %w", err))
	case isTransient(err):
		return err // retried by storage.WithRetry
	case code == codeNoSuchBucket:
		return storage.Permanent(fmt.Errorf("bucket %q does not exist: create it or fix the repository URL: %w", b.bucket, err))
	case isCredentialError(err):
		return storage.Permanent(credentialsRefused(err))
	case status == http.StatusForbidden && (code == "" || code == codeForbidden) && isHead(err) && clockSkewed(err):
		// A HEAD answer has no body for RequestTimeTooSkewed; its Date
		// header still gives the server's time.
		return storage.Permanent(fmt.Errorf("the host's clock is off by more than 15 minutes from the server's (its answer is dated %s; S3 refuses requests signed that far off, and a HEAD's refusal cannot say so): set the clock right (NTP) and try again: %w", responseDate(err).UTC().Format(time.RFC3339), err))
	case code == codeAccessDenied || code == codeForbidden || status == http.StatusForbidden:
		return storage.Permanent(fmt.Errorf("%w; hint: access denied to %s: the credentials need s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the bucket (without s3:ListBucket S3 answers 403 for a missing key); a HEAD request also gets 403 for wrong credentials: check the AWS credential chain", err, b.location))
	case status == http.StatusBadRequest && (code == "" || code == "BadRequest") && isHead(err):
		// A HEAD answer has no body to say why; signing for another region
		// than the bucket's is what servers that name no region (Versity)
		// answer this way.
		return storage.Permanent(fmt.Errorf("%w; hint: the server refused the request (400) without saying why, as it must for a HEAD; the usual cause is the region: requests are signed for %q; set s3-region (WALVAULT_S3_REGION) to the bucket's region", err, b.region))
	case permanentCodes[code], status >= 300 && status < 500, status == http.StatusNotImplemented:
		return storage.Permanent(err)
	}
	var pe *smithy.ParamRequiredError
	var ipe smithy.InvalidParamsError
	if errors.As(err, &pe) || errors.As(err, &ipe) {
		return storage.Permanent(err)
	}
	return err
}

// responseDate is the Date header of the answer err carries (zero when
// none).
func responseDate(err error) time.Time {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil || re.Response.Response == nil {
		return time.Time{}
	}
	t, perr := http.ParseTime(re.Response.Header.Get("Date"))
	if perr != nil {
		return time.Time{}
	}
	return t
}

// clockSkewed says whether the server's answer is dated more than the 15
// minutes S3 allows away from this host's clock.
func clockSkewed(err error) bool {
	date := responseDate(err)
	if date.IsZero() {
		return false
	}
	off := time.Since(date)
	return off > 15*time.Minute || off < -15*time.Minute
}

// isHead reports whether err answers a HEAD request (HeadObject,
// HeadBucket).
func isHead(err error) bool {
	var oe *smithy.OperationError
	return errors.As(err, &oe) && strings.HasPrefix(oe.OperationName, "Head")
}

// credentialsRefused adds the hint for an answer that refuses the
// credentials.
func credentialsRefused(err error) error {
	if os.Getenv("AWS_SESSION_TOKEN") != "" {
		return fmt.Errorf("%w; hint: the server refused the credentials, and AWS_SESSION_TOKEN is set: temporary credentials expire (some servers then call the key unknown): renew them, or give walvault a profile or role that renews them itself", err)
	}
	return fmt.Errorf("%w; hint: the server refused the credentials: check the AWS credential chain (environment, AWS_PROFILE, shared credentials file, role) and the clock", err)
}

// unresolvedHost explains a failure to resolve the request's host name
// because DNS says the name does not exist ("no such host"); nil for any
// other error.
//
// Such a failure is retried as a rule, with a hint for when the deadline
// ends it: a name can be missing for a while (a record being replaced, a
// Kubernetes service re-created, a resolver switching networks), and a
// DNS outage shows as a timeout or a refused query, which are retried
// anyway. But when the request went to <bucket>.<endpoint host>
// (virtual-hosted addressing, the default) and the endpoint's own name
// resolves, the bucket's name most likely never existed: the server has
// no DNS name per bucket and wants path-style addressing. That is a
// setting to fix, so it is permanent, with the setting named.
func (b *Backend) unresolvedHost(err error) error {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		return nil
	}
	name := strings.TrimSuffix(dnsErr.Name, ".")
	if b.endpointHost != "" && !b.pathStyle && strings.EqualFold(name, b.bucket+"."+b.endpointHost) {
		lookup := b.lookupHost
		if lookup == nil {
			lookup = net.DefaultResolver.LookupHost
		}
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		_, lerr := lookup(ctx, b.endpointHost)
		cancel()
		if lerr == nil {
			return storage.Permanent(fmt.Errorf("%w; hint: %s resolves but %s does not: the server has no host name per bucket; address the bucket in the path instead: set s3-path-style true (WALVAULT_S3_PATH_STYLE)", err, b.endpointHost, name))
		}
	}
	return fmt.Errorf("%w; hint: DNS has no host %s (retried until the deadline, in case it is only briefly missing): check s3-endpoint and the resolver", err, name)
}

// isCertificateError reports a TLS verification failure: retrying cannot fix
// it.
// certificateHint says what to do about a certificate the TLS handshake
// refused, by why it refused it.
func (b *Backend) certificateHint(err error) string {
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the server's TLS certificate has expired or is not valid yet: renew it on the server (or set this host's clock right)"
	case errors.As(err, &host):
		if b.pathStyle {
			return "the server's TLS certificate is not for the endpoint's host name: give s3-endpoint a name the certificate holds"
		}
		return "the server's TLS certificate is not for the host name asked (with virtual-hosted addressing the bucket is part of it, BUCKET.HOST): give s3-endpoint a name the certificate holds, use a wildcard certificate, or set s3-path-style true"
	case b.caBundle:
		return "the server's TLS certificate is not signed by a CA of the S3 CA bundle set (s3-ca-bundle): put the CA that signed it in that file"
	}
	return "the server's TLS certificate is not trusted: for a private CA set the S3 CA bundle (WALVAULT_S3_CA_BUNDLE)"
}

func isCertificateError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &verify)
}

// expectedRegion is how AWS (and MinIO) name the right region in the
// message of an AuthorizationHeaderMalformed answer: "... the region
// 'us-east-1' is wrong; expecting 'eu-west-1'"; Versity S3 Gateway quotes
// the regions in double quotes instead.
// Compiled on first use: every process links this package.
var expectedRegion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`expecting ['"]([a-z0-9-]+)['"]`) })

// wrongRegion reports an answer that says the bucket lives in another
// region than the one the request was signed for, and that region when the
// answer gives it: 301 PermanentRedirect (for HEAD a bodiless 301 with
// x-amz-bucket-region; a 301 without it is some other redirect), 400
// AuthorizationHeaderMalformed naming the expected region, or a bodiless
// 400 for HEAD whose x-amz-bucket-region is not the signed region.
func wrongRegion(err error, signed string) (region string, ok bool) {
	code, status := errorCode(err)
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		region = re.Response.Header.Get("x-amz-bucket-region")
	}
	var ae smithy.APIError
	if code == "AuthorizationHeaderMalformed" && errors.As(err, &ae) {
		if m := expectedRegion().FindStringSubmatch(ae.ErrorMessage()); m != nil {
			return m[1], true
		}
	}
	switch {
	case code == "PermanentRedirect", status == http.StatusMovedPermanently && region != "":
		return region, true
	case status == http.StatusBadRequest && region != "" && region != signed:
		return region, true
	}
	return "", false
}

// regionMismatch says where the bucket is, as far as an answer told.
func (b *Backend) regionMismatch(region string) string {
	where := "in another region"
	if region != "" {
		where = "in region " + region
	}
	return fmt.Sprintf("bucket %q is %s, and requests are signed for %s", b.bucket, where, b.region)
}

// bucketMissing asks whether the bucket exists, to tell a HEAD 404 for a
// missing key from one for a missing bucket (HEAD answers carry no error
// code). It returns the permanent "bucket does not exist" error, another
// error if the question could not be answered, or nil if the bucket is
// there (or we may not ask, which S3 only says of existing buckets).
//
// A 404 to HeadBucket is not always a missing bucket either: Versity
// answers every request with an unknown access key 404
// (XAdminUserNotFound). So the bucket is listed, whose answer has a body
// that names its error, before it is declared missing: one more request,
// only when HeadBucket said 404.
func (b *Backend) bucketMissing(ctx context.Context) error {
	_, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err == nil || isAccessDenied(err) {
		return nil
	}
	if !isNotFound(err) {
		return b.translate(err)
	}
	_, lerr := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b.bucket, MaxKeys: aws.Int32(1)})
	switch {
	case lerr == nil:
		return nil
	case isCredentialError(lerr):
		return storage.Permanent(credentialsRefused(fmt.Errorf("HeadBucket answered 404, and the bucket's listing says why: %w", lerr)))
	}
	// NoSuchBucket, or no clearer answer than HeadBucket's.
	return storage.Permanent(fmt.Errorf("bucket %q does not exist: create it or fix the repository URL: %w", b.bucket, err))
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// openShared opens a shared AWS file (a variable for tests: root reads
// any file).
var openShared = os.Open

// unreadableSharedFile says why the AWS chain found no credentials when
// the shared credentials or config file is there but this process cannot
// read it (the SDK passes over such a file without a word): a file an
// admin wrote with sudo, root's and mode 0600, while archive_command runs
// as postgres. "" otherwise.
func unreadableSharedFile() string {
	home, _ := os.UserHomeDir()
	for _, f := range []struct{ env, def string }{
		{"AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, ".aws", "credentials")},
		{"AWS_CONFIG_FILE", filepath.Join(home, ".aws", "config")},
	} {
		path := os.Getenv(f.env)
		if path == "" {
			if home == "" {
				continue
			}
			path = f.def
		}
		fh, err := openShared(path)
		if err == nil {
			fh.Close()
			continue
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Sprintf("%s exists, but this process (uid %d) cannot read it, and the AWS chain then passes over it: make it readable by the user walvault runs as (archive_command runs as the server's user, with the server's HOME)", path, os.Geteuid())
		}
	}
	return ""
}
