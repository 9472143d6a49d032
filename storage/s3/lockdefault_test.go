package s3_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// TestObjectLockDefault reads a bucket's default retention as S3 documents
// GetObjectLockConfiguration's answer: days, years (as 365 days), none.
func TestObjectLockDefault(t *testing.T) {
	for _, tc := range []struct {
		rule string
		mode storage.RetentionMode
		days int
	}{
		{"<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>3</Days></DefaultRetention></Rule>", storage.Compliance, 3},
		{"<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>1</Years></DefaultRetention></Rule>", storage.Governance, 365},
		{"", "", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := r.URL.Query()["object-lock"]; !ok {
				w.WriteHeader(http.StatusNotImplemented)
				return
			}
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled>%s</ObjectLockConfiguration>`, tc.rule)
		}))
		b := newAgainstServer(t, srv, func(*s3.Config) {})
		enabled, mode, days, err := b.ObjectLockDefault(context.Background())
		if err != nil || !enabled || mode != tc.mode || days != tc.days {
			t.Errorf("rule %q: got enabled %v, %q %d days (%v), want enabled, %q %d", tc.rule, enabled, mode, days, err, tc.mode, tc.days)
		}
	}
}
