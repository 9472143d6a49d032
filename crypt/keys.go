package crypt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"filippo.io/age"
)

// Scheme is the value recorded in walvault.json and object metadata for
// age-encrypted repositories and objects.
const Scheme = "age"

// KeyID is the short, public name of a recipient: "age:" and the first 16
// hex digits of the SHA-256 of its public key string. It names a key in
// messages, metadata and walvault.json without revealing the public key,
// which keys the plaintext fingerprints.
func KeyID(publicKey string) string {
	sum := sha256.Sum256([]byte(publicKey))
	return "age:" + hex.EncodeToString(sum[:8])
}

// Recipients are the public keys new objects are encrypted to.
type Recipients struct {
	keys []*age.X25519Recipient // sorted by KeyID
}

// ParseRecipients reads the encrypt-to setting: age public keys (age1...)
// separated by commas, or "@" and the path of a file holding one per line
// (# comments allowed, as age -R reads).
func ParseRecipients(spec string) (*Recipients, error) {
	var lines []string
	source := "encrypt-to"
	if path, ok := strings.CutPrefix(strings.TrimSpace(spec), "@"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read the recipients file %s: %w", path, err)
		}
		source = path
		lines = strings.Split(string(data), "\n")
	} else {
		lines = strings.Split(spec, ",")
	}
	r := &Recipients{}
	seen := map[string]bool{}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The parser's error is not wrapped: it quotes the whole entry,
		// which may be a secret key pasted in the wrong place.
		key, err := age.ParseX25519Recipient(line)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %d (%q) is not an age public key (age1..., as `age-keygen -y` prints)", source, i+1, shorten(line))
		}
		if !seen[key.String()] {
			seen[key.String()] = true
			r.keys = append(r.keys, key)
		}
	}
	if len(r.keys) == 0 {
		return nil, fmt.Errorf("%s holds no age public key", source)
	}
	sort.Slice(r.keys, func(i, j int) bool { return KeyID(r.keys[i].String()) < KeyID(r.keys[j].String()) })
	return r, nil
}

// shorten keeps a malformed entry recognisable in a message without
// printing all of it: it may be a secret key pasted in the wrong place.
func shorten(s string) string {
	if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
		return "AGE-SECRET-KEY-… (a secret key: give encrypt-to the public key, age-keygen -y prints it)"
	}
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// IDs are the recipients' KeyIDs, sorted.
func (r *Recipients) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = KeyID(k.String())
	}
	return ids
}

// NewWriter encrypts into w; Close writes the last chunk but does not
// close w.
func (r *Recipients) NewWriter(w io.Writer) (io.WriteCloser, error) {
	rs := make([]age.Recipient, len(r.keys))
	for i, k := range r.keys {
		rs[i] = k
	}
	return age.Encrypt(w, rs...)
}

// Identities are the secret keys that decrypt objects.
type Identities struct {
	path string
	keys []*age.X25519Identity
}

// LoadIdentities reads an age identity file (AGE-SECRET-KEY-1... lines,
// # comments allowed, as age-keygen writes). warning is not empty when
// the file is readable by group or others; the caller logs it.
func LoadIdentities(path string) (ids *Identities, warning string, err error) {
	if strings.Contains(strings.ToUpper(path), "AGE-SECRET-KEY-") {
		// The key itself where its file's path belongs: an error quoting
		// it would put the secret into a log.
		return nil, "", errors.New("decrypt-with is given a secret key (AGE-SECRET-KEY-…), not the path of a file that holds one: write the key into a file only its owner can read (chmod 600) and give that file's path")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("open the identity file (decrypt-with): %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("stat the identity file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("the identity file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		warning = fmt.Sprintf("the identity file %s has mode %04o, readable by others than its owner: chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, "", fmt.Errorf("read the identity file %s: %w", path, err)
	}
	ids = &Identities{path: path}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The parser's error is not wrapped: it may quote the line.
		key, perr := age.ParseX25519Identity(line)
		if perr != nil {
			return nil, "", fmt.Errorf("the identity file %s: line %d is not an age secret key (AGE-SECRET-KEY-1..., as age-keygen writes)", path, i+1)
		}
		ids.keys = append(ids.keys, key)
	}
	if len(ids.keys) == 0 {
		return nil, "", fmt.Errorf("the identity file %s holds no age secret key", path)
	}
	return ids, warning, nil
}

// Path is the identity file's path.
func (ids *Identities) Path() string {
	if ids == nil {
		return "(no identity file)"
	}
	return ids.path
}

// IDs are the KeyIDs of the identities' public keys, in file order.
func (ids *Identities) IDs() []string {
	out := make([]string, len(ids.keys))
	for i, k := range ids.keys {
		out[i] = KeyID(k.Recipient().String())
	}
	return out
}

// Holds reports whether the identities include the key named by id.
func (ids *Identities) Holds(id string) bool {
	for _, have := range ids.IDs() {
		if have == id {
			return true
		}
	}
	return false
}

// ErrNoIdentity: the object is encrypted to none of the keys at hand (or
// no identity was configured).
var ErrNoIdentity = errors.New("no identity for the object's recipients")

// ErrTampered: the ciphertext does not authenticate: it was changed or
// truncated after it was written.
var ErrTampered = errors.New("encrypted object failed authentication")

// NewReader decrypts r. recipients are the object's recipients' KeyIDs as
// its metadata records them, for the message when none is at hand.
func (ids *Identities) NewReader(r io.Reader, recipients []string) (io.Reader, error) {
	if ids == nil {
		return nil, fmt.Errorf("%w: it is encrypted to %s and no identity file is configured: set decrypt-with (%s)", ErrNoIdentity, describe(recipients), "WALVAULT_DECRYPT_WITH")
	}
	as := make([]age.Identity, len(ids.keys))
	for i, k := range ids.keys {
		as[i] = k
	}
	plain, err := age.Decrypt(r, as...)
	var none *age.NoIdentityMatchError
	switch {
	case errors.As(err, &none):
		return nil, fmt.Errorf("%w: it is encrypted to %s; the identity file %s holds %s", ErrNoIdentity, describe(recipients), ids.path, strings.Join(ids.IDs(), ", "))
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	return &tagged{plain}, nil
}

// tagged marks the decryption's errors: a chunk that fails to
// authenticate, or a stream that ends before its last chunk, means the
// object was changed or truncated; errors of the underlying reader pass
// through unchanged.
type tagged struct{ r io.Reader }

func (t *tagged) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && isAgeError(err) {
		err = fmt.Errorf("%w: %v", ErrTampered, err)
	}
	return n, err
}

// isAgeError tells age's own failures from the underlying reader's: age
// returns a reader's errors as they are, and its own unwrapped.
func isAgeError(err error) bool {
	if err == io.ErrUnexpectedEOF { // truncated: no chunk marked last
		return true
	}
	msg := err.Error()
	return errors.Unwrap(err) == nil && (strings.Contains(msg, "chunk") || strings.Contains(msg, "encrypted file"))
}

func describe(recipients []string) string {
	if len(recipients) == 0 {
		return "keys its metadata does not name"
	}
	return strings.Join(recipients, ", ")
}
