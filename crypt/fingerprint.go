package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
)

// A plaintext fingerprint is keyed per recipient by fingerprintKey, one
// entry per recipient in metadata: "<KeyID>:v2=<hex>,...". A re-push
// compares the entry of a recipient both sides share, so pushes keep
// comparing while a key rotates (old and new configured together for a
// while), and a reader verifies the entry of a key it holds, since a
// secret key yields its public key.
//
// Version 2 (v2=) is HMAC-SHA256 of the plaintext's SHA-256 digest: every
// writer computes that digest anyway (wal-push's push-ahead record, the
// reader's own check), so the fingerprints cost one HMAC of 32 bytes per
// recipient instead of a second pass over the plaintext. What it reveals
// is the same: whoever holds a public key can confirm a guessed plaintext;
// the bucket alone cannot. Version 1 (no prefix; HMAC-SHA256 of the
// plaintext itself), written before, is still verified and compared with
// version 1 entries.
const fingerprintV2 = "v2="

// fingerprintKey derives the HMAC key of a version from a recipient's
// public key. The public key is not in the repository (only its KeyID is),
// so reading the bucket is not enough to confirm a guessed plaintext.
func fingerprintKey(version, publicKey string) []byte {
	sum := sha256.Sum256([]byte("walvault plaintext fingerprint " + version + "\n" + publicKey))
	return sum[:]
}

// FingerprintsOf is the metadata value for a plaintext whose SHA-256
// digest is sum: "<KeyID>:v2=<hex>" per recipient, comma separated.
func (r *Recipients) FingerprintsOf(sum []byte) string {
	parts := make([]string, len(r.keys))
	for i, k := range r.keys {
		parts[i] = KeyID(k.String()) + ":" + fingerprintV2 + hex.EncodeToString(fingerprintOf(k.String(), sum))
	}
	return strings.Join(parts, ",")
}

func fingerprintOf(publicKey string, sum []byte) []byte {
	m := hmac.New(sha256.New, fingerprintKey("v2", publicKey))
	m.Write(sum)
	return m.Sum(nil)
}

// Fingerprinter computes FingerprintsOf a plaintext written to it, for
// writers that do not hash it themselves.
type Fingerprinter struct {
	r   *Recipients
	sha hash.Hash
}

// NewFingerprinter starts the fingerprints of a plaintext for r's keys.
func (r *Recipients) NewFingerprinter() *Fingerprinter {
	return &Fingerprinter{r: r, sha: sha256.New()}
}

func (f *Fingerprinter) Write(p []byte) (int, error) { return f.sha.Write(p) }

// Sum is the metadata value: FingerprintsOf what was written.
func (f *Fingerprinter) Sum() string { return f.r.FingerprintsOf(f.sha.Sum(nil)) }

// ParseFingerprints reads a metadata value: KeyID to its entry ("v2=" and
// hex, or version 1's bare hex). Malformed entries are left out.
func ParseFingerprints(v string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		i := strings.LastIndex(part, ":")
		if i <= 0 {
			continue
		}
		id, sum := part[:i], part[i+1:]
		if len(strings.TrimPrefix(sum, fingerprintV2)) == sha256.Size*2 {
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
// name, with entries of the same version, has the same fingerprint on
// both sides; comparable is false when they share no such recipient (the
// push host cannot tell then).
func SameContent(a, b string) (same, comparable bool) {
	fa, fb := ParseFingerprints(a), ParseFingerprints(b)
	for id, sum := range fa {
		other, ok := fb[id]
		if ok && strings.HasPrefix(sum, fingerprintV2) == strings.HasPrefix(other, fingerprintV2) {
			return hmac.Equal([]byte(sum), []byte(other)), true
		}
	}
	return false, false
}

// Verifier returns a hash to feed the decrypted plaintext and the hex
// fingerprint its Sum must equal, for the first key of ids the fingerprint
// value names; ok is false when ids hold none of them.
func (ids *Identities) Verifier(fingerprints string) (h hash.Hash, want string, ok bool) {
	if ids == nil {
		return nil, "", false
	}
	fs := ParseFingerprints(fingerprints)
	for _, k := range ids.keys {
		pub := k.Recipient().String()
		sum, found := fs[KeyID(pub)]
		if !found {
			continue
		}
		if hexSum, v2 := strings.CutPrefix(sum, fingerprintV2); v2 {
			return &derivedHash{Hash: sha256.New(), publicKey: pub}, hexSum, true
		}
		return hmac.New(sha256.New, fingerprintKey("v1", pub)), sum, true
	}
	return nil, "", false
}

// DigestCheck is Verifier for a reader that computes the plaintext's
// SHA-256 itself: check reports whether a digest has the recorded version
// 2 fingerprint, for the key Verifier would use. ok is false when that
// entry is version 1 (keyed over the plaintext itself, which only
// Verifier's hash can check) or ids hold no key the value names.
func (ids *Identities) DigestCheck(fingerprints string) (check func(sha256 []byte) bool, ok bool) {
	h, want, ok := ids.Verifier(fingerprints)
	d, v2 := h.(*derivedHash)
	if !ok || !v2 {
		return nil, false
	}
	return func(sum []byte) bool {
		return hmac.Equal([]byte(hex.EncodeToString(fingerprintOf(d.publicKey, sum))), []byte(want))
	}, true
}

// derivedHash hashes the plaintext with SHA-256, and its Sum is the
// version 2 fingerprint of that digest.
type derivedHash struct {
	hash.Hash
	publicKey string
}

func (d *derivedHash) Sum(b []byte) []byte {
	return append(b, fingerprintOf(d.publicKey, d.Hash.Sum(nil))...)
}
