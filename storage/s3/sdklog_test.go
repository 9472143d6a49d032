package s3_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/storage/s3"
)

// The SDK's own messages reach the Backend's log, in its format: here its
// warning that IMDS refused a session token while it looked for
// credentials (an EC2 host with a hop limit too low for containers, say).
// Not parallel: it sets the AWS chain's environment.
func TestSDKMessagesGoToTheLog(t *testing.T) {
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer imds.Close()
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the S3 server got %s %s without credentials to sign it", r.Method, r.URL)
	}))
	defer s3srv.Close()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.URL,
	} {
		t.Setenv(k, v)
	}
	var logged bytes.Buffer
	b, err := s3.New(t.Context(), s3.Config{Bucket: "bucket", Endpoint: s3srv.URL, PathStyle: true,
		Log: slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "key"); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Stat without credentials: %v, want an error about credentials", err)
	}
	var warned bool
	for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ Level, Msg, Source string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		warned = warned || rec.Source == "aws-sdk" && rec.Level == "WARN" && strings.Contains(rec.Msg, "IMDS")
	}
	if !warned {
		t.Errorf("the SDK's IMDS warning is not in the log:\n%s", logged.String())
	}
}
