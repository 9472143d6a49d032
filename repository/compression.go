package repository

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression names how an object body is encoded. Each object records
// its own (key suffix and metadata, or its backup manifest), so one
// repository may hold several and the setting may change at any time:
// readers decode by what the object says.
type Compression string

const (
	// LZ4 is the lz4 frame format (readable with `lz4 -d`), fast level.
	LZ4 Compression = "lz4"
	// Zstd is the zstd frame format with a content checksum (readable
	// with `zstd -d`).
	Zstd Compression = "zstd"
	// None stores the raw bytes.
	None Compression = "none"
)

// Compressions lists every supported value, the default first.
var Compressions = []Compression{LZ4, Zstd, None}

// ParseCompression accepts a codec name: "lz4", "zstd" or "none". It
// checks what an object or manifest records; settings go through
// ParseSetting, which also takes a level.
func ParseCompression(s string) (Compression, error) {
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown compression %q: use lz4, zstd or none", s)
}

// Zstd levels, as the zstd command line numbers them. The encoder has four
// speeds; a level picks the nearest (zstd.EncoderLevelFromZstd): 1-2
// fastest, 3-5 default, 6-9 better, 10 and up best.
const (
	MinZstdLevel     = 1
	MaxZstdLevel     = 22
	DefaultZstdLevel = 3
)

// Setting is a configured compression: the codec new objects are written
// in, and its level (zstd only; 0 is the codec's default).
type Setting struct {
	Compression Compression
	Level       int
}

// ParseSetting parses the compression setting: "lz4", "none", "zstd", or
// "zstd:LEVEL" with LEVEL from 1 to 22.
func ParseSetting(s string) (Setting, error) {
	name, level, hasLevel := strings.Cut(s, ":")
	c, err := ParseCompression(name)
	if err != nil {
		return Setting{}, fmt.Errorf("unknown compression %q: use lz4, zstd, zstd:LEVEL (1-%d) or none", s, MaxZstdLevel)
	}
	if !hasLevel {
		return Setting{Compression: c}, nil
	}
	if c != Zstd {
		return Setting{}, fmt.Errorf("compression %q takes no level: only zstd does (zstd:LEVEL, 1-%d)", s, MaxZstdLevel)
	}
	n, err := strconv.Atoi(level)
	if err != nil || n < MinZstdLevel || n > MaxZstdLevel {
		return Setting{}, fmt.Errorf("invalid zstd level in %q: want a whole number from %d to %d", s, MinZstdLevel, MaxZstdLevel)
	}
	return Setting{Compression: c, Level: n}, nil
}

// String is the setting as ParseSetting reads it.
func (s Setting) String() string {
	if s.Level != 0 {
		return fmt.Sprintf("%s:%d", s.Compression, s.Level)
	}
	return string(s.Compression)
}

// Ext is the key suffix for objects in this encoding.
func (c Compression) Ext() string {
	switch c {
	case LZ4:
		return ".lz4"
	case Zstd:
		return ".zst"
	}
	return ""
}

// NewWriter returns a writer that encodes into w at the codec's default
// level; Close flushes the encoding but does not close w.
func (c Compression) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return c.NewLevelWriter(w, 0)
}

// NewLevelWriter is NewWriter at level (zstd only; 0 is its default).
func (c Compression) NewLevelWriter(w io.Writer, level int) (io.WriteCloser, error) {
	switch c {
	case LZ4:
		zw := lz4.NewWriter(w)
		// Fast level, 1 MiB blocks (measured faster than 4 MiB on WAL, for
		// 0.5% more output, and smaller buffers), and a content checksum so
		// `lz4 -t` can test a stored object without walvault. One block at
		// a time, in the caller's goroutine: the concurrent mode takes a
		// fresh 1 MiB buffer from a sync.Pool for every block, which each
		// collection empties, and backup-push collects often under its
		// soft memory limit; at pgbench scale 100 that cost it 0.5-1.9 s
		// of CPU (more over a slow link) for nothing: the backup's other
		// goroutines already keep both cores busy (README, "One lz4 block
		// at a time").
		if err := zw.Apply(lz4.CompressionLevelOption(lz4.Fast), lz4.BlockSizeOption(lz4.Block1Mb), lz4.ChecksumOption(true), lz4.ConcurrencyOption(1)); err != nil {
			return nil, fmt.Errorf("configure lz4: %w", err)
		}
		return zw, nil
	case Zstd:
		if level == 0 {
			level = DefaultZstdLevel
		}
		// The standard frame with a content checksum, so `zstd -d` and
		// `zstd -t` read a stored object without walvault; an empty input
		// still makes a frame. One encoder, in the caller's goroutine, as
		// lz4 above: two took 0.6-1.1 s more CPU per backup (BenchmarkZstd).
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderCRC(true),
			zstd.WithZeroFrames(true), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("configure zstd: %w", err)
		}
		return zw, nil
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// maxZstdWindow bounds the memory a zstd body may ask of the decoder: the
// zstd command line's own default limit. walvault writes 8 MiB windows.
const maxZstdWindow = 128 << 20

// NewReader returns a reader that decodes r.
func (c Compression) NewReader(r io.Reader) (io.Reader, error) {
	switch c {
	case LZ4:
		return lz4.NewReader(r), nil
	case Zstd:
		// One decoder, synchronous: no goroutine outlives the read, so
		// callers need not close it.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("start zstd decoder: %w", err)
		}
		return zr, nil
	case None:
		return r, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// segmentDecoders caps the cores one NewSegmentReader decodes on: two
// decode a block in less time than the sha256 its caller computes in order
// takes over it, so more would only hold more blocks in memory.
const segmentDecoders = 2

// NewSegmentReader is NewReader for a body whose reader waits on the
// decoder (a WAL segment that recovery asks for): lz4's independent blocks
// are decoded on several cores at once: a tenth to a quarter off a cold
// wal-fetch in a long-lived process on two cores (README, "Cold wal-fetch
// on two cores"). The other codecs, and a process with one core, decode as
// NewReader does.
//
// Close the body when done with it. Its decoders stop at the end of the
// body or at an error of r; when the caller stops reading before either,
// Close lets them run out in the background (they end as soon as r fails
// or ends: close r after the body).
func (c Compression) NewSegmentReader(r io.Reader) (io.ReadCloser, error) {
	n := min(runtime.GOMAXPROCS(0), segmentDecoders)
	if c != LZ4 || n < 2 {
		body, err := c.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(body), nil
	}
	zr := lz4.NewReader(r)
	if err := zr.Apply(lz4.ConcurrencyOption(n)); err != nil {
		return nil, fmt.Errorf("configure lz4: %w", err)
	}
	return &drainOnClose{zr}, nil
}

// drainOnClose reads what is left of a concurrent lz4 reader in the
// background on Close: its goroutines hand over decoded blocks one by one
// and would wait for a reader for ever.
type drainOnClose struct{ r io.Reader }

func (d *drainOnClose) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *drainOnClose) Close() error {
	go io.Copy(io.Discard, d.r)
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
