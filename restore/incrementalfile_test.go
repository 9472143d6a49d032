package restore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const testBlock = 16

// block is a block filled with c.
func block(c byte) []byte { return bytes.Repeat([]byte{c}, testBlock) }

// incrementalFile builds an INCREMENTAL file carrying blocks (number → fill
// byte, in the order given) with truncation length trunc.
func incrementalFile(trunc uint32, nums []uint32, fills []byte) []byte {
	var b bytes.Buffer
	for _, v := range []uint32{incrementalMagic, uint32(len(nums)), trunc} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	for _, n := range nums {
		binary.Write(&b, binary.LittleEndian, n)
	}
	if len(nums) > 0 && b.Len()%testBlock != 0 {
		b.Write(make([]byte, testBlock-b.Len()%testBlock))
	}
	for _, c := range fills {
		b.Write(block(c))
	}
	return b.Bytes()
}

func TestApplyIncremental(t *testing.T) {
	t.Parallel()
	zero := block(0)
	for _, tc := range []struct {
		name  string
		old   []byte // fill bytes of the file's blocks before
		trunc uint32
		nums  []uint32
		fills []byte
		want  [][]byte
	}{
		{"changed blocks replace theirs", []byte("abcd"), 4, []uint32{3, 1}, []byte("XY"), [][]byte{block('a'), block('Y'), block('c'), block('X')}},
		{"truncated, then a block past the cut", []byte("abcdef"), 2, []uint32{4}, []byte("X"), [][]byte{block('a'), block('b'), zero, zero, block('X')}},
		{"grown without carried blocks", []byte("ab"), 4, nil, nil, [][]byte{block('a'), block('b'), zero, zero}},
		{"truncated to nothing", []byte("abc"), 0, nil, nil, nil},
		{"grown past a gap, and a block changed", []byte("ab"), 2, []uint32{4, 0}, []byte("XY"), [][]byte{block('Y'), block('b'), zero, zero, block('X')}},
		{"nothing carried, nothing cut", []byte("abc"), 3, nil, nil, [][]byte{block('a'), block('b'), block('c')}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "16384")
			var old []byte
			for _, c := range tc.old {
				old = append(old, block(c)...)
			}
			if err := os.WriteFile(path, old, 0o600); err != nil {
				t.Fatal(err)
			}
			inc := incrementalFile(tc.trunc, tc.nums, tc.fills)
			r := bytes.NewReader(inc)
			h, err := ReadIncrementalHeader(r, testBlock)
			if err != nil {
				t.Fatal(err)
			}
			if h.FileSize() != int64(len(inc)) {
				t.Fatalf("FileSize %d, the file has %d bytes", h.FileSize(), len(inc))
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// The CRC-32C known before follows the file, unless it shrinks.
			sum := fileSum{size: int64(len(old)), crc: crc32cOf(old), known: true}
			if err := applyIncremental(f, h, r, &sum); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := bytes.Join(tc.want, nil); !bytes.Equal(got, want) {
				t.Fatalf("reconstructed %q, want %q", got, want)
			}
			shrank := int64(tc.trunc)*testBlock < int64(len(old))
			switch {
			case shrank && sum.known:
				t.Errorf("a file cut shorter kept a known CRC-32C: %+v", sum)
			case !shrank && (!sum.known || sum.size != int64(len(got)) || sum.crc != crc32cOf(got)):
				t.Errorf("followed CRC-32C %+v, want %d bytes with %08x", sum, len(got), crc32cOf(got))
			}
		})
	}
}

func TestIncrementalHeaderDamage(t *testing.T) {
	t.Parallel()
	good := incrementalFile(4, []uint32{1}, []byte("X"))
	badMagic := append([]byte{1}, good[1:]...)
	twice := incrementalFile(4, []uint32{1, 1}, []byte("XY"))
	for name, data := range map[string][]byte{"magic": badMagic, "cut header": good[:10], "cut padding": good[:testBlock-1], "block twice": twice} {
		if _, err := ReadIncrementalHeader(bytes.NewReader(data), testBlock); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	r := bytes.NewReader(good[:len(good)-1])
	h, err := ReadIncrementalHeader(r, testBlock)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := applyIncremental(f, h, r, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a cut block: got %v, want ErrCorrupt", err)
	}
	for name, want := range map[string]string{"base/5/INCREMENTAL.16384": "base/5/16384", "INCREMENTAL.x_vm": "x_vm"} {
		if got, ok := IncrementalTarget(name); !ok || got != want {
			t.Errorf("IncrementalTarget(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := IncrementalTarget("base/5/16384"); ok {
		t.Error("a plain file taken for an incremental one")
	}
}
