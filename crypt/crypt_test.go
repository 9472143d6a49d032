package crypt

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// newKey makes an identity file in dir and returns its path and public key.
func newKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

func TestRoundTripAndFingerprints(t *testing.T) {
	dir := t.TempDir()
	idPath, pub := newKey(t, dir, "key.txt")
	_, pub2 := newKey(t, dir, "other.txt")
	r, err := ParseRecipients(pub + " , " + pub2)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("walvault "), 20000)
	var ct bytes.Buffer
	w, err := r.NewWriter(&ct)
	if err != nil {
		t.Fatal(err)
	}
	fp := r.NewFingerprinter()
	if _, err := io.Copy(io.MultiWriter(w, fp), bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum := fp.Sum()
	if got := RecipientsOf(sum); strings.Join(got, ",") != strings.Join(r.IDs(), ",") {
		t.Fatalf("RecipientsOf(%q) = %v, want %v", sum, got, r.IDs())
	}
	ids, warning, err := LoadIdentities(idPath)
	if err != nil || warning != "" {
		t.Fatalf("LoadIdentities: %v, %q", err, warning)
	}
	pr, err := ids.NewReader(bytes.NewReader(ct.Bytes()), RecipientsOf(sum))
	if err != nil {
		t.Fatal(err)
	}
	h, want, ok := ids.Verifier(sum)
	if !ok {
		t.Fatal("no verifier for a key the identity file holds")
	}
	got, err := io.ReadAll(io.TeeReader(pr, h))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypted %d bytes, err %v", len(got), err)
	}
	if hexSum := fmtHex(h.Sum(nil)); hexSum != want {
		t.Fatalf("fingerprint %s, want %s", hexSum, want)
	}

	// Same plaintext, only one shared recipient: still the same content.
	r1, _ := ParseRecipients(pub)
	fp1 := r1.NewFingerprinter()
	fp1.Write(plain)
	if same, comparable := SameContent(sum, fp1.Sum()); !same || !comparable {
		t.Fatalf("SameContent = %v, %v; want true, true", same, comparable)
	}
	fp2 := r1.NewFingerprinter()
	fp2.Write(plain[1:])
	if same, comparable := SameContent(sum, fp2.Sum()); same || !comparable {
		t.Fatalf("different plaintext: SameContent = %v, %v", same, comparable)
	}
	r2, _ := ParseRecipients(pub2)
	fp3 := r2.NewFingerprinter()
	fp3.Write(plain)
	if _, comparable := SameContent(fp1.Sum(), fp3.Sum()); comparable {
		t.Fatal("no shared recipient, yet comparable")
	}

	// One flipped byte fails authentication, as ErrTampered.
	bad := bytes.Clone(ct.Bytes())
	bad[len(bad)-100] ^= 1
	pr, err = ids.NewReader(bytes.NewReader(bad), nil)
	if err == nil {
		_, err = io.ReadAll(pr)
	}
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("tampered: err %v, want ErrTampered", err)
	}
	// Truncated too.
	pr, err = ids.NewReader(bytes.NewReader(ct.Bytes()[:ct.Len()-70000]), nil)
	if err == nil {
		_, err = io.ReadAll(pr)
	}
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("truncated: err %v, want ErrTampered", err)
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, len(b)*2)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestNoMatchingIdentityNamesBothSides(t *testing.T) {
	dir := t.TempDir()
	_, pub := newKey(t, dir, "a.txt")
	otherPath, _ := newKey(t, dir, "b.txt")
	r, _ := ParseRecipients(pub)
	var ct bytes.Buffer
	w, _ := r.NewWriter(&ct)
	w.Write([]byte("x"))
	w.Close()
	ids, _, err := LoadIdentities(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ids.NewReader(&ct, r.IDs())
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), r.IDs()[0]) || !strings.Contains(err.Error(), ids.IDs()[0]) {
		t.Fatalf("err %v: want ErrNoIdentity naming %s and %s", err, r.IDs()[0], ids.IDs()[0])
	}
	var none *Identities
	if _, err := none.NewReader(&ct, r.IDs()); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "decrypt-with") {
		t.Fatalf("no identities: err %v", err)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	idPath, pub := newKey(t, dir, "key.txt")
	secret, _ := os.ReadFile(idPath)
	secretLine := strings.TrimSpace(strings.Split(string(secret), "\n")[1])

	for _, spec := range []string{"", "age1nope", pub + ",ssh-ed25519 AAAA", secretLine} {
		_, err := ParseRecipients(spec)
		if err == nil {
			t.Errorf("ParseRecipients(%q) accepted", spec)
			continue
		}
		if strings.Contains(err.Error(), secretLine) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRecipients error quotes the secret or spans lines: %v", err)
		}
	}
	recFile := filepath.Join(dir, "recipients.txt")
	os.WriteFile(recFile, []byte("# ops\n"+pub+"\n"), 0o644)
	if r, err := ParseRecipients("@" + recFile); err != nil || len(r.IDs()) != 1 {
		t.Fatalf("recipients file: %v", err)
	}

	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte(secretLine[:len(secretLine)-3]+"\n"), 0o600)
	if _, _, err := LoadIdentities(bad); err == nil || strings.Contains(err.Error(), secretLine[:30]) {
		t.Fatalf("malformed identity: %v", err)
	}
	if _, _, err := LoadIdentities(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("absent identity file accepted")
	}
	// The key itself given where its file's path belongs.
	for _, v := range []string{secretLine, " " + strings.ToLower(secretLine) + "\n"} {
		if _, _, err := LoadIdentities(v); err == nil || strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(secretLine[15:])) || !strings.Contains(err.Error(), "not the path of a file") {
			t.Fatalf("decrypt-with given the secret key: %v", err)
		}
	}
	os.Chmod(idPath, 0o644)
	_, warning, err := LoadIdentities(idPath)
	if err != nil || !strings.Contains(warning, "0644") {
		t.Fatalf("mode 0644: warning %q, err %v", warning, err)
	}
}

