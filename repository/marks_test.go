package repository_test

import (
	"context"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
)

func TestParseMarkKey(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)
	tests := []struct {
		key  string
		ok   bool
		keep bool
	}{
		{repository.MarkKey("20261125T100000Z", at, true), true, true},
		{repository.MarkKey("20261125T100000Z", at, false), true, false},
		{"backups/20261125T100000Z/marks/20261126T080000.123456789Z-keep", true, true},
		{"backups/20261125T100000Z/marks/20261126T080000Z-keep", false, false},            // short time
		{"backups/20261125T100000Z/marks/20261126T080000.123456789Z-maybe", false, false}, // unknown state
		{"backups/20261125T100000Z/walvault-backup.json", false, false},
		{"backups/../marks/20261126T080000.123456789Z-keep", false, false},
		{"wal/20261125T100000Z/marks/20261126T080000.123456789Z-keep", false, false},
	}
	for _, tc := range tests {
		m, ok := repository.ParseMarkKey(tc.key)
		if ok != tc.ok || m.Keep != tc.keep {
			t.Errorf("ParseMarkKey(%q) = %+v, %v; want ok %v keep %v", tc.key, m, ok, tc.ok, tc.keep)
		}
		if ok && (!m.At.Equal(at) || m.BackupID != "20261125T100000Z" || m.Key != tc.key) {
			t.Errorf("ParseMarkKey(%q) = %+v", tc.key, m)
		}
	}
}

func TestKeepMarksNewestWins(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	const a, c = "20261125T100000Z", "20261125T110000Z"
	if err := repository.WriteBackupManifest(ctx, b, manifest(a, "000000010000000000000002", "000000010000000000000002"), nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	if _, err := repository.WriteMark(ctx, b, a, true, now, repository.MarkOptions{Host: "h"}); err != nil {
		t.Fatal(err)
	}
	// A host whose clock is behind still writes the newest mark.
	m, err := repository.WriteMark(ctx, b, a, false, now.Add(-time.Hour), repository.MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.At.After(now) {
		t.Fatalf("a mark written with a slow clock is timed %v, not after the existing %v", m.At, now)
	}
	if _, err := repository.WriteMark(ctx, b, c, true, now, repository.MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same instant twice: the conditional create settles it.
	if _, err := repository.WriteMark(ctx, b, c, true, now, repository.MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	all, err := repository.KeepMarks(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if repository.Kept(all[a]) || !repository.Kept(all[c]) || len(all[a]) != 2 || len(all[c]) != 2 {
		t.Fatalf("KeepMarks = %+v; want %s not kept (2 marks), %s kept (2 marks)", all, a, c)
	}
	one, err := repository.LoadMarks(ctx, b, a)
	if err != nil || len(one) != 2 || repository.Kept(one) {
		t.Fatalf("LoadMarks(%s) = %+v, %v", a, one, err)
	}
	// Marks do not confuse the catalog: the backup with marks is still
	// complete, and a folder holding only marks is not.
	ids, complete, err := repository.BackupFolders(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || !complete[a] || complete[c] {
		t.Fatalf("BackupFolders = %v %v", ids, complete)
	}
	if _, err := repository.LoadMarks(ctx, b, "../x"); err == nil {
		t.Fatal("LoadMarks accepted an invalid id")
	}
}

func TestKeptTieKeeps(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	marks := []repository.Mark{{At: at, Keep: true}, {At: at, Keep: false}}
	if !repository.Kept(marks) {
		t.Fatal("keep and no-keep at the same instant: want keep")
	}
	if repository.Kept(nil) {
		t.Fatal("no marks: want not kept")
	}
}
