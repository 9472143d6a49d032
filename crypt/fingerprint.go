package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// A plaintext fingerprint is HMAC-SHA256 of the object's plaintext (the
// raw file, before compression), keyed per recipient by fingerprintKey.
// Metadata records it as "<KeyID>:<hex>,..." (Fingerprints.String), one
// entry per recipient: a re-push compares the entry of a recipient both
// sides share, so pushes keep comparing while a key rotates (old and new
// configured together for a while), and a reader verifies the entry of a
// key it holds, since a secret key yields its public key.

// fingerprintKey derives the HMAC key from a recipient's public key. The
// public key is not in the repository (only its KeyID is), so reading the
// bucket is not enough to confirm a guessed plaintext.
func fingerprintKey(publicKey string) []byte {
	sum := sha256.Sum256([]byte("walvault plaintext fingerprint v1\n" + publicKey))
	return sum[:]
}

// Fingerprinter hashes a plaintext for every recipient at once.
type Fingerprinter struct {
	ids  []string
	macs []hash.Hash
	w    io.Writer
}

// NewFingerprinter starts the fingerprints of a plaintext for r's keys.
func (r *Recipients) NewFingerprinter() *Fingerprinter {
	f := &Fingerprinter{}
	ws := make([]io.Writer, len(r.keys))
	for i, k := range r.keys {
		f.ids = append(f.ids, KeyID(k.String()))
		f.macs = append(f.macs, hmac.New(sha256.New, fingerprintKey(k.String())))
		ws[i] = f.macs[i]
	}
	f.w = io.MultiWriter(ws...)
	return f
}

func (f *Fingerprinter) Write(p []byte) (int, error) { return f.w.Write(p) }

// Sum is the metadata value: "<KeyID>:<hex>" per recipient, comma separated.
func (f *Fingerprinter) Sum() string {
	parts := make([]string, len(f.ids))
	for i, id := range f.ids {
		parts[i] = id + ":" + hex.EncodeToString(f.macs[i].Sum(nil))
	}
	return strings.Join(parts, ",")
}

// ParseFingerprints reads a metadata value written by Sum: KeyID to hex
// fingerprint. Malformed entries are left out.
func ParseFingerprints(v string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		id, sum, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			continue
		}
		// KeyIDs contain one colon themselves ("age:…").
		rest, sum2, ok2 := strings.Cut(sum, ":")
		if ok2 {
			id, sum = id+":"+rest, sum2
		}
		if id != "" && len(sum) == sha256.Size*2 {
			out[id] = sum
		}
	}
	return out
}

// RecipientsOf lists the KeyIDs a metadata fingerprint value names, sorted
// as written.
func RecipientsOf(v string) []string {
	var ids []string
	for _, part := range strings.Split(v, ",") {
		if i := strings.LastIndex(part, ":"); i > 0 {
			ids = append(ids, strings.TrimSpace(part[:i]))
		}
	}
	return ids
}

// SameContent compares two fingerprint values: true when a recipient both
// name has the same fingerprint on both sides; comparable is false when
// they share no recipient (the push host cannot tell then).
func SameContent(a, b string) (same, comparable bool) {
	fa, fb := ParseFingerprints(a), ParseFingerprints(b)
	for id, sum := range fa {
		if other, ok := fb[id]; ok {
			return hmac.Equal([]byte(sum), []byte(other)), true
		}
	}
	return false, false
}

// Verifier returns a hash to feed the decrypted plaintext and the hex
// fingerprint it must end with, for the first key of ids the fingerprint
// value names; ok is false when ids hold none of them.
func (ids *Identities) Verifier(fingerprints string) (h hash.Hash, want string, ok bool) {
	if ids == nil {
		return nil, "", false
	}
	fs := ParseFingerprints(fingerprints)
	for _, k := range ids.keys {
		pub := k.Recipient().String()
		if sum, found := fs[KeyID(pub)]; found {
			return hmac.New(sha256.New, fingerprintKey(pub)), sum, true
		}
	}
	return nil, "", false
}

// Clone returns an independent copy of f's state, so a prefix hashed once
// can be finished several ways (wal-receive fingerprints each partial from
// the full chunks it already hashed).
func (f *Fingerprinter) Clone() (*Fingerprinter, error) {
	c := &Fingerprinter{ids: f.ids}
	ws := make([]io.Writer, len(f.macs))
	for i, m := range f.macs {
		cloner, ok := m.(hash.Cloner)
		if !ok {
			return nil, errors.New("the fingerprint hash cannot be cloned")
		}
		dup, err := cloner.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone a fingerprint: %w", err)
		}
		c.macs = append(c.macs, dup.(hash.Hash))
		ws[i] = c.macs[i]
	}
	c.w = io.MultiWriter(ws...)
	return c, nil
}
