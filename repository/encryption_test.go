package repository

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/walvault/walvault/crypt"
)

func TestCodecRoundTrip(t *testing.T) {
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(path, []byte(key.String()+"\n"), 0o600)
	rec, err := crypt.ParseRecipients(key.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	ids, _, err := crypt.LoadIdentities(path)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("segment "), 100000)
	for _, c := range Compressions {
		codec := Codec{Compression: c, Recipients: rec}
		var stored bytes.Buffer
		w, err := codec.NewWriter(&stored)
		if err != nil {
			t.Fatal(err)
		}
		fp := rec.NewFingerprinter()
		io.Copy(io.MultiWriter(w, fp), bytes.NewReader(plain))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(stored.Bytes(), []byte("age-encryption.org/v1\n")) {
			t.Fatalf("%s: the stored body is not an age file", c)
		}
		meta := map[string]string{MetaSHA256: "plain sum"}
		codec.Describe(meta, fp.Sum())
		if _, ok := meta[MetaSHA256]; ok || meta[MetaEncryption] != "age" {
			t.Fatalf("%s: metadata %v keeps the plaintext sha256 or lacks encryption", c, meta)
		}
		r, err := OpenBody(bytes.NewReader(stored.Bytes()), c, ids, meta)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: read back %d bytes, err %v", c, len(got), err)
		}
		if _, err := OpenBody(bytes.NewReader(stored.Bytes()), c, nil, meta); !errors.Is(err, crypt.ErrNoIdentity) {
			t.Fatalf("%s: without identity: %v", c, err)
		}
	}
}

func TestCheckEncryption(t *testing.T) {
	key, _ := age.GenerateX25519Identity()
	rec, _ := crypt.ParseRecipients(key.Recipient().String())
	clear := Identity{}
	enc := Identity{}.WithEncryption(rec)
	if enc.Encryption != "age" || len(enc.Recipients) != 1 {
		t.Fatalf("WithEncryption: %+v", enc)
	}
	for _, tc := range []struct {
		id   Identity
		r    *crypt.Recipients
		fail bool
	}{{clear, nil, false}, {enc, rec, false}, {clear, rec, true}, {enc, nil, true}} {
		err := tc.id.CheckEncryption(tc.r, "file:///r")
		if tc.fail != errors.Is(err, ErrEncryptionSettings) {
			t.Errorf("CheckEncryption(%q, %v) = %v", tc.id.Encryption, tc.r != nil, err)
		}
	}
}
