package s3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walvault/walvault/storage"
)

// apiError builds the error the SDK returns for an S3 answer.
func apiError(status int, code string) error {
	return opError("GetObject", status, code)
}

// opError builds the error the SDK returns for an S3 answer to op.
func opError(op string, status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "message for " + code}
	if code == "" {
		inner = errors.New("http error")
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      inner,
		},
		RequestID: "REQ",
	}}
}

// dated gives the answer err carries a Date header.
func dated(err error, date time.Time) error {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		re.Response.Header = http.Header{"Date": {date.UTC().Format(http.TimeFormat)}}
	}
	return err
}

// TestTranslate: only a key's 404 may become "not found" (and translate
// never says it: its callers do, knowing the operation); 403, bad
// credentials, a missing bucket and any 4xx but those that say "try again"
// are permanent, server errors are not.
func TestTranslate(t *testing.T) {
	b := &Backend{bucket: "bkt", location: "s3://bkt"}
	for _, tc := range []struct {
		name          string
		err           error
		wantNotFound  bool
		wantPermanent bool
		wantMsg       string
	}{
		// Callers map these to ErrNotFound before translate; one that
		// reaches it (a later range of a Get whose object was deleted
		// meanwhile) gets the same answer again.
		{"NoSuchKey", apiError(404, "NoSuchKey"), true, true, ""},
		{"HEAD 404", apiError(404, "NotFound"), true, true, ""},
		{"NoSuchBucket", apiError(404, "NoSuchBucket"), false, true, `bucket "bkt" does not exist`},
		{"AccessDenied", apiError(403, "AccessDenied"), false, true, "s3:ListBucket"},
		{"HEAD 403", apiError(403, "Forbidden"), false, true, "s3:GetObject"},
		{"HEAD 403 of a server 20 minutes ahead", dated(opError("HeadObject", 403, ""), time.Now().Add(20*time.Minute)), false, true, "clock is off"},
		{"HEAD 403 of a server 2 minutes ahead", dated(opError("HeadObject", 403, ""), time.Now().Add(2*time.Minute)), false, true, "s3:GetObject"},
		{"bare 403", apiError(403, ""), false, true, "access denied"},
		{"InvalidAccessKeyId", apiError(403, "InvalidAccessKeyId"), false, true, "AWS credential chain"},
		{"SignatureDoesNotMatch", apiError(403, "SignatureDoesNotMatch"), false, true, "AWS credential chain"},
		{"Versity XAdminUserNotFound", apiError(404, "XAdminUserNotFound"), false, true, "AWS credential chain"},
		{"401", apiError(401, ""), false, true, "AWS credential chain"},
		{"InvalidRequest", apiError(400, "InvalidRequest"), false, true, ""},
		{"HEAD bare 400", opError("HeadObject", 400, "BadRequest"), false, true, "set s3-region"},
		{"unknown 404", apiError(404, "XUnknown"), false, true, ""},
		{"unknown 409", apiError(409, "XUnknown"), false, true, ""},
		{"422", apiError(422, "UnprocessableEntity"), false, true, ""},
		{"RequestTimeout", apiError(400, "RequestTimeout"), false, false, ""},
		{"IncompleteBody", apiError(400, "IncompleteBody"), false, false, ""},
		{"OperationAborted", apiError(409, "OperationAborted"), false, false, ""},
		{"ConditionalRequestConflict", apiError(409, "ConditionalRequestConflict"), false, false, ""},
		{"408", apiError(408, ""), false, false, ""},
		{"429", apiError(429, ""), false, false, ""},
		{"InternalError", apiError(500, "InternalError"), false, false, ""},
		{"SlowDown", apiError(503, "SlowDown"), false, false, ""},
		{"network", errors.New("dial tcp 127.0.0.1:1: connection refused"), false, false, ""},
		{"cancelled", context.Canceled, false, false, ""},
		{"no credentials", &credentialsError{err: errors.New("no EC2 IMDS role found")}, false, true, "AWS chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isNotFound(tc.err); got != tc.wantNotFound {
				t.Errorf("isNotFound(%v): got %v, want %v", tc.err, got, tc.wantNotFound)
			}
			got := b.translate(tc.err)
			if errors.Is(got, storage.ErrNotFound) {
				t.Errorf("translate(%v): got %v, which matches ErrNotFound; translate must never say not found", tc.err, got)
			}
			if p := storage.IsPermanent(got); p != tc.wantPermanent {
				t.Errorf("translate(%v): permanent: got %v, want %v (%v)", tc.err, p, tc.wantPermanent, got)
			}
			if !strings.Contains(got.Error(), tc.wantMsg) {
				t.Errorf("translate(%v): got %q, want it to contain %q", tc.err, got, tc.wantMsg)
			}
		})
	}
}

