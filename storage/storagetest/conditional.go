package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/walvault/walvault/storage"
)

func testIfNotExistsNew(t *testing.T, s *suite) {
	key := "wal/00000001/000000010000000000000004.lz4"
	body := []byte("first and only")
	md := map[string]string{"version": "1"}
	mustPut(t, s, key, body, storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: md})
	checkObject(t, s, key, body, md)
}

// testIfNotExistsExisting: a conditional create over an object fails with
// ErrExists and leaves the original bytes and metadata.
func testIfNotExistsExisting(t *testing.T, s *suite) {
	key := "wal/00000001/000000010000000000000005.lz4"
	orig := []byte("original content")
	origMD := map[string]string{"version": "1", "sha256": "aaaa"}
	mustPut(t, s, key, orig, storage.PutOptions{Size: int64(len(orig)), Metadata: origMD})

	for _, tc := range []struct {
		name string
		body []byte
		size int64
	}{
		{"different content", []byte("a different, longer content"), -1},
		{"same content", orig, int64(len(orig))},
		{"empty", nil, 0},
	} {
		err := s.b.Put(s.ctx, key, bytes.NewReader(tc.body), storage.PutOptions{
			IfNotExists: true, Size: tc.size, Metadata: map[string]string{"version": "2"},
		})
		if !errors.Is(err, storage.ErrExists) {
			t.Errorf("Put(%q, IfNotExists) over an object, %s: got error %v, want one matching storage.ErrExists", key, tc.name, err)
		}
	}
	checkObject(t, s, key, orig, origMD)
}

// testIfNotExistsRace: Concurrency puts of one key with different content
// start together; exactly one wins, every other gets ErrExists, and the
// stored object is the winner's, body and metadata. A few rounds make a real
// overlap likely.
func testIfNotExistsRace(t *testing.T, s *suite) {
	n := s.opts.Concurrency
	if n < 2 {
		n = 2
	}
	for round := range 4 {
		key := fmt.Sprintf("race/%d/000000010000000000000001.lz4", round)
		bodies := make([][]byte, n)
		for i := range bodies {
			// Different lengths and bytes, large enough to take a while.
			bodies[i] = bytes.Repeat([]byte{byte('A' + i%26), byte(i)}, 32<<10+i)
		}
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.b.Put(s.ctx, key, bytes.NewReader(bodies[i]), storage.PutOptions{
					IfNotExists: true,
					Size:        int64(len(bodies[i])),
					Metadata:    map[string]string{"writer": strconv.Itoa(i)},
				})
			}()
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner == -1:
				winner = i
			case err == nil:
				t.Errorf("round %d: Put(%q, IfNotExists) by writers %d and %d: both got nil, want exactly one success", round, key, winner, i)
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("round %d: Put(%q, IfNotExists) by writer %d: got error %v, want nil or one matching storage.ErrExists", round, key, i, err)
			}
		}
		if winner == -1 {
			t.Fatalf("round %d: Put(%q, IfNotExists) by %d writers: got no success, want exactly one", round, key, n)
		}
		checkObject(t, s, key, bodies[winner], map[string]string{"writer": strconv.Itoa(winner)})
	}
}

// testReplace: Put without IfNotExists replaces an object, body and all its
// metadata. The backend allows it; callers decide when to ask for it.
func testReplace(t *testing.T, s *suite) {
	key := "walvault.json"
	mustPut(t, s, key, []byte(`{"version":1}`), storage.PutOptions{Size: -1, Metadata: map[string]string{"version": "1", "only-in-v1": "x"}})
	v2 := []byte(`{"version":2,"longer":true}`)
	v2MD := map[string]string{"version": "2"}
	mustPut(t, s, key, v2, storage.PutOptions{Size: int64(len(v2)), Metadata: v2MD})
	checkObject(t, s, key, v2, v2MD)
	if got := listKeys(t, s, ""); len(got) != 1 || got[0] != key {
		t.Errorf(`List(""): got %q, want [%q]`, got, key)
	}
}
