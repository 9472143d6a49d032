package repository_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/walvault/walvault/repository"
)

func TestParseCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    repository.Compression
		wantErr bool
	}{
		{"lz4", "lz4", repository.LZ4, false},
		{"none", "none", repository.None, false},
		{"empty", "", "", true},
		{"upper case", "LZ4", "", true},
		{"spaces", " lz4", "", true},
		{"unsupported", "zstd", "", true},
		{"gzip", "gzip", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := repository.ParseCompression(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseCompression(%q): got error %v, want error: %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseCompression(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCompressionExt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   repository.Compression
		want string
	}{
		{repository.LZ4, ".lz4"},
		{repository.None, ""},
	}
	for _, tc := range tests {
		if got := tc.in.Ext(); got != tc.want {
			t.Errorf("%q.Ext(): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	t.Parallel()
	random := make([]byte, 5<<20) // more than one 4 MiB lz4 block
	rand.NewChaCha8([32]byte{1}).Read(random)
	tests := []struct {
		name string
		c    repository.Compression
		in   []byte
	}{
		{"lz4 empty", repository.LZ4, nil},
		{"lz4 zeros", repository.LZ4, make([]byte, 1<<20)},
		{"lz4 random", repository.LZ4, random},
		{"none empty", repository.None, nil},
		{"none random", repository.None, random[:1<<20]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := tc.c.NewWriter(&buf)
			if err != nil {
				t.Fatalf("NewWriter: got %v, want nil", err)
			}
			if _, err := w.Write(tc.in); err != nil {
				t.Fatalf("Write: got %v, want nil", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: got %v, want nil", err)
			}
			if tc.c == repository.None && !bytes.Equal(buf.Bytes(), tc.in) {
				t.Errorf("none encoding changed the bytes")
			}
			r, err := tc.c.NewReader(&buf)
			if err != nil {
				t.Fatalf("NewReader: got %v, want nil", err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read back: got %v, want nil", err)
			}
			if !bytes.Equal(got, tc.in) {
				t.Errorf("round trip: got %d bytes, want the %d bytes written", len(got), len(tc.in))
			}
		})
	}
}

func TestUnknownCompression(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{"", "zstd"} {
		if _, err := c.NewWriter(io.Discard); err == nil {
			t.Errorf("Compression(%q).NewWriter: got nil, want an error", c)
		}
		if _, err := c.NewReader(bytes.NewReader(nil)); err == nil {
			t.Errorf("Compression(%q).NewReader: got nil, want an error", c)
		}
	}
}
