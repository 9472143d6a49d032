package s3

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// credentialsRefresh is how long credentials that do not expire on their
// own (keys from the environment or the shared credentials file) are used
// before the chain is resolved again.
var credentialsRefresh = 5 * time.Minute

// reloadingCredentials resolves the AWS credential chain again, so a
// long-running process (wal-helper, wal-receive, the exporter) follows
// keys rotated in ~/.aws/credentials: the SDK reads that file once, when
// the configuration is loaded, and keeps its keys for ever. Keys that do
// not expire on their own are resolved again every credentialsRefresh,
// and any credentials as soon as the server refuses them (refused).
// Credentials that expire (a role's, SSO's) keep their own expiry and are
// refreshed by their provider, which is kept until a refusal.
type reloadingCredentials struct {
	cache *aws.CredentialsCache
	load  func(context.Context) (aws.CredentialsProvider, error)

	mu       sync.Mutex
	provider aws.CredentialsProvider // the chain as last resolved
	static   bool                    // its last credentials do not expire
	reload   bool                    // resolve the chain before the next Retrieve
	// lastRefusal: when refused last invalidated the credentials. A 403
	// is also how some servers refuse a locked delete, and a role's
	// provider calls STS when resolved: at most one reload a
	// refusalSpacing.
	lastRefusal time.Time
}

// refusalSpacing is the least time between two reloads for refusals.
const refusalSpacing = 10 * time.Second

func newReloadingCredentials(first aws.CredentialsProvider, load func(context.Context) (aws.CredentialsProvider, error)) *reloadingCredentials {
	r := &reloadingCredentials{provider: first, load: load}
	r.cache = aws.NewCredentialsCache(r)
	return r
}

// Retrieve is called by the cache when its credentials expired or were
// invalidated.
func (r *reloadingCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reload || r.static {
		// A failure to load keeps the provider there was: its keys may
		// still work, and the next refusal tries again.
		if p, err := r.load(ctx); err == nil && p != nil {
			r.provider = p
		}
		r.reload = false
	}
	c, err := r.provider.Retrieve(ctx)
	if err != nil {
		return c, err
	}
	if r.static = !c.CanExpire; r.static {
		c.CanExpire, c.Expires = true, time.Now().Add(credentialsRefresh)
	}
	return c, nil
}

// refused marks the credentials refused by the server: the chain is
// resolved again before the next request is signed.
func (r *reloadingCredentials) refused() {
	if r == nil {
		return
	}
	r.mu.Lock()
	if time.Since(r.lastRefusal) < refusalSpacing {
		r.mu.Unlock()
		return
	}
	r.lastRefusal, r.reload = time.Now(), true
	r.mu.Unlock()
	r.cache.Invalidate()
}

// rotatingSigner is the SDK's SigV4 signer, made anew when the secret key
// changes. The signer caches the key it derives from the secret by access
// key id and day: a secret rotated under the same access key id (as
// MinIO's and Ceph's rotations do) would go on signing with the old one
// until the next UTC day, and every request be refused.
type rotatingSigner struct {
	options func(*v4.SignerOptions)
	mu      sync.Mutex
	secret  string
	signer  *v4.Signer
}

func (s *rotatingSigner) SignHTTP(ctx context.Context, credentials aws.Credentials, r *http.Request, payloadHash, service, region string, signingTime time.Time, optFns ...func(*v4.SignerOptions)) error {
	s.mu.Lock()
	if s.signer == nil || credentials.SecretAccessKey != s.secret {
		s.signer, s.secret = v4.NewSigner(s.options), credentials.SecretAccessKey
	}
	signer := s.signer
	s.mu.Unlock()
	return signer.SignHTTP(ctx, credentials, r, payloadHash, service, region, signingTime, optFns...)
}
