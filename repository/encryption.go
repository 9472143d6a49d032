package repository

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/walvault/walvault/crypt"
)

// Metadata of encrypted objects. An encrypted object carries no sha256 of
// its plaintext (it would let anyone who reads the bucket confirm a
// guessed file): MetaFingerprints, keyed per recipient (see package
// crypt), takes its place.
const (
	MetaEncryption   = "encryption"   // crypt.Scheme when the body is encrypted
	MetaFingerprints = "fingerprints" // crypt.Fingerprinter.Sum of the plaintext
	// MetaRecipients lists the KeyIDs of a streamed object's recipients
	// (a backup part's fingerprints are known only once it is stored, and
	// go to the backup's manifest).
	MetaRecipients = "recipients"
)

// Codec is how object bodies are encoded, the one place for it: compressed,
// then, with Recipients, encrypted. Every writer of object bodies goes
// through NewWriter and every reader through OpenBody.
type Codec struct {
	Compression Compression
	Level       int               // zstd's level (Setting.Level); 0: its default
	Recipients  *crypt.Recipients // nil: stored in the clear
}

// Encrypted reports whether bodies are encrypted.
func (c Codec) Encrypted() bool { return c.Recipients != nil }

// NewWriter returns a writer that compresses, then encrypts, into w;
// Close flushes both but does not close w.
func (c Codec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	if c.Recipients == nil {
		return c.Compression.NewLevelWriter(w, c.Level)
	}
	ew, err := c.Recipients.NewWriter(w)
	if err != nil {
		return nil, fmt.Errorf("start encryption: %w", err)
	}
	zw, err := c.Compression.NewLevelWriter(ew, c.Level)
	if err != nil {
		return nil, err
	}
	return &chainWriter{zw, ew}, nil
}

// chainWriter closes the compressor, then the encryption under it.
type chainWriter struct {
	io.WriteCloser
	under io.Closer
}

func (c *chainWriter) Close() error {
	err := c.WriteCloser.Close()
	if uerr := c.under.Close(); err == nil {
		err = uerr
	}
	return err
}

// Describe records the encryption in an object's metadata; fingerprints
// is the plaintext's crypt.Fingerprinter.Sum.
func (c Codec) Describe(meta map[string]string, fingerprints string) {
	if c.Recipients == nil {
		return
	}
	meta[MetaEncryption] = crypt.Scheme
	meta[MetaFingerprints] = fingerprints
	delete(meta, MetaSHA256)
}

// DescribeRecipients records the encryption in the metadata of an object
// whose fingerprints are not known before it is stored.
func (c Codec) DescribeRecipients(meta map[string]string) {
	if c.Recipients == nil {
		return
	}
	meta[MetaEncryption] = crypt.Scheme
	meta[MetaRecipients] = strings.Join(c.Recipients.IDs(), ",")
}

// EncryptedObject reports whether an object's metadata marks it encrypted.
func EncryptedObject(meta map[string]string) bool { return meta[MetaEncryption] != "" }

// OpenBody returns the plaintext of a stored body: decrypted with ids when
// its metadata marks it encrypted, then decompressed with c. An encrypted
// object without a matching identity fails with crypt.ErrNoIdentity,
// naming the keys it is encrypted to; a changed ciphertext fails while
// reading with crypt.ErrTampered.
//
// The plaintext is checked against the metadata's fingerprint for the key
// of ids that decrypts it, at its end: a mismatch fails the read wrapping
// crypt.ErrTampered, so the caller never takes a swapped object for its own.
// This is the one place an encrypted body is verified; a reader must read
// to EOF (as a size check one byte past the expected size does) before it
// trusts what it read. Metadata without a fingerprint for any key of ids
// cannot be verified: it fails at once, wrapping crypt.ErrTampered too.
func OpenBody(r io.Reader, c Compression, ids *crypt.Identities, meta map[string]string) (io.Reader, error) {
	if !EncryptedObject(meta) {
		return c.NewReader(r)
	}
	plain, err := decrypt(r, ids, meta)
	if err != nil {
		return nil, err
	}
	h, want, ok := ids.Verifier(meta[MetaFingerprints])
	if !ok {
		return nil, fmt.Errorf("%w: the object's metadata holds no fingerprint for the keys in %s, so its content cannot be verified", crypt.ErrTampered, ids.Path())
	}
	body, err := c.NewReader(plain)
	if err != nil {
		return nil, err
	}
	return &fingerprintedReader{r: body, h: h, want: want}, nil
}

