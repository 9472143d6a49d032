package open

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Location
		wantErr string
	}{
		{name: "file", in: "file:///var/lib/walvault", want: Location{Scheme: "file", Path: "/var/lib/walvault"}},
		{name: "file trailing slash", in: "file:///var/lib/walvault/", want: Location{Scheme: "file", Path: "/var/lib/walvault"}},
		{name: "file localhost", in: "file://localhost/srv/wal", want: Location{Scheme: "file", Path: "/srv/wal"}},
		{name: "s3 with prefix", in: "s3://bucket/db1/main/", want: Location{Scheme: "s3", Bucket: "bucket", Prefix: "db1/main"}},
		{name: "s3 bucket only", in: "s3://bucket", want: Location{Scheme: "s3", Bucket: "bucket"}},
		{name: "empty", in: "", wantErr: "no repository configured"},
		{name: "relative file", in: "file://var/lib", wantErr: "no host"},
		{name: "no scheme", in: "/var/lib/walvault", wantErr: "no scheme"},
		{name: "unknown scheme", in: "gs://bucket", wantErr: "unsupported"},
		{name: "s3 without bucket", in: "s3:///prefix", wantErr: "no bucket"},
		{name: "credentials in URL", in: "s3://AKIA:secret@bucket/p", wantErr: "must not carry credentials"},
		{name: "dot dot prefix", in: "s3://bucket/a/../b", wantErr: "bad prefix"},
		{name: "query", in: "s3://bucket/p?x=1", wantErr: "query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error repeats a credential: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestOpenMissingDirectoryIsConfigError: a file:// URL naming no directory
// is a ConfigError (bad configuration, exit 2), and still says what is
// wrong; an existing directory opens.
func TestOpenMissingDirectoryIsConfigError(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(dir, "absent"), notDir, filepath.Join(notDir, "below")} {
		_, err := Open(t.Context(), "file://"+root, Options{})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), root) {
			t.Errorf("Open(file://%s): got %v, want a ConfigError naming the directory", root, err)
		}
	}
	b, err := Open(t.Context(), "file://"+dir, Options{})
	if err != nil {
		t.Fatalf("Open(file://%s): got %v, want nil", dir, err)
	}
	b.Close()
}

// TestOpenBadS3SettingsIsConfigError: S3 settings that cannot work (an
// endpoint without a scheme or with a path, a bucket name S3 refuses) are
// bad configuration, exit 2, found before any request.
func TestOpenBadS3SettingsIsConfigError(t *testing.T) {
	for _, tc := range []struct {
		url, endpoint, want string
	}{
		{"s3://bucket/db1", "127.0.0.1:9000", "has no scheme"},
		{"s3://ab/db1", "", "invalid bucket name"},
		{"s3://bucket/db1", "https://minio.example/bucket", "names the bucket"},
		{"s3://bucket/db1", "https://minio.example/minio", "has a path"},
	} {
		_, err := Open(context.Background(), tc.url, Options{S3: S3Options{Endpoint: tc.endpoint}})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s, endpoint %q): got %v, want a ConfigError saying %q", tc.url, tc.endpoint, err, tc.want)
		}
	}
}

// TestSDKEndpointIsASetting: an http:// endpoint the AWS configuration
// sets, refused, is a setting to fix (exit 2), as s3-endpoint's is
// (explore22f F6).
func TestSDKEndpointIsASetting(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
	_, err := Open(t.Context(), "s3://bkt/db1", Options{S3: S3Options{Region: "us-east-1"}})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("http:// AWS_ENDPOINT_URL: %v; want a ConfigError", err)
	}
}
