package restore

import (
	"hash/crc32"
	"sync"
)

// CRC-32C arithmetic for files changed in place. Restoring an incremental
// chain patches blocks into files the earlier backups wrote whole, and the
// combined backup_manifest needs each result's CRC-32C. Reading every
// reconstructed file back (in a PostgreSQL 17 incremental backup, every
// relation file that existed before) costs a second pass over most of the
// database; the CRC of the result follows instead from the CRC of the file
// before and the blocks that changed.
//
// A CRC is a polynomial over GF(2) reduced modulo the generator P. With
// the register starting at and finally XORed with all ones (as CRC-32C
// does, and hash/crc32 computes), for messages A and B:
//
//	crc(A ‖ B) = crc(A)·x^(8|B|) ⊕ crc(B)
//
// and for two messages of equal length, the difference of their CRCs is
// the plain (zero-start, no final XOR) CRC of their difference, which for
// a difference confined to one block at offset o of an L-byte message is
// that block's difference's CRC times x^(8(L-o-|block|)).
//
// The arithmetic is in hash/crc32's bit-reflected form: bit 31 holds the
// coefficient of x^0, bit 0 that of x^31.

// castagnoliReflected is P without its x^32 term, bit-reflected.
const castagnoliReflected = 0x82f63b78

// gfMul returns a·b mod P.
func gfMul(a, b uint32) uint32 {
	var product uint32
	for bit := uint32(1) << 31; bit != 0; bit >>= 1 {
		if a&bit != 0 {
			product ^= b
		}
		// b·x: one step towards the high powers, reduced by P on overflow.
		b = b>>1 ^ castagnoliReflected&-(b&1)
	}
	return product
}

// xPowersOfTwo holds x^(2^k) mod P for k = 0..63.
var xPowersOfTwo = sync.OnceValue(func() *[64]uint32 {
	var t [64]uint32
	t[0] = 1 << 30 // x
	for k := 1; k < len(t); k++ {
		t[k] = gfMul(t[k-1], t[k-1])
	}
	return &t
})

// crc32cShift returns v·x^(8n) mod P: a CRC moved past n more bytes.
func crc32cShift(v uint32, n int64) uint32 {
	t := xPowersOfTwo()
	for e, k := uint64(n)*8, 0; e != 0; e, k = e>>1, k+1 {
		if e&1 != 0 {
			v = gfMul(t[k], v)
		}
	}
	return v
}

// crc32cExtend returns the CRC-32C of a message whose CRC-32C is sum,
// followed by n zero bytes.
func crc32cExtend(sum uint32, n int64) uint32 {
	// The zeros add nothing of their own: only the register moves on.
	return crc32cShift(^sum, n) ^ 0xffffffff
}

// crc32cPatch returns the CRC-32C of a length-byte message whose CRC-32C
// is sum, once its blockLen bytes at off (whose CRC-32C is oldBlock) are
// replaced by as many bytes whose CRC-32C is newBlock.
func crc32cPatch(sum uint32, length, off, blockLen int64, oldBlock, newBlock uint32) uint32 {
	return sum ^ crc32cShift(oldBlock^newBlock, length-off-blockLen)
}

// crc32cOf is the CRC-32C of p.
func crc32cOf(p []byte) uint32 { return crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) }
