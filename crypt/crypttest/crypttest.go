package crypttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/walvault/walvault/crypt"
)

// Key is an age key pair: Path is its identity file (mode 600).
type Key struct {
	Path, Public, Secret string
}

// NewKey makes a key pair whose identity file lives in a temporary
// directory of t.
func NewKey(t testing.TB) Key {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Key{path, id.Recipient().String(), id.String()}
}

// Recipients parses the public keys of keys, as encrypt-to would.
func Recipients(t testing.TB, keys ...Key) *crypt.Recipients {
	t.Helper()
	pubs := make([]string, len(keys))
	for i, k := range keys {
		pubs[i] = k.Public
	}
	r, err := crypt.ParseRecipients(strings.Join(pubs, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Identities loads k's identity file, as decrypt-with would.
func (k Key) Identities(t testing.TB) *crypt.Identities {
	t.Helper()
	ids, _, err := crypt.LoadIdentities(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
