package s3

import (
	"errors"
	"testing"
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
