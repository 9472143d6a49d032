package check

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// TestContinuityEncryptedHistory: an encrypted timeline history file of an
// older walvault (no switch in its metadata) fails no check: without the
// identity the continuity line says which switch was not checked and why;
// with it, or with the switch in the metadata, there is nothing to say.
func TestContinuityEncryptedHistory(t *testing.T) {
	key := crypttest.NewKey(t)
	rec := crypttest.Recipients(t, key)
	setup := func(historyMeta map[string]string, ids *crypt.Identities) *checker {
		c, b := newChecker(t)
		c.opts.MinBackups, c.opts.Identities = 0, ids
		for n := uint32(7); n <= 8; n++ {
			s := wal.Segment{Timeline: 2, Seg: n}
			repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: s}, repository.LZ4), []byte("x"))
		}
		repotest.PutEncrypted(t, b, "wal/00000002.history", []byte("1\t0/7000100\tno recovery target specified\n"), rec, historyMeta)
		c.checkIdentity(context.Background())
		c.checkBackups(context.Background())
		return c
	}

	c := setup(nil, nil)
	r := one(t, c.checkContinuity(context.Background()))
	if !r.OK || !strings.Contains(r.Detail, "switch to timeline 2 was not checked") || !strings.Contains(r.Detail, "decrypt-with") {
		t.Fatalf("an older walvault's encrypted history, no identity: %+v; want OK saying the switch to timeline 2 was not checked and how to check it", r)
	}

	for name, c := range map[string]*checker{
		"with the identity":      setup(nil, key.Identities(t)),
		"switch in the metadata": setup(map[string]string{repository.MetaHistory: "1:0/7000100"}, nil),
	} {
		r := one(t, c.checkContinuity(context.Background()))
		if !r.OK || strings.Contains(r.Detail, "not checked") {
			t.Errorf("%s: %+v; want OK with nothing unchecked", name, r)
		}
	}
}
