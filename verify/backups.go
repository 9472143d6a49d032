package verify

import (
	"context"
	"fmt"
	"github.com/walvault/walvault/internal/units"
	"sort"
	"strings"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// checkBackup checks one backup folder against its manifest.
func (s *scan) checkBackup(ctx context.Context, bk *repository.Backup) error {
	id := bk.ID
	objs := map[string]int64{}
	startRecord := false
	for _, oi := range bk.Objects {
		if _, ok := repository.ParseMarkKey(oi.Key); ok {
			continue // a keep mark (backup-mark): part of the layout, no part of the backup
		}
		_, name, _ := repository.SplitBackupKey(oi.Key)
		switch {
		case name == "" || strings.Contains(name, "/"):
			s.stray(oi.Key, "backups/ holds only backups/<id>/<object> and backups/<id>/marks/, with ids like 20261125T103000Z")
			continue
		case name == repository.BackupStartedName:
			startRecord = true // part of the layout, no part of the backup
			continue
		}
		objs[oi.Key] = oi.Size
	}
	if len(objs) == 0 && !startRecord {
		return nil
	}
	br := BackupReport{ID: id, Status: "OK"}
	manifestKey := repository.BackupManifestKey(id)
	if _, ok := objs[manifestKey]; !ok {
		br.Status = string(repository.StatusIncomplete)
		br.Parts = len(objs)
		for _, n := range objs {
			br.StoredBytes += n
		}
		if _, hidden := s.hidden[manifestKey]; hidden {
			// The hidden finding says what to do; the backup is damaged
			// until then.
			s.markBackup(id)
		} else {
			s.warning(Finding{Kind: KindIncomplete, Key: repository.BackupPrefix(id), BackupID: id,
				Detail: fmt.Sprintf("backup %s is INCOMPLETE: %s (%s) without a manifest, left by an interrupted backup-push or delete (or a backup-push still running); it is never restored, and deleting backups/%s/ frees the space", id, units.Plural(len(objs), "object"), units.Bytes(br.StoredBytes), id)})
		}
		s.appendBackup(br)
		return nil
	}
	delete(objs, manifestKey)

	if bk.Manifest == nil {
		// A storage failure already failed the inventory: this is damage.
		err := bk.ManifestErr
		br.Status = "PROBLEM"
		s.problem(Finding{Kind: KindManifestInvalid, Key: manifestKey, BackupID: id,
			Detail: fmt.Sprintf("backup %s cannot be used: its manifest %s does not load: %v", id, manifestKey, err)})
		s.appendBackup(br)
		return nil
	}
	m := *bk.Manifest
	br.StartWAL, br.StopWAL, br.Timeline = m.StartWAL, m.StopWAL, m.StartTimeline
	if bad := s.manifestProblems(m); len(bad) > 0 {
		for _, why := range bad {
			s.problem(Finding{Kind: KindManifestInvalid, Key: manifestKey, BackupID: id, Detail: fmt.Sprintf("backup %s: manifest %s: %s", id, manifestKey, why)})
		}
	}

	parts := make([]repository.BackupPart, 0, 1+len(m.Archives))
	if m.PGManifest.Key != "" {
		parts = append(parts, m.PGManifest)
	} else {
		s.problem(Finding{Kind: KindManifestInvalid, Key: manifestKey, BackupID: id,
			Detail: fmt.Sprintf("backup %s: manifest %s lists no PostgreSQL backup_manifest", id, manifestKey)})
	}
	for _, a := range m.Archives {
		parts = append(parts, a.Parts...)
	}
	for _, p := range parts {
		size, ok := objs[p.Key]
		delete(objs, p.Key)
		if p.Key != m.PGManifest.Key { // backup_manifest is named on its own
			br.Parts++
		}
		br.StoredBytes += p.StoredSize
		switch {
		case !ok:
			if _, hidden := s.hidden[p.Key]; hidden {
				s.markBackup(id) // the hidden finding says what to do
				continue
			}
			s.problem(Finding{Kind: KindPartMissing, Key: p.Key, BackupID: id,
				Detail: fmt.Sprintf("backup %s: part %s is missing: the backup cannot be restored; restore another backup, and take a new one", id, p.Key)})
		case size != p.StoredSize:
			s.problem(Finding{Kind: KindPartSize, Key: p.Key, BackupID: id,
				Detail: fmt.Sprintf("backup %s: part %s has %d bytes, its manifest says %d: the backup is damaged; restore another backup, and take a new one", id, p.Key, size, p.StoredSize)})
		case s.work != nil && validPart(p, id):
			p := p
			if err := s.queue(ctx, fullItem{key: p.Key, part: &p, backupID: id}); err != nil {
				return err
			}
		}
	}
	extra := make([]string, 0, len(objs))
	for key := range objs {
		extra = append(extra, key)
	}
	sort.Strings(extra)
	for _, key := range extra {
		s.stray(key, fmt.Sprintf("the manifest of backup %s does not list it", id))
	}

	report := s.appendBackup(br)
	if start, err := wal.ParseSegmentName(m.StartWAL); err == nil && bk.WALErr == nil {
		kept := s.opts.KeptBackups == nil || s.opts.KeptBackups[id]
		s.backups = append(s.backups, backupWAL{report: report, start: start, status: bk.WAL, kept: kept, walStored: m.WALStored})
	}
	return nil
}

// markBackup counts a problem against a backup that has no finding of its
// own (it shares one, such as a hidden object's).
func (s *scan) markBackup(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backupProblems[id]++
}

func (s *scan) appendBackup(br BackupReport) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.Backups = append(s.r.Backups, br)
	return len(s.r.Backups) - 1
}