func TestPutErrorExists(t *testing.T) {
	b := &Backend{bucket: "bkt", location: "s3://bkt"}
	for _, err := range []error{apiError(412, "PreconditionFailed"), apiError(409, "ConditionalRequestConflict")} {
		if got := b.putError(err, storage.PutOptions{IfNotExists: true}); !errors.Is(got, storage.ErrExists) {
			t.Errorf("putError(%v, IfNotExists): got %v, want storage.ErrExists", err, got)
		}
	}
	err := apiError(400, "InvalidRequest")
	err.(*smithy.OperationError).Err.(*awshttp.ResponseError).Err = &smithy.GenericAPIError{Code: "InvalidRequest", Message: "Bucket is missing Object Lock Configuration"}
	if got := b.putError(err, storage.PutOptions{Retention: &storage.Retention{Mode: storage.Governance}}); !errors.Is(got, storage.ErrUnsupported) {
		t.Errorf("putError(%v, Retention): got %v, want storage.ErrUnsupported", err, got)
	}
}

// dnsError builds the error the SDK returns when the request's host name
// does not resolve.
func dnsError(name string, notFound bool) error {
	dnsErr := &net.DNSError{Err: "no such host", Name: name, IsNotFound: notFound, IsTimeout: !notFound}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &smithyhttp.RequestSendError{
		Err: &url.Error{Op: "Get", URL: "http://" + name + ":9000/k", Err: &net.OpError{Op: "dial", Net: "tcp", Err: dnsErr}},
	}}
}

// TestTranslateDNS: a "no such host" for <bucket>.<endpoint host> while the
// endpoint's host resolves is virtual-hosted addressing against a server
// without names per bucket: permanent, naming s3-path-style. Any other
// "no such host" is retried (a name may be briefly missing), with a hint
// for when the deadline ends it; a DNS timeout is retried as it was.
func TestTranslateDNS(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pathStyle     bool
		err           error
		endpointFound bool
		wantPermanent bool
		wantMsg       string
		wantLookups   int
	}{
		{"bucket name missing, endpoint resolves", false, dnsError("bkt.minio.internal", true), true, true, "set s3-path-style true (WALVAULT_S3_PATH_STYLE)", 1},
		{"bucket name missing, trailing dot", false, dnsError("BKT.minio.internal.", true), true, true, "s3-path-style", 1},
		{"bucket name and endpoint missing", false, dnsError("bkt.minio.internal", true), false, false, "DNS has no host bkt.minio.internal", 1},
		{"endpoint missing, path style", true, dnsError("minio.internal", true), true, false, "DNS has no host minio.internal", 0},
		{"another name missing", false, dnsError("other.minio.internal", true), true, false, "DNS has no host other.minio.internal", 0},
		{"DNS timeout", false, dnsError("bkt.minio.internal", false), true, false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookups := 0
			b := &Backend{bucket: "bkt", location: "s3://bkt", endpointHost: "minio.internal", pathStyle: tc.pathStyle,
				lookupHost: func(_ context.Context, host string) ([]string, error) {
					lookups++
					if host != "minio.internal" {
						t.Errorf("looked up %q, want the endpoint's host minio.internal", host)
					}
					if !tc.endpointFound {
						return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
					}
					return []string{"10.0.0.1"}, nil
				}}
			got := b.translate(tc.err)
			if p := storage.IsPermanent(got); p != tc.wantPermanent {
				t.Errorf("permanent: got %v, want %v (%v)", p, tc.wantPermanent, got)
			}
			if !strings.Contains(got.Error(), tc.wantMsg) {
				t.Errorf("got %q, want it to contain %q", got, tc.wantMsg)
			}
			if tc.wantMsg == "" && strings.Contains(got.Error(), "hint") {
				t.Errorf("got %q, want no hint", got)
			}
			if lookups != tc.wantLookups {
				t.Errorf("lookups of the endpoint's host: got %d, want %d", lookups, tc.wantLookups)
			}
		})
	}
}
