package repository

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// TestRecordRecipients: keys walvault.json does not name are recorded
// under recipients/, once each, whatever the races between writers; the
// keys in use are walvault.json's and those; the records are walvault's
// keys, not strays.
func TestRecordRecipients(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	a := crypttest.NewKey(t)
	id := NewIdentity(1, 16<<20, 15, LZ4, "h", time.Now()).WithEncryption(crypttest.Recipients(t, a))
	if _, err := EnsureIdentity(ctx, b, id, nil); err != nil {
		t.Fatal(err)
	}
	same, err := RecordRecipients(ctx, b, id, crypttest.Recipients(t, a), "h", time.Now(), nil)
	if err != nil || !slices.Equal(same.Recipients, id.Recipients) {
		t.Fatalf("the creating key: %v, %v", same.Recipients, err)
	}
	if n := countUnder(t, b, RecipientsPrefix); n != 0 {
		t.Fatalf("the creating key was recorded again: %d records", n)
	}

	// Eight writers, each rotating to its own new key plus one shared new
	// key, at once: every key ends up recorded, none twice, no error.
	shared := crypttest.NewKey(t)
	var wg sync.WaitGroup
	want := append([]string{}, id.Recipients...)
	want = append(want, crypttest.Recipients(t, shared).IDs()...)
	errs := make(chan error, 8)
	for range 8 {
		own := crypttest.NewKey(t)
		want = append(want, crypttest.Recipients(t, own).IDs()...)
		r := crypttest.Recipients(t, a, own, shared)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := RecordRecipients(ctx, b, id, r, "h", time.Now(), nil)
			if err == nil && !got.Records(r) {
				err = errors.New("the returned identity does not name every key")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	inUse, err := RecipientsInUse(ctx, b, id)
	if err != nil || !slices.Equal(inUse, want) {
		t.Fatalf("in use: %v, %v; want %v", inUse, err, want)
	}
	if n := countUnder(t, b, RecipientsPrefix); n != len(want)-1 {
		t.Fatalf("%d records, want %d", n, len(want)-1)
	}
	key := RecipientKey(want[0])
	if k, ok := ParseKey(key); !ok || k.Kind != KeyRecipient || k.String() != key {
		t.Fatalf("ParseKey(%s) = %+v, %v", key, k, ok)
	}
	inv, err := LoadInventory(ctx, b, LoadOptions{})
	if err != nil || len(inv.Strays) != 0 {
		t.Fatalf("inventory: strays %v, %v", inv.Strays, err)
	}
}

func countUnder(t *testing.T, b storage.Backend, prefix string) int {
	t.Helper()
	n := 0
	if err := b.List(context.Background(), prefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
