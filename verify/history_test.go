package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
)

// TestEncryptedTimelineSwitch: in an encrypted repository a timeline
// switch is no problem for verify without the identity. Its history file
// records the switch in its metadata; one of an older walvault does not,
// and is read with the identity, or else is a warning that the switch
// was not checked, never a bad history file.
func TestEncryptedTimelineSwitch(t *testing.T) {
	key := crypttest.NewKey(t)
	rec := crypttest.Recipients(t, key)
	repo := func(historyMeta map[string]string) *fixture {
		b, _ := filetest.New(t)
		f := fixtureOn(t, b, testIdentity().WithEncryption(rec), 6)
		for n := uint32(7); n <= 8; n++ {
			f.putSegment(t, wal.Segment{Timeline: 2, Seg: n}, segmentBody(n))
		}
		repotest.PutEncrypted(t, b, "wal/00000002.history", []byte("1\t0/700100\tno recovery target specified\n"), rec, historyMeta)
		return f
	}
	verify := func(f *fixture, ids *crypt.Identities) *Report {
		t.Helper()
		r, err := Run(context.Background(), f.b, Options{Identities: ids})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return r
	}
	branched := func(r *Report) bool {
		return len(r.Timelines) == 2 && r.Timelines[1].Parent == 1 && r.Timelines[1].SwitchLSN == "0/700100"
	}

	r := verify(repo(map[string]string{repository.MetaHistory: "1:0/700100"}), nil)
	if !r.OK || len(r.Warnings) != 0 || !branched(r) {
		t.Fatalf("switch in the metadata, no identity: problems %v, warnings %v, timelines %+v\n%s", kinds(r.Problems), kinds(r.Warnings), r.Timelines, text(t, r))
	}

	older := repo(nil)
	r = verify(older, key.Identities(t))
	if !r.OK || len(r.Warnings) != 0 || !branched(r) {
		t.Fatalf("an older walvault's history, with the identity: problems %v, warnings %v, timelines %+v\n%s", kinds(r.Problems), kinds(r.Warnings), r.Timelines, text(t, r))
	}
	r = verify(older, nil)
	if !r.OK || len(r.Warnings) != 1 || r.Warnings[0].Kind != KindHistoryUnread || r.Warnings[0].Key != "wal/00000002.history" {
		t.Fatalf("an older walvault's history, no identity: problems %v, warnings %v; want OK with one %s warning\n%s", kinds(r.Problems), kinds(r.Warnings), KindHistoryUnread, text(t, r))
	}
	if d := r.Warnings[0].Detail; !strings.Contains(d, "not be checked") || !strings.Contains(d, "decrypt-with") {
		t.Errorf("warning %q does not say the switch was not checked and how to check it", d)
	}

	// --full with an identity file that holds another key (one from
	// before a key rotation): the objects it cannot decrypt are one
	// problem (the repository was not verified whole), and every other
	// object is still read.
	other := crypttest.NewKey(t)
	r, err := Run(context.Background(), repo(map[string]string{repository.MetaHistory: "1:0/700100"}).b, Options{Full: true, Concurrency: 2, Identities: other.Identities(t)})
	if err != nil {
		t.Fatalf("verify --full with another key: %v; want a report", err)
	}
	if r.OK || len(r.Problems) != 1 || r.Problems[0].Kind != KindNotDecrypted || r.Problems[0].Key != "wal/00000002.history" || r.Summary.ObjectsRead < 8 {
		t.Fatalf("verify --full with another key: problems %v, warnings %v, %d objects read; want one %s problem (not verified whole), the other objects read\n%s", kinds(r.Problems), kinds(r.Warnings), r.Summary.ObjectsRead, KindNotDecrypted, text(t, r))
	}
	if d := r.Problems[0].Detail; !strings.Contains(d, "1 encrypted object") || !strings.Contains(d, "walvault keys") {
		t.Errorf("warning %q does not count the object and say what to do", d)
	}
}
