package open

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/s3"
)

// S3Options are the settings of the s3 backend that do not fit in the URL.
type S3Options struct {
	Endpoint    string
	Region      string
	PathStyle   bool
	CABundle    string
	PartSize    int64
	Concurrency int
	// SSE and SSEKMSKeyID: storage-side encryption (s3.Config).
	SSE, SSEKMSKeyID string
	// ObjectLock: the command will write with retention (s3.Config).
	ObjectLock bool
	// AllowHTTP: an http:// endpoint from the AWS configuration is
	// accepted (s3-allow-http; s3.Config).
	AllowHTTP bool
}

// Options carries per-backend settings, and the decorators Stacked puts
// around the backend.
type Options struct {
	S3    S3Options
	Stack storage.StackOptions
}

// Location is a parsed repository URL.
type Location struct {
	Scheme string // "file" or "s3"
	Path   string // file: absolute directory
	Bucket string // s3
	Prefix string // s3: without leading or trailing slash
}

const urlHint = "use file:///absolute/path or s3://bucket/prefix"

// Parse checks a repository URL without touching any storage.
func Parse(raw string) (Location, error) {
	if raw == "" {
		return Location{}, fmt.Errorf("no repository configured: set --repo or WALVAULT_REPO (%s)", urlHint)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("malformed repository URL: %s", urlHint)
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("repository URL must not carry credentials: S3 credentials come from the AWS chain (environment, shared config, instance role)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Location{}, fmt.Errorf("malformed repository URL %q: query strings and fragments are not used; %s", raw, urlHint)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("malformed repository URL %q: file URLs have no host (three slashes: file:///var/lib/walvault)", raw)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return Location{}, fmt.Errorf("malformed repository URL %q: the path must be absolute (file:///var/lib/walvault)", raw)
		}
		return Location{Scheme: "file", Path: path.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("malformed repository URL %q: no bucket (%s)", raw, urlHint)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" {
			if err := storage.ValidateKey(prefix); err != nil {
				return Location{}, fmt.Errorf("malformed repository URL %q: bad prefix: %v", raw, err)
			}
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "":
		return Location{}, fmt.Errorf("malformed repository URL %q: no scheme (%s)", raw, urlHint)
	}
	return Location{}, fmt.Errorf("unsupported repository URL scheme %q: %s", u.Scheme, urlHint)
}

// ConfigError marks a repository URL that names no repository: a file://
// directory that does not exist or is not a directory, or S3 settings that
// cannot work (an endpoint without a scheme or with a path, an invalid
// bucket name). The configuration is wrong (or the disk is not mounted);
// no storage failed, and no retry or later run helps until someone acts. Commands exit 2 on it, as for any
// bad setting; wal-fetch still stops recovery (never "not in the archive").
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// noDirectory reports whether path is missing or not a directory.
func noDirectory(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
	}
	return !fi.IsDir()
}

// Stacked is how commands get a repository: the backend for raw, under the
// decorator stack of storage.Stack (retry, and what opts.Stack adds).
func Stacked(ctx context.Context, raw string, opts Options) (storage.Backend, error) {
	b, err := Open(ctx, raw, opts)
	if err != nil {
		return nil, err
	}
	return storage.Stack(b, opts.Stack), nil
}

// positiveOr is d, or def when d is not positive.
func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Open parses raw and returns the bare backend for it, without decorators
// (conformance tests and benchmarks of one backend use it). It does not contact the
// storage beyond what the backend's constructor needs.
func Open(ctx context.Context, raw string, opts Options) (storage.Backend, error) {
	loc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "file":
		b, err := file.New(loc.Path)
		if err != nil && noDirectory(loc.Path) {
			return nil, &ConfigError{Err: err}
		}
		return b, err
	case "s3":
		cfg := s3.Config{
			Bucket:      loc.Bucket,
			Prefix:      loc.Prefix,
			Endpoint:    opts.S3.Endpoint,
			Region:      opts.S3.Region,
			PathStyle:   opts.S3.PathStyle,
			CABundle:    opts.S3.CABundle,
			PartSize:    opts.S3.PartSize,
			Concurrency: opts.S3.Concurrency,
			// A stalled transfer is abandoned after the call timeout when
			// that is shorter: no call waits on silence longer than it.
			StallTimeout: min(s3.DefaultStallTimeout, positiveOr(opts.Stack.CallTimeout, s3.DefaultStallTimeout)),
			// A multipart upload's requests ride out what any call does.
			RequestRetryTime: opts.Stack.CallTimeout,
			SSE:              opts.S3.SSE,
			SSEKMSKeyID:      opts.S3.SSEKMSKeyID,
			ObjectLock:       opts.S3.ObjectLock,
			AllowHTTP:        opts.S3.AllowHTTP,
			Log:              opts.Stack.Log,
		}
		if err := cfg.Validate(); err != nil {
			return nil, &ConfigError{Err: err}
		}
		b, err := s3.New(ctx, cfg)
		switch {
		case errors.Is(err, s3.ErrSetting):
			return nil, &ConfigError{Err: err}
		case err != nil:
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("unsupported repository scheme %q", loc.Scheme)
}
