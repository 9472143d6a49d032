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
		{"zstd", "zstd", repository.Zstd, false},
		{"a level is a setting, not a codec", "zstd:3", "", true},
		{"unsupported", "brotli", "", true},
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
		{repository.Zstd, ".zst"},
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
		{"zstd empty", repository.Zstd, nil},
		{"zstd zeros", repository.Zstd, make([]byte, 1<<20)},
		{"zstd random", repository.Zstd, random},
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
			stored := buf.Bytes()
			r, err := tc.c.NewReader(bytes.NewReader(stored))
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
			// The same through the reader that decodes blocks on several
			// cores.
			sr, err := tc.c.NewSegmentReader(bytes.NewReader(stored))
			if err != nil {
				t.Fatalf("NewSegmentReader: got %v, want nil", err)
			}
			got, err = io.ReadAll(sr)
			sr.Close()
			if err != nil || !bytes.Equal(got, tc.in) {
				t.Errorf("round trip through NewSegmentReader: got %d bytes, %v; want the %d bytes written", len(got), err, len(tc.in))
			}
		})
	}
}

func TestUnknownCompression(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{"", "brotli", "zstd:3"} {
		if _, err := c.NewWriter(io.Discard); err == nil {
			t.Errorf("Compression(%q).NewWriter: got nil, want an error", c)
		}
		if _, err := c.NewReader(bytes.NewReader(nil)); err == nil {
			t.Errorf("Compression(%q).NewReader: got nil, want an error", c)
		}
	}
}

func TestParseSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    repository.Setting
		wantErr string
	}{
		{"lz4", repository.Setting{Compression: repository.LZ4}, ""},
		{"none", repository.Setting{Compression: repository.None}, ""},
		{"zstd", repository.Setting{Compression: repository.Zstd}, ""},
		{"zstd:1", repository.Setting{Compression: repository.Zstd, Level: 1}, ""},
		{"zstd:19", repository.Setting{Compression: repository.Zstd, Level: 19}, ""},
		{"zstd:22", repository.Setting{Compression: repository.Zstd, Level: 22}, ""},
		{"zstd:0", repository.Setting{}, `invalid zstd level in "zstd:0": want a whole number from 1 to 22`},
		{"zstd:23", repository.Setting{}, `invalid zstd level in "zstd:23": want a whole number from 1 to 22`},
		{"zstd:", repository.Setting{}, `invalid zstd level in "zstd:": want a whole number from 1 to 22`},
		{"zstd:fast", repository.Setting{}, `invalid zstd level in "zstd:fast": want a whole number from 1 to 22`},
		{"lz4:3", repository.Setting{}, `compression "lz4:3" takes no level: only zstd does (zstd:LEVEL, 1-22)`},
		{"zst", repository.Setting{}, `unknown compression "zst": use lz4, zstd, zstd:LEVEL (1-22) or none`},
		{"", repository.Setting{}, `unknown compression "": use lz4, zstd, zstd:LEVEL (1-22) or none`},
	}
	for _, tc := range tests {
		got, err := repository.ParseSetting(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseSetting(%q): got %+v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSetting(%q): got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseSetting(%q).String(): got %q", tc.in, got.String())
		}
	}
}

// TestZstdLevels: every level writes a frame the decoder reads back, and a
// higher level does not store more than a lower one on compressible data.
func TestZstdLevels(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("walvault zstd level test, somewhat compressible text 0123456789\n"), 1<<14)
	rand.NewChaCha8([32]byte{2}).Read(in[:len(in)/4])
	sizes := map[int]int{}
	for _, level := range []int{1, 3, 9, 19} {
		var buf bytes.Buffer
		w, err := repository.Zstd.NewLevelWriter(&buf, level)
		if err != nil {
			t.Fatalf("NewLevelWriter(%d): %v", level, err)
		}
		if _, err := w.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sizes[level] = buf.Len()
		r, err := repository.Zstd.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("level %d: read back %d bytes, %v; want the %d bytes written", level, len(got), err, len(in))
		}
	}
	if sizes[19] > sizes[1] {
		t.Errorf("zstd:19 stored %d bytes, more than zstd:1's %d", sizes[19], sizes[1])
	}
}

// TestZstdFrameChecked: the zstd body carries a content checksum, so a
// flipped byte fails the read instead of returning wrong data.
func TestZstdFrameChecked(t *testing.T) {
	t.Parallel()
	in := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{3}).Read(in)
	var buf bytes.Buffer
	w, err := repository.Zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(in)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	body := buf.Bytes()
	if !bytes.HasPrefix(body, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("zstd body starts %x, want the zstd frame magic", body[:4])
	}
	// The frame header's descriptor says a checksum follows the blocks.
	if body[4]&0x04 == 0 {
		t.Errorf("zstd frame descriptor %08b: content checksum flag not set", body[4])
	}
	body[len(body)-1] ^= 0xff // the checksum's last byte
	r, err := repository.Zstd.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Errorf("reading a zstd body with a wrong checksum: got nil, want an error")
	}
}
