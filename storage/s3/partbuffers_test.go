package s3

import (
	"runtime"
	"testing"
)

// TestPartBuffersSurviveCollection: a returned part buffer is handed out
// again after garbage collections, and no more than the kept number are.
func TestPartBuffersSurviveCollection(t *testing.T) {
	p := newPartBuffers(1<<10, 2)
	a, b, c := p.get(), p.get(), p.get()
	if len(*a) != 1<<10 {
		t.Fatalf("buffer of %d bytes, want %d", len(*a), 1<<10)
	}
	p.put(a)
	p.put(b)
	p.put(c) // one more than kept: left to the collector
	runtime.GC()
	runtime.GC()
	got := map[*[]byte]bool{p.get(): true, p.get(): true}
	if !got[a] || !got[b] {
		t.Errorf("after collections the kept buffers were not handed out again")
	}
	if d := p.get(); d == a || d == b || d == c {
		t.Errorf("a third buffer came from the free list, which keeps two")
	}
}