// OpenBodyDigest is OpenBody for a reader that hashes all it reads with
// SHA-256 anyway (wal-fetch): an encrypted object's version 2 fingerprint
// is then checked on that digest by check, instead of by a second hash of
// the plaintext in the body, and the caller must call check with the
// digest of everything read, to EOF, before it trusts the content. For a
// clear object check is nil (the caller compares the digest with the
// metadata's sha256); for a version 1 fingerprint the body checks itself,
// as OpenBody's, and check accepts any digest. The body decodes as
// NewSegmentReader's does: close it, then r.
func OpenBodyDigest(r io.Reader, c Compression, ids *crypt.Identities, meta map[string]string) (body io.ReadCloser, check func(sha256 []byte) error, err error) {
	if !EncryptedObject(meta) {
		body, err := c.NewSegmentReader(r)
		return body, nil, err
	}
	digestOK, v2 := ids.DigestCheck(meta[MetaFingerprints])
	if !v2 {
		body, err := OpenBody(r, c, ids, meta)
		if err != nil {
			return nil, nil, err
		}
		return io.NopCloser(body), func([]byte) error { return nil }, nil
	}
	plain, err := decrypt(r, ids, meta)
	if err != nil {
		return nil, nil, err
	}
	if body, err = c.NewSegmentReader(plain); err != nil {
		return nil, nil, err
	}
	return body, func(sum []byte) error {
		if !digestOK(sum) {
			return fmt.Errorf("%w: the decrypted content's fingerprint is not the one its record holds", crypt.ErrTampered)
		}
		return nil
	}, nil
}

// decrypt returns the plaintext of an encrypted object's stored body.
func decrypt(r io.Reader, ids *crypt.Identities, meta map[string]string) (io.Reader, error) {
	if scheme := meta[MetaEncryption]; scheme != crypt.Scheme {
		return nil, fmt.Errorf("the object is encrypted with %q, which this walvault cannot decrypt", scheme)
	}
	return ids.NewReader(r, ObjectRecipients(meta))
}

// ObjectRecipients are the KeyIDs an encrypted object's metadata names.
func ObjectRecipients(meta map[string]string) []string {
	if fp := meta[MetaFingerprints]; fp != "" {
		return crypt.RecipientsOf(fp)
	}
	if r := meta[MetaRecipients]; r != "" {
		return strings.Split(r, ",")
	}
	return nil
}

// fingerprintedReader hashes what passes and, at EOF, fails unless the
// keyed fingerprint matches.
type fingerprintedReader struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (f *fingerprintedReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(f.h.Sum(nil)); got != f.want {
			return n, fmt.Errorf("%w: the decrypted content has fingerprint %s, its record says %s", crypt.ErrTampered, got, f.want)
		}
	}
	return n, err
}

// ErrEncryptionSettings: a push is configured with encryption into a clear
// repository or without it into an encrypted one. Nothing was written.
var ErrEncryptionSettings = errors.New("the encryption settings differ from the repository's")

// WithEncryption returns id recording that its objects are encrypted to r
// (nil: in the clear).
func (id Identity) WithEncryption(r *crypt.Recipients) Identity {
	if r != nil {
		id.Encryption, id.Recipients = crypt.Scheme, r.IDs()
	}
	return id
}

// CheckEncryption refuses a push configured with encryption into a
// repository that stores in the clear, or without it into an encrypted
// one: a repository is encrypted as a whole, or a clear object would sit
// among encrypted ones unnoticed. The recipients themselves may change
// (key rotation). location names the repository in the message.
func (id Identity) CheckEncryption(r *crypt.Recipients, location string) error {
	switch {
	case id.Encryption != "" && r == nil:
		return fmt.Errorf("%w: repository %s is encrypted (%s, to %v in %s), but encrypt-to is not set; nothing was written. Set encrypt-to (WALVAULT_ENCRYPT_TO) to the repository's age public keys",
			ErrEncryptionSettings, location, id.Encryption, id.Recipients, IdentityKey)
	case id.Encryption == "" && r != nil:
		return fmt.Errorf("%w: repository %s stores objects in the clear, but encrypt-to is set; nothing was written. Unset encrypt-to, or start an encrypted repository under a new bucket or prefix",
			ErrEncryptionSettings, location)
	case id.Encryption != "" && id.Encryption != crypt.Scheme:
		return fmt.Errorf("%w: repository %s is encrypted with %q, which this walvault cannot write", ErrEncryptionSettings, location, id.Encryption)
	}
	return nil
}
