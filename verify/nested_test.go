package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository/repotest"
)

// TestNestedRepository: another walvault repository under a sub-prefix is
// one warning naming it, not a stray per object with the advice to move
// each away.
func TestNestedRepository(t *testing.T) {
	f := newFixture(t)
	for _, k := range []string{"sub/walvault.json", "sub/wal/00000001/000000010000000000000001.lz4", "sub/wal/00000001/000000010000000000000002.lz4"} {
		repotest.Put(t, f.b, k, []byte("x"))
	}
	repotest.Put(t, f.b, "notes.txt", []byte("x"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var nested, strays []string
	for _, w := range r.Warnings {
		switch {
		case w.Kind != KindStray:
		case strings.Contains(w.Detail, "nested"):
			nested = append(nested, w.Detail)
		default:
			strays = append(strays, w.Key)
		}
	}
	if len(nested) != 1 || !strings.Contains(nested[0], "at sub/ (3 objects") {
		t.Errorf("nested warnings %q, want one for sub/ with its 3 objects", nested)
	}
	if len(strays) != 1 || strays[0] != "notes.txt" {
		t.Errorf("strays %q, want notes.txt alone", strays)
	}
	if r.Summary.Strays != 4 {
		t.Errorf("summary counts %d strays, want 4", r.Summary.Strays)
	}
}

// TestSampledWALMetadata: without --full verify still reads the metadata
// of the segment stored last: a repository copied without S3 user
// metadata lists whole but cannot be recovered from.
func TestSampledWALMetadata(t *testing.T) {
	f := newFixture(t)
	key := "wal/00000001/000000010000000000000007.lz4"
	repotest.Put(t, f.b, key, []byte("copied without its metadata"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Kind != KindWALMetadata || r.Problems[0].Key != key || !strings.Contains(r.Problems[0].Detail, "copy of the repository") {
		t.Errorf("problems %+v, want one wal_metadata for %s", r.Problems, key)
	}
}
