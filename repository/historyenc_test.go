package repository_test

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// historyTwo is timeline 2's history file: it branched from timeline 1 in
// segment 5.
const historyTwo = "1\t0/5000100\tno recovery target specified\n"

// encryptedRepo is an encrypted repository in memory with a backup on
// timeline 1 (segments 2 and 3), timeline 1 archived up to segment 5 and
// timeline 2 from segment 5 on, to segment 7 but for segment skip (0:
// none skipped), and timeline 2's history file stored as wal-push stores
// it, encrypted to key, with historyMeta as its MetaHistory; without it
// ("") the object is an older walvault's.
func encryptedRepo(t *testing.T, key crypttest.Key, historyMeta string, skip uint32) *mem.Backend {
	t.Helper()
	ctx := context.Background()
	rec := crypttest.Recipients(t, key)
	b := repotest.New(t, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created).WithEncryption(rec))
	seg := func(tli wal.TimelineID, n uint32) {
		f := wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: wal.Segment{Timeline: tli, Seg: n}}
		repotest.Put(t, b, repository.WALKey(f, repository.LZ4), []byte("x"))
	}
	for n := uint32(2); n <= 5; n++ {
		seg(1, n)
	}
	for n := uint32(5); n <= 7; n++ {
		if n != skip {
			seg(2, n)
		}
	}
	if err := repository.WriteBackupManifest(ctx, b, manifest("20261125T100000Z", segName(1, 2), segName(1, 3)), nil); err != nil {
		t.Fatal(err)
	}

	var extra map[string]string
	if historyMeta != "" {
		extra = map[string]string{repository.MetaHistory: historyMeta}
	}
	repotest.PutEncrypted(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None), []byte(historyTwo), rec, extra)
	return b
}

