package s3

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
)

// TestRetryerHasNoQuota: however many requests an outage fails, each keeps
// its SDK attempts; the SDK's default quota (500 tokens, 5 a retry) would
// refuse the 101st retry.
func TestRetryerHasNoQuota(t *testing.T) {
	r := newRetryer()
	outage := errors.New("connection reset by peer")
	for i := range 1000 {
		if _, err := r.GetRetryToken(t.Context(), outage); err != nil {
			t.Fatalf("retry %d refused: %v", i+1, err)
		}
	}
}

// TestSDKLoggerQuietsBodyDrains: the SDK's warning that a broken body
// could not be drained is no warning in walvault's log (walvault retries
// the read itself); its other warnings stay warnings.
func TestSDKLoggerQuietsBodyDrains(t *testing.T) {
	var out bytes.Buffer
	l := sdkLogger{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(logging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse: %v", io.ErrUnexpectedEOF)
	l.Logf(logging.Warn, "Response has no supported checksum. Not validating response payload.")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[1], "level=WARN") {
		t.Fatalf("logged:\n%s\nwant the body drain at debug, the other warning as a warning", out.String())
	}
}
