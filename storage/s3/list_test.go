package s3_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walvault/walvault/storage"
)

// pagingServer answers ListObjectsV2 over ten keys, three a page, in one
// of the ways servers page: with continuation tokens; without them (only
// start-after); with a token it then ignores (the first page again).
type pagingServer struct {
	mode  string // "tokens", "no token", "ignores token"
	calls atomic.Int32
}

func (s *pagingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.calls.Add(1) > 50 {
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	q := r.URL.Query()
	from := 0
	switch {
	case q.Get("continuation-token") != "" && s.mode == "tokens":
		fmt.Sscanf(q.Get("continuation-token"), "at-%d", &from)
	case q.Get("start-after") != "":
		from = sort.SearchStrings(keys, q.Get("start-after")+"\x00")
	}
	to := min(from+3, len(keys))
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><KeyCount>%d</KeyCount><MaxKeys>3</MaxKeys><IsTruncated>%v</IsTruncated>`, to-from, to < len(keys))
	for _, k := range keys[from:to] {
		fmt.Fprintf(&b, `<Contents><Key>%s</Key><Size>1</Size></Contents>`, k)
	}
	if to < len(keys) && s.mode != "no token" {
		fmt.Fprintf(&b, `<NextContinuationToken>at-%d</NextContinuationToken>`, to)
	}
	b.WriteString(`</ListBucketResult>`)
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(b.String()))
}

// TestListPaging: a listing goes on by the continuation token, or after
// the page's last key when the server gives none (never cut short); a
// server that answers the same page again is refused, not looped on.
func TestListPaging(t *testing.T) {
	for _, mode := range []string{"tokens", "no token", "ignores token"} {
		t.Run(mode, func(t *testing.T) {
			srv := &pagingServer{mode: mode}
			b := newAgainst(t, srv)
			var got []string
			err := b.List(t.Context(), "", func(oi storage.ObjectInfo) error { got = append(got, oi.Key); return nil })
			if mode == "ignores token" {
				if err == nil || !strings.Contains(err.Error(), "refusing to loop") || srv.calls.Load() > 3 {
					t.Fatalf("a server that ignores the token: %v after %d requests; want a refusal to loop", err, srv.calls.Load())
				}
				return
			}
			if err != nil || len(got) != 10 || got[9] != "k009" {
				t.Fatalf("listed %v, %v; want the ten keys", got, err)
			}
		})
	}
}
