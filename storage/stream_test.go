package storage

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestStreamErrorTellsStorageFromDecoder(t *testing.T) {
	reset := errors.New("connection reset")
	_, err := io.ReadAll(TagStreamErrors(iotest.ErrReader(reset)))
	if got := StreamError(err); got != reset {
		t.Fatalf("StreamError(%v) = %v, want the storage error %v", err, got, reset)
	}
	if !errors.Is(err, reset) {
		t.Fatalf("the tagged error %v does not wrap %v", err, reset)
	}
	decoder := errors.New("lz4: bad magic number")
	if got := StreamError(decoder); got != nil {
		t.Fatalf("StreamError(decoder error) = %v, want nil", got)
	}
	data, err := io.ReadAll(TagStreamErrors(strings.NewReader("whole")))
	if err != nil || string(data) != "whole" {
		t.Fatalf("clean read: %q, %v", data, err)
	}
}