// continuityOf loads b with histories (and ids) and checks continuity
// from the backup's start on timeline 1.
func continuityOf(t *testing.T, b storage.Backend, ids *crypt.Identities) repository.Continuity {
	t.Helper()
	inv, err := repository.LoadInventory(context.Background(), b, repository.LoadOptions{Histories: true, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	return inv.WAL.Continuity([]wal.Segment{{Timeline: 1, Seg: 2}})
}

// wantBranch fails unless c follows timeline 2 from timeline 1 at
// 0/5000100 and finds nothing wrong.
func wantBranch(t *testing.T, c repository.Continuity) {
	t.Helper()
	if len(c.BadHistory) != 0 || len(c.MissingHistory) != 0 || len(c.UnreadableHistory) != 0 || len(c.Gaps) != 0 {
		t.Fatalf("continuity: bad %v, missing %v, unreadable %v, gaps %+v; want none", c.BadHistory, c.MissingHistory, c.UnreadableHistory, c.Gaps)
	}
	for _, s := range c.Timelines {
		if s.Timeline == 2 && (s.Parent != 1 || s.SwitchPoint != 0x5000100 || !s.Reachable || s.From.Seg != 5) {
			t.Fatalf("timeline 2: %+v; want branched from 1 at 0/5000100, checked from segment 5", s)
		}
	}
}

// historyMetaWritten is timeline 2's MetaHistory as wal-push writes it;
// historyMetaLast as it writes one with room for the last entry only.
const (
	historyMetaWritten = "1:0/5000100"
	historyMetaLast    = "...,1:0/5000100"
)

// TestEncryptedHistoryFromMetadata: an encrypted history file that records
// its switches in its metadata, all of them or only the last, is followed
// without the identity, as verify, check, info and the exporter read it.
func TestEncryptedHistoryFromMetadata(t *testing.T) {
	t.Parallel()
	entries, err := wal.ParseHistory(strings.NewReader(historyTwo))
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]string{}
	repository.DescribeHistory(written, entries)
	if written[repository.MetaHistory] != historyMetaWritten {
		t.Fatalf("DescribeHistory wrote %q, the test stores %q", written[repository.MetaHistory], historyMetaWritten)
	}
	key := crypttest.NewKey(t)
	for _, meta := range []string{historyMetaWritten, historyMetaLast} {
		wantBranch(t, continuityOf(t, encryptedRepo(t, key, meta, 0), nil))
	}
}

// TestEncryptedHistoryWithoutMetadata: an encrypted history file of an
// older walvault (no switches in its metadata) is decrypted with the
// identity; without it, or with another key, its timeline's history is
// unreadable, which is no bad history file: continuity across the switch
// is not checked and says why, and a real gap on that timeline still
// counts as needed.
func TestEncryptedHistoryWithoutMetadata(t *testing.T) {
	t.Parallel()
	key := crypttest.NewKey(t)
	b := encryptedRepo(t, key, "", 0)
	wantBranch(t, continuityOf(t, b, key.Identities(t)))

	for name, ids := range map[string]*crypt.Identities{"no identity": nil, "another key": crypttest.NewKey(t).Identities(t)} {
		c := continuityOf(t, b, ids)
		why, ok := c.UnreadableHistory[2]
		if len(c.BadHistory) != 0 || len(c.MissingHistory) != 0 || !ok || len(c.Gaps) != 0 {
			t.Fatalf("%s: bad %v, missing %v, unreadable %v, gaps %+v; want timeline 2 unreadable, nothing else", name, c.BadHistory, c.MissingHistory, c.UnreadableHistory, c.Gaps)
		}
		if c.Summary(16<<20) != "" {
			t.Errorf("%s: Summary %q, want none: a healthy repository", name, c.Summary(16<<20))
		}
		if u := c.Unchecked(); !strings.Contains(u, "timeline 2") || !strings.Contains(u, "wal/00000002.history") || !strings.Contains(u, why.Error()) {
			t.Errorf("%s: Unchecked %q does not name timeline 2, its history file and why (%v)", name, u, why)
		}
	}
	if why := continuityOf(t, b, nil).UnreadableHistory[2]; !strings.Contains(why.Error(), "decrypt-with") {
		t.Errorf("without an identity: %v does not say to set decrypt-with", why)
	}

	gap := continuityOf(t, encryptedRepo(t, key, "", 6), nil)
	if len(gap.Gaps) != 1 || gap.Gaps[0].Timeline != 2 || gap.Gaps[0].First.Seg != 6 || !gap.Gaps[0].Needed {
		t.Errorf("a gap on timeline 2 with its history unreadable: %+v; want segment 6 missing, needed", gap.Gaps)
	}
}

// TestEncryptedHistoryRecovery: a restore to an LSN on timeline 2 follows
// an encrypted history file: from its metadata, or decrypted with the
// identity it restores with when the metadata lacks entries (an older
// walvault's object, or only the last entry: recovery reads every
// ancestor). Without either, it cannot, and says why.
func TestEncryptedHistoryRecovery(t *testing.T) {
	t.Parallel()
	key := crypttest.NewKey(t)
	r := repository.RecoveryRange{Start: wal.Segment{Timeline: 1, Seg: 2}, Target: 0x7000010}
	reach := func(meta string, ids *crypt.Identities) (repository.RecoveryReach, error) {
		b := encryptedRepo(t, key, meta, 0)
		inv, err := repository.LoadInventory(context.Background(), b, repository.LoadOptions{BackupsOnly: true, Identities: ids})
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.LoadRecoveryWAL(context.Background(), b, r); err != nil {
			t.Fatal(err)
		}
		return inv.WAL.RecoveryReach(r)
	}
	for _, tc := range []struct {
		meta string
		ids  *crypt.Identities
	}{{historyMetaWritten, nil}, {historyMetaLast, key.Identities(t)}, {"", key.Identities(t)}} {
		if v, err := reach(tc.meta, tc.ids); err != nil || !v.OK || v.Timeline != 2 {
			t.Errorf("metadata %q, identity %v: reach %+v, %v; want timeline 2 reached", tc.meta, tc.ids != nil, v, err)
		}
	}
	for _, meta := range []string{historyMetaLast, ""} {
		if _, err := reach(meta, nil); err == nil || !strings.Contains(err.Error(), "decrypt-with") {
			t.Errorf("metadata %q without an identity: %v; want an error that says to set decrypt-with", meta, err)
		}
	}
}
