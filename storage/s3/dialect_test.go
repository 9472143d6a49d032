package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// The answers below are written from what each server documents (error
// code, HTTP status, message) for the same requests; they go through an
// httptest server to the real SDK client that storage/s3 builds.
//
//   - AWS S3: a DELETE of a version under retention or legal hold is 403
//     AccessDenied; throttling is 503 SlowDown, also 503 ServiceUnavailable
//     and 500 InternalError; a losing If-None-Match: * is 412
//     PreconditionFailed, or 409 ConditionalRequestConflict while another
//     conditional write of the key is in flight; a clock off by more than
//     15 minutes is 403 RequestTimeTooSkewed.
//   - MinIO: a locked version is 400 InvalidRequest "Object is WORM
//     protected and cannot be overwritten"; throttling 503 SlowDown.
//   - Ceph RGW: a locked version is 403 AccessDenied; throttling 503
//     SlowDown.
//   - Cloudflare R2: an object under a bucket lock rule is 403
//     ObjectLockedByBucketPolicy (R2 sends no per-object lock headers for
//     it); 429 TooManyRequests, 503 ServiceUnavailable, 500 InternalError;
//     412 PreconditionFailed.
//   - Backblaze B2 (S3-compatible API): a locked version is 403
//     AccessDenied; rate limits are 503 SlowDown.
//   - GCS (XML API): an object under a retention policy or hold is 403
//     AccessDenied; 429 and 503 for rate limits; 412 PreconditionFailed.
//
// The lock headers a HEAD shows are S3's x-amz-object-lock-* headers.

// answer is one canned response: a status, headers and, for an error, the
// code and message of S3's XML error body.
type answer struct {
	status  int
	header  map[string]string
	code    string
	message string
}