// manifestProblems lists what makes a parsed manifest inconsistent with
// the repository or with itself.
func (s *scan) manifestProblems(m repository.BackupManifest) []string {
	var bad []string
	if m.SystemID != s.id.SystemID {
		bad = append(bad, fmt.Sprintf("system identifier %s, but the repository's is %s: the backup is of another cluster", m.SystemID, s.id.SystemID))
	}
	if m.WALSegmentSize != s.id.WALSegmentSize {
		bad = append(bad, fmt.Sprintf("WAL segment size %d, but the repository's is %d", m.WALSegmentSize, s.id.WALSegmentSize))
	}
	for _, f := range []struct{ name, v string }{{"start_wal", m.StartWAL}, {"stop_wal", m.StopWAL}} {
		if _, err := wal.ParseSegmentName(f.v); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", f.name, err))
		}
	}
	parts := []repository.BackupPart{}
	if m.PGManifest.Key != "" {
		parts = append(parts, m.PGManifest)
	}
	for _, a := range m.Archives {
		if len(a.Parts) == 0 {
			bad = append(bad, fmt.Sprintf("archive %s has no parts", a.Name))
		}
		parts = append(parts, a.Parts...)
	}
	if len(m.Archives) == 0 {
		bad = append(bad, "it lists no tar archive")
	}
	for _, p := range parts {
		if !validPart(p, m.ID) {
			bad = append(bad, fmt.Sprintf("part %q has no valid key, compression, size and sha256", p.Key))
		}
	}
	return bad
}

// validPart reports whether a part's manifest entry can be checked: a key
// inside the backup's folder, a known compression, sizes and a checksum
// (the stored sha256, the raw one of older backups, or an encrypted part's
// fingerprints).
func validPart(p repository.BackupPart, id string) bool {
	if !strings.HasPrefix(p.Key, repository.BackupPrefix(id)) || storage.ValidateKey(p.Key) != nil {
		return false
	}
	if _, err := repository.ParseCompression(string(p.Compression)); err != nil {
		return false
	}
	return p.RawSize >= 0 && p.StoredSize >= 0 && p.HasChecksum()
}
