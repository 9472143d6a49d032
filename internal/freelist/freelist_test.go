package freelist

import (
	"runtime"
	"testing"
)

// TestBuffersSurviveCollection: a returned buffer is handed out
// again after garbage collections, and no more than the kept number are.
func TestBuffersSurviveCollection(t *testing.T) {
	p := New(1<<10, 2)
	a, b, c := p.Get(), p.Get(), p.Get()
	if len(*a) != 1<<10 {
		t.Fatalf("buffer of %d bytes, want %d", len(*a), 1<<10)
	}
	p.Put(a)
	p.Put(b)
	p.Put(c) // one more than kept: left to the collector
	runtime.GC()
	runtime.GC()
	got := map[*[]byte]bool{p.Get(): true, p.Get(): true}
	if !got[a] || !got[b] {
		t.Errorf("after collections the kept buffers were not handed out again")
	}
	if d := p.Get(); d == a || d == b || d == c {
		t.Errorf("a third buffer came from the free list, which keeps two")
	}
}

// TestGetHasFullSize: a buffer given back shortened comes out at the
// list's size again.
func TestGetHasFullSize(t *testing.T) {
	p := New(64, 1)
	b := p.Get()
	*b = (*b)[:3]
	p.Put(b)
	if got := p.Get(); got != b || len(*got) != 64 {
		t.Errorf("got %p with %d bytes, want %p with 64", got, len(*got), b)
	}
}