func (a answer) write(w http.ResponseWriter, r *http.Request) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.status == 0 || a.status < 300 {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "3")
		}
		w.WriteHeader(max(a.status, http.StatusOK))
		return
	}
	if a.code == "" || r.Method == http.MethodHead { // HEAD answers carry no body
		w.WriteHeader(a.status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(a.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><Resource>/bucket/k</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>`, a.code, a.message)
}

// dialect answers HEAD, GET, PUT and DELETE of one key with canned answers
// and records the requests.
type dialect struct {
	head, get, put, del answer

	mu   sync.Mutex
	seen []string // "METHOD ?query [If-None-Match]"
}

func (d *dialect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	method := r.Method
	if method == http.MethodHead && strings.Trim(r.URL.Path, "/") == "bucket" {
		method = "HeadBucket" // not a HEAD of a key
	}
	d.seen = append(d.seen, strings.TrimSpace(method+" ?"+r.URL.RawQuery+" "+r.Header.Get("If-None-Match")))
	d.mu.Unlock()
	switch r.Method {
	case http.MethodHead:
		d.head.write(w, r)
	case http.MethodGet:
		d.get.write(w, r)
	case http.MethodPut:
		d.put.write(w, r)
	case http.MethodDelete:
		d.del.write(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (d *dialect) requests(method string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, s := range d.seen {
		if strings.HasPrefix(s, method+" ") {
			out = append(out, s)
		}
	}
	return out
}

// headOf is a HEAD answer of version v1 with the given Object Lock headers.
func headOf(lock map[string]string) answer {
	h := map[string]string{
		"Last-Modified":    "Sat, 05 Dec 2026 10:00:00 GMT",
		"ETag":             `"900150983cd24fb0d6963f7d28e17f72"`,
		"x-amz-version-id": "v1",
	}
	for k, v := range lock {
		h[k] = v
	}
	return answer{status: http.StatusOK, header: h}
}

func retainedUntil(mode string, until time.Time) map[string]string {
	return map[string]string{
		"x-amz-object-lock-mode":              mode,
		"x-amz-object-lock-retain-until-date": until.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

var legalHold = map[string]string{"x-amz-object-lock-legal-hold": "ON"}

// TestDeleteRefusalDialects: a refused delete of a version whose HEAD shows
// a lock in force is storage.ErrLocked whatever the server's status and
// code; a refused delete of a version HEAD shows unlocked is a permanent
// error that is not ErrLocked; a throttled delete is neither, and is
// retried by the retry decorator.
func TestDeleteRefusalDialects(t *testing.T) {
	future := time.Now().Add(30 * 24 * time.Hour)
	past := time.Now().Add(-24 * time.Hour)
	for _, tc := range []struct {
		name          string
		head          answer
		del           answer
		wantLocked    bool
		wantPermanent bool
		wantMsg       string
	}{
		{"AWS S3 retention", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, true, true, "GOVERNANCE retention until"},
		{"AWS S3 legal hold", headOf(legalHold),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, true, true, "legal hold"},
		{"MinIO WORM", headOf(retainedUntil("COMPLIANCE", future)),
			answer{status: 400, code: "InvalidRequest", message: "Object is WORM protected and cannot be overwritten"}, true, true, "COMPLIANCE retention until"},
		{"MinIO legal hold", headOf(legalHold),
			answer{status: 400, code: "InvalidRequest", message: "Object is WORM protected and cannot be overwritten"}, true, true, "legal hold"},
		{"Ceph RGW", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 403, code: "AccessDenied", message: ""}, true, true, "retention until"},
		{"Cloudflare R2", headOf(retainedUntil("COMPLIANCE", future)),
			answer{status: 403, code: "ObjectLockedByBucketPolicy", message: "Object is protected by a bucket lock rule and cannot be modified or deleted."}, true, true, "retention until"},
		{"Cloudflare R2 bucket lock, no lock headers", headOf(nil),
			answer{status: 403, code: "ObjectLockedByBucketPolicy", message: "Object is protected by a bucket lock rule and cannot be modified or deleted."}, true, true, "the server says so"},
		{"Backblaze B2", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, true, true, "retention until"},
		{"GCS XML API", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 403, code: "AccessDenied", message: "Object is subject to a retention policy and cannot be deleted or overwritten until it expires."}, true, true, "retention until"},
		{"409 Conflict", headOf(retainedUntil("COMPLIANCE", future)),
			answer{status: 409, code: "Conflict", message: "The object is locked."}, true, true, "retention until"},
		// Retention ended five minutes ago by our clock: a server up to 15
		// minutes behind still refuses, and that is the lock.
		{"retention just ended, server clock behind", headOf(retainedUntil("GOVERNANCE", time.Now().Add(-5*time.Minute))),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, true, true, "retention until"},

		{"unlocked: AWS S3 permission refused", headOf(nil),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, false, true, "s3:DeleteObject"},
		{"unlocked: retention expired yesterday", headOf(retainedUntil("GOVERNANCE", past)),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, false, true, "access denied"},
		{"unlocked: expired retention, WORM message", headOf(retainedUntil("COMPLIANCE", past)),
			answer{status: 400, code: "InvalidRequest", message: "Object is WORM protected and cannot be overwritten"}, false, true, "WORM protected"},
		{"unlocked: legal hold OFF", headOf(map[string]string{"x-amz-object-lock-legal-hold": "OFF"}),
			answer{status: 403, code: "AccessDenied", message: "Access Denied"}, false, true, "access denied"},

		{"locked but throttled: SlowDown", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 503, code: "SlowDown", message: "Please reduce your request rate."}, false, false, "SlowDown"},
		{"locked but clock skewed", headOf(retainedUntil("GOVERNANCE", future)),
			answer{status: 403, code: "RequestTimeTooSkewed", message: "The difference between the request time and the current time is too large."}, false, true, "clock is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{head: tc.head, del: tc.del}
			policy := storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
			b := storage.WithRetry(newAgainst(t, d), policy, nil)
			err := b.Delete(context.Background(), "k")
			if err == nil {
				t.Fatal("Delete: got nil, want the server's refusal")
			}
			if got := errors.Is(err, storage.ErrLocked); got != tc.wantLocked {
				t.Errorf("Delete: ErrLocked: got %v, want %v (%v)", got, tc.wantLocked, err)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Delete: got %v, which is ErrNotFound", err)
			}
			if got := storage.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("Delete: permanent: got %v, want %v (%v)", got, tc.wantPermanent, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Delete: got %q, want it to contain %q", err, tc.wantMsg)
			}
			// A refusal of a lock says until when, from HEAD.
			if until, ok := storage.LockedUntil(err); tc.wantLocked && strings.Contains(tc.wantMsg, "retention until") && !ok {
				t.Errorf("Delete: %v carries no retain-until date", err)
			} else if ok && until.IsZero() {
				t.Error("Delete: a zero retain-until date")
			}
			// A lock or a refusal is answered at once; throttling is retried.
			want := policy.MaxAttempts
			if tc.wantPermanent {
				want = 1
			}
			dels := d.requests(http.MethodDelete)
			if len(dels) != want {
				t.Errorf("DELETE requests: got %q, want %d", dels, want)
			}
			for _, del := range dels {
				if !strings.Contains(del, "versionId=v1") {
					t.Errorf("DELETE request %q: want it of version v1 (the version HEAD showed)", del)
				}
			}
		})
	}
}

// TestConditionalCreateDialects: a conditional create that loses is
// storage.ErrExists, as 412 PreconditionFailed or 409
// ConditionalRequestConflict.
func TestConditionalCreateDialects(t *testing.T) {
	const precondition = "At least one of the pre-conditions you specified did not hold"
	for _, tc := range []struct {
		name string
		put  answer
	}{
		{"AWS S3 412", answer{status: 412, code: "PreconditionFailed", message: precondition}},
		{"AWS S3 409", answer{status: 409, code: "ConditionalRequestConflict", message: "A conflicting conditional operation is currently in progress against this resource. Try again."}},
		{"MinIO 412", answer{status: 412, code: "PreconditionFailed", message: precondition}},
		{"Ceph RGW 412", answer{status: 412, code: "PreconditionFailed", message: ""}},
		{"Cloudflare R2 412", answer{status: 412, code: "PreconditionFailed", message: precondition}},
		{"Backblaze B2 412", answer{status: 412, code: "PreconditionFailed", message: precondition}},
		{"GCS XML API 412", answer{status: 412, code: "PreconditionFailed", message: precondition}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{put: tc.put}
			b := newAgainst(t, d)
			err := b.Put(context.Background(), "k", bytes.NewReader([]byte("abc")), storage.PutOptions{IfNotExists: true, Size: 3})
			if !errors.Is(err, storage.ErrExists) {
				t.Errorf("Put(IfNotExists): got %v, want storage.ErrExists", err)
			}
			if puts := d.requests(http.MethodPut); len(puts) != 1 || !strings.HasSuffix(puts[0], " *") {
				t.Errorf("PUT requests: got %q, want one with If-None-Match: *", puts)
			}
		})
	}
}

// readKey reads key "k" of b with method: HEAD (Stat, whose answers carry
// no body) or GET (Get); it returns the error.
func readKey(b storage.Backend, method string) error {
	if method == http.MethodHead {
		_, err := b.Stat(context.Background(), "k")
		return err
	}
	rc, _, err := b.Get(context.Background(), "k")
	if rc != nil {
		rc.Close()
	}
	return err
}

// TestThrottlingDialects: throttling and server faults are retried by the
// retry decorator (every attempt is made, the error is not permanent); a
// clock more than 15 minutes off is permanent, asked once, and says so.
func TestThrottlingDialects(t *testing.T) {
	policy := storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	for _, tc := range []struct {
		name          string
		method        string // GET (Get) or HEAD (Stat, no body)
		answer        answer
		wantPermanent bool
		wantMsg       string
	}{
		{"AWS S3 SlowDown", http.MethodGet, answer{status: 503, code: "SlowDown", message: "Please reduce your request rate."}, false, "SlowDown"},
		{"AWS S3 ServiceUnavailable", http.MethodGet, answer{status: 503, code: "ServiceUnavailable", message: "Reduce your request rate."}, false, "ServiceUnavailable"},
		{"AWS S3 InternalError", http.MethodGet, answer{status: 500, code: "InternalError", message: "We encountered an internal error. Please try again."}, false, "InternalError"},
		{"MinIO SlowDown", http.MethodGet, answer{status: 503, code: "SlowDown", message: "Please reduce your request rate"}, false, "SlowDown"},
		{"Ceph RGW SlowDown", http.MethodGet, answer{status: 503, code: "SlowDown", message: ""}, false, "SlowDown"},
		{"Cloudflare R2 TooManyRequests", http.MethodGet, answer{status: 429, code: "TooManyRequests", message: "Reduce your rate of requests."}, false, "TooManyRequests"},
		{"Cloudflare R2 ServiceUnavailable", http.MethodGet, answer{status: 503, code: "ServiceUnavailable", message: "Please look at https://www.cloudflarestatus.com for issues or contact customer support."}, false, "ServiceUnavailable"},
		{"Backblaze B2 SlowDown", http.MethodGet, answer{status: 503, code: "SlowDown", message: "Please reduce your request rate."}, false, "SlowDown"},
		{"GCS XML API 429", http.MethodGet, answer{status: 429, code: "SlowDown", message: "Please reduce your request rate."}, false, "429"},
		{"GCS XML API 503", http.MethodGet, answer{status: 503, code: "ServiceUnavailable", message: "Service Unavailable"}, false, "503"},
		{"HEAD 429, no body", http.MethodHead, answer{status: 429}, false, "429"},
		{"HEAD 503, no body", http.MethodHead, answer{status: 503}, false, "503"},
		{"AWS S3 RequestTimeTooSkewed", http.MethodGet, answer{status: 403, code: "RequestTimeTooSkewed", message: "The difference between the request time and the current time is too large."}, true, "the host's clock is off by more than 15 minutes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{get: tc.answer, head: tc.answer}
			err := readKey(storage.WithRetry(newAgainst(t, d), policy, nil), tc.method)
			if err == nil {
				t.Fatal("got nil, want the server's error")
			}
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrLocked) {
				t.Errorf("got %v, a typed answer", err)
			}
			if got := storage.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("permanent: got %v, want %v (%v)", got, tc.wantPermanent, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("got %q, want it to contain %q", err, tc.wantMsg)
			}
			want := policy.MaxAttempts
			if tc.wantPermanent {
				want = 1
			}
			if got := len(d.requests(tc.method)); got != want {
				t.Errorf("%s requests: got %d, want %d", tc.method, got, want)
			}
		})
	}
}

// TestWrongRegionDialects: AWS S3's answers to a request signed for
// another region than the bucket's (400 AuthorizationHeaderMalformed
// naming the right one; 301 PermanentRedirect, with no body for HEAD, and
// the bucket's region in x-amz-bucket-region), and Versity's 400 that
// quotes the regions differently, are permanent and say which region to
// set, not to check the credentials.
func TestWrongRegionDialects(t *testing.T) {
	inEU := map[string]string{"x-amz-bucket-region": "eu-west-1"}
	for _, tc := range []struct {
		name   string
		method string
		answer answer
	}{
		{"AuthorizationHeaderMalformed", http.MethodGet, answer{status: 400, code: "AuthorizationHeaderMalformed", message: "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'"}},
		// Versity S3 Gateway v1.8.0 quotes the regions with "".
		{"Versity AuthorizationHeaderMalformed", http.MethodGet, answer{status: 400, code: "AuthorizationHeaderMalformed", message: `The authorization header is malformed; the region "us-east-1" is wrong; expecting "eu-west-1"`}},
		{"AuthorizationHeaderMalformed, HEAD", http.MethodHead, answer{status: 400, header: inEU}},
		{"PermanentRedirect", http.MethodGet, answer{status: 301, header: inEU, code: "PermanentRedirect", message: "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint."}},
		{"PermanentRedirect, HEAD", http.MethodHead, answer{status: 301, header: inEU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{get: tc.answer, head: tc.answer}
			err := readKey(newAgainst(t, d), tc.method)
			if err == nil || !storage.IsPermanent(err) || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("got %v, want a permanent error", err)
			}
			for _, want := range []string{`bucket "bucket" is in region eu-west-1`, "s3-region"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "credential") {
				t.Errorf("got %q: it points at the credentials", err)
			}
		})
	}
}

// TestHTTPSToPlainHTTPServer: an https:// endpoint whose server speaks
// plain HTTP is a setting to fix: one attempt, a permanent error saying
// so, not retries until the deadline.
func TestHTTPSToPlainHTTPServer(t *testing.T) {
	d := &dialect{get: answer{status: 200}}
	b := storage.WithRetry(newAgainstWith(t, d, func(c *s3.Config) {
		c.Endpoint = strings.Replace(c.Endpoint, "http://", "https://", 1)
	}), storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}, nil)
	_, _, err := b.Get(context.Background(), "k")
	if err == nil || !storage.IsPermanent(err) || !strings.Contains(err.Error(), "the endpoint speaks plain HTTP") {
		t.Fatalf("got %v, want a permanent error saying the endpoint speaks plain HTTP", err)
	}
}

// TestRedirectIsNotARegion: a bodiless 301 that names no region (some
// proxy's) is not reported as a bucket in another region, and, as any
// redirect the client did not follow, is not retried.
func TestRedirectIsNotARegion(t *testing.T) {
	d := &dialect{head: answer{status: 301}}
	b := storage.WithRetry(newAgainst(t, d), storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}, nil)
	err := readKey(b, http.MethodHead)
	if err == nil || strings.Contains(err.Error(), "s3-region") || !storage.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent error that does not blame the region", err)
	}
	if n := len(d.requests(http.MethodHead)); n != 1 {
		t.Fatalf("%d HEAD requests, want 1", n)
	}
}

// retryPolicy is the decorator's policy of the tests below: three attempts,
// no deadline, no real waiting.
var retryPolicy = storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

// TestUnknownAccessKeyDialects: Versity S3 Gateway (single-account mode)
// answers an access key it does not know with 404 XAdminUserNotFound, where
// AWS and MinIO answer 403 InvalidAccessKeyId. It is a credentials error:
// permanent, asked once, with the credentials hint, and, though a 404,
// never "not found": not for GET, whose answer says XAdminUserNotFound, nor
// for HEAD, whose answers (the key's and the bucket's) are bodiless 404s.
func TestUnknownAccessKeyDialects(t *testing.T) {
	unknown := answer{status: 404, code: "XAdminUserNotFound", message: "No user exists with the provided access key ID."}
	for _, tc := range []struct {
		name   string
		method string
		call   func(storage.Backend) error
	}{
		{"Get", http.MethodGet, func(b storage.Backend) error { return readKey(b, http.MethodGet) }},
		{"Stat", http.MethodHead, func(b storage.Backend) error { return readKey(b, http.MethodHead) }},
		{"List", http.MethodGet, func(b storage.Backend) error {
			return b.List(context.Background(), "", func(storage.ObjectInfo) error { return nil })
		}},
		{"Put", http.MethodPut, func(b storage.Backend) error {
			return b.Put(context.Background(), "k", bytes.NewReader([]byte("abc")), storage.PutOptions{IfNotExists: true, Size: 3})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{head: unknown, get: unknown, put: unknown}
			err := tc.call(storage.WithRetry(newAgainst(t, d), retryPolicy, nil))
			if err == nil || !storage.IsPermanent(err) || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("got %v, want a permanent error that is not ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), "the server refused the credentials") {
				t.Errorf("got %q, want the credentials hint", err)
			}
			if strings.Contains(err.Error(), "does not exist") {
				t.Errorf("got %q: it blames the bucket", err)
			}
			// One attempt (a Stat's HEAD of the bucket and its listing
			// are counted apart).
			if got := d.requests(tc.method); len(got) != 1 {
				t.Errorf("%s requests: got %q, want one attempt", tc.method, got)
			}
		})
	}
}

// TestClientErrorDialects: of the 4xx answers, only those that say "try
// again" are retried: a request timeout (400 RequestTimeout, a proxy's
// 408), a body cut in transit (400 IncompleteBody), a conflicting
// operation in flight (409 OperationAborted, 409
// ConditionalRequestConflict outside a conditional create), throttling
// (429). Any other 4xx, whatever server sends it and whether or not
// walvault knows its code, is answered at once: a retry asks the same
// question and gets the same answer.
func TestClientErrorDialects(t *testing.T) {
	for _, tc := range []struct {
		name          string
		answer        answer
		wantPermanent bool
		wantMsg       string
	}{
		{"AWS S3 RequestTimeout", answer{status: 400, code: "RequestTimeout", message: "Your socket connection to the server was not read from or written to within the timeout period."}, false, "RequestTimeout"},
		{"proxy 408, no body", answer{status: 408}, false, "408"},
		{"AWS S3 IncompleteBody", answer{status: 400, code: "IncompleteBody", message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}, false, "IncompleteBody"},
		{"AWS S3 OperationAborted", answer{status: 409, code: "OperationAborted", message: "A conflicting conditional operation is currently in progress against this resource. Try again."}, false, "OperationAborted"},
		{"AWS S3 ConditionalRequestConflict", answer{status: 409, code: "ConditionalRequestConflict", message: "A conflicting operation occurred. Retry the request."}, false, "ConditionalRequestConflict"},

		{"unknown 404 code", answer{status: 404, code: "XSomeServerNoSuchThing", message: "a 404 of a server walvault does not know"}, true, "XSomeServerNoSuchThing"},
		{"410, no body", answer{status: 410}, true, "410"},
		{"Ceph RGW 422 UnprocessableEntity", answer{status: 422, code: "UnprocessableEntity", message: ""}, true, "UnprocessableEntity"},
		{"unknown 409 code", answer{status: 409, code: "XSomeServerConflict", message: "not a lock"}, true, "XSomeServerConflict"},
		{"401 Unauthorized", answer{status: 401, code: "Unauthorized", message: "Unauthorized"}, true, "the server refused the credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialect{get: tc.answer}
			b := storage.WithRetry(newAgainst(t, d), retryPolicy, nil)
			err := readKey(b, http.MethodGet)
			if err == nil {
				t.Fatal("got nil, want the server's error")
			}
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrLocked) || errors.Is(err, storage.ErrExists) {
				t.Errorf("got %v, a typed answer", err)
			}
			if got := storage.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("permanent: got %v, want %v (%v)", got, tc.wantPermanent, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("got %q, want it to contain %q", err, tc.wantMsg)
			}
			want := retryPolicy.MaxAttempts
			if tc.wantPermanent {
				want = 1
			}
			if got := len(d.requests(http.MethodGet)); got != want {
				t.Errorf("GET requests: got %d, want %d", got, want)
			}
		})
	}
}

// goneServer shows key k's version v1 to HEAD until a DELETE of it, which
// it answers as if another client had deleted the version just before:
// 404 NoSuchVersion; from then on the key is missing (HEAD 404, the
// bucket's HEAD 200).
type goneServer struct {
	mu      sync.Mutex
	deleted bool
}

func (g *goneServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == "bucket":
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodHead && g.deleted:
		w.WriteHeader(http.StatusNotFound)
	case r.Method == http.MethodHead:
		headOf(nil).write(w, r)
	case r.Method == http.MethodDelete:
		g.deleted = true
		answer{status: 404, code: "NoSuchVersion", message: "The specified version does not exist."}.write(w, r)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// TestDeleteVersionGoneMeanwhile: a version deleted by another client
// between Delete's HEAD and its DELETE ends as the key's ErrNotFound, which
// the retry's HEAD finds, not as a permanent failure of the 404.
func TestDeleteVersionGoneMeanwhile(t *testing.T) {
	b := storage.WithRetry(newAgainst(t, &goneServer{}), retryPolicy, nil)
	if err := b.Delete(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete: got %v, want storage.ErrNotFound", err)
	}
}

// TestVirtualHostedNameUnresolved: with an endpoint by host name and
// virtual-hosted addressing (the default), requests go to
// <bucket>.<host>. A server without such names (most S3-compatible ones)
// makes that a DNS "no such host" while <host> itself resolves: a setting
// to fix, reported at once and naming s3-path-style, not retried until
// the deadline.
func TestVirtualHostedNameUnresolved(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err := net.DefaultResolver.LookupHost(ctx, "bucket.localhost")
	cancel()
	var dnsErr *net.DNSError
	// Some resolvers (systemd-resolved) answer every *.localhost with the
	// loopback address: there the request reaches the server by its
	// virtual-hosted name, and no hint is due (TestTranslateDNS covers the
	// rule with a resolver of its own).
	resolves := err == nil
	if !resolves && (!errors.As(err, &dnsErr) || !dnsErr.IsNotFound) {
		t.Fatalf("bucket.localhost: got %v from this machine's resolver, want an address or \"no such host\": check /etc/resolv.conf and /etc/nsswitch.conf", err)
	}
	d := &dialect{get: answer{status: 200}}
	srv := httptest.NewServer(d)
	b := storage.WithRetry(newAgainstServer(t, srv, func(c *s3.Config) {
		c.Endpoint = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
		c.PathStyle = false
	}), storage.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, CallTimeout: 20 * time.Second}, nil)
	start := time.Now()
	err = readKey(b, http.MethodGet)
	if resolves {
		if n := len(d.requests(http.MethodGet)); err != nil || n != 1 {
			t.Errorf("with bucket.localhost resolving: %v and %d GET requests, want the one GET answered", err, n)
		}
		return
	}
	if err == nil || !storage.IsPermanent(err) || !strings.Contains(err.Error(), "s3-path-style true (WALVAULT_S3_PATH_STYLE)") {
		t.Errorf("got %v, want a permanent error naming s3-path-style", err)
	}
	t.Logf("%v", err)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("took %v: retried toward the deadline", elapsed)
	}
	if n := len(d.requests(http.MethodGet)); n != 0 {
		t.Errorf("%d GET requests reached the server, want none", n)
	}
}