// TestVersion1Fingerprints: entries written before version 2 (HMAC of the
// plaintext itself) are still verified, compared with version 1 entries,
// and never taken for different content when compared with version 2.
func TestVersion1Fingerprints(t *testing.T) {
	dir := t.TempDir()
	idPath, pub := newKey(t, dir, "key.txt")
	plain := []byte("segment bytes")
	m := hmac.New(sha256.New, fingerprintKey("v1", pub))
	m.Write(plain)
	v1 := KeyID(pub) + ":" + hex.EncodeToString(m.Sum(nil))
	r, _ := ParseRecipients(pub)
	fp := r.NewFingerprinter()
	fp.Write(plain)
	v2 := fp.Sum()
	if v1 == v2 || !strings.Contains(v2, ":v2=") {
		t.Fatalf("v1 %s, v2 %s", v1, v2)
	}
	ids, _, err := LoadIdentities(idPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{v1, v2} {
		h, want, ok := ids.Verifier(value)
		if !ok {
			t.Fatalf("no verifier for %s", value)
		}
		h.Write(plain)
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Fatalf("%s: verifier gives %s, want %s", value, got, want)
		}
		h.Reset()
		h.Write(plain[1:])
		if hex.EncodeToString(h.Sum(nil)) == want {
			t.Fatalf("%s: other content verifies", value)
		}
	}
	if same, comparable := SameContent(v1, v1); !same || !comparable {
		t.Fatal("v1 against v1: not the same")
	}
	if _, comparable := SameContent(v1, v2); comparable {
		t.Fatal("v1 against v2 compared: a re-push would be taken for a conflict")
	}
	if got := RecipientsOf(v2); len(got) != 1 || got[0] != KeyID(pub) {
		t.Fatalf("RecipientsOf(%s) = %v", v2, got)
	}
}
