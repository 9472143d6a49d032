// Package crypt is walvault's client-side encryption: object bodies are
// encrypted with age (filippo.io/age, X25519 recipients) after they are
// compressed, so the host that archives needs only public keys
// (Recipients) and only the host that restores holds the secret identity
// (Identities).
//
// Because age ciphertext differs on every encryption, an identical re-push
// is recognised by a keyed fingerprint of the plaintext instead of the
// stored bytes (fingerprint.go): one HMAC-SHA256 of the plaintext's
// SHA-256 per recipient, keyed by a key derived from that recipient's
// public key. Whoever holds a public key
// can tell whether two objects hold the same plaintext, or confirm a
// guessed plaintext; someone who reads the bucket but holds no public key
// learns nothing from it; nobody can decrypt with it.
//
// The package knows nothing of repositories; repository/encryption.go
// puts it after compression.
package crypt
