package repository

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// HasChecksum reports whether p records what proves its content: a
// stored sha256, a raw sha256 (parts written before stored sums), or, for
// an encrypted part, its encryption and fingerprints.
func (p BackupPart) HasChecksum() bool {
	switch {
	case p.StoredSHA256 != "":
		return len(p.StoredSHA256) == sha256.Size*2
	case p.Encryption != "":
		return p.Fingerprints != ""
	}
	return len(p.SHA256) == sha256.Size*2
}

// StoredHash is a reader of a part's stored bytes that hashes them as they
// pass: put it between storage and the decoder, so the bytes are hashed
// where they are read anyway, without a copy of their own.
type StoredHash struct {
	r io.Reader
	h hash.Hash
	n int64
}

// NewStoredHash hashes what is read from r.
func NewStoredHash(r io.Reader) *StoredHash { return &StoredHash{r: r, h: sha256.New()} }

func (s *StoredHash) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// Finish reads what the decoder left unread (a decoder may stop at its
// frame's end: anything stored after it must count too) up to EOF, or
// until more than max bytes were read in all, and returns the hex sha256
// and the number of bytes read. The error is the stream's.
func (s *StoredHash) Finish(max int64) (sum string, n int64, err error) {
	if left := max + 1 - s.n; left > 0 {
		_, err = io.Copy(io.Discard, io.LimitReader(s, left))
	}
	return hex.EncodeToString(s.h.Sum(nil)), s.n, err
}
