package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/walvault/walvault/repository"
)

// baseArchive is the name of the data directory's tar stream.
const baseArchive = "base.tar"

// tablespacePlan says where one tablespace archive goes.
type tablespacePlan struct {
	archive     repository.BackupArchive
	oid         string
	oldLocation string // as backed up
	location    string // where it is restored (mapped), absolute and clean
}

// planArchives finds base.tar and the tablespace archives of m, and where
// each tablespace goes after mapping (OLD -> NEW). Every mapping must match
// a tablespace of the backup, and no two locations may overlap each other
// or the data directory.
func planArchives(m repository.BackupManifest, mapping map[string]string, dataDir string) (base repository.BackupArchive, tbs []tablespacePlan, err error) {
	clean := map[string]string{}
	for oldLoc, newLoc := range mapping {
		if !filepath.IsAbs(oldLoc) || !filepath.IsAbs(newLoc) {
			return base, nil, fmt.Errorf("tablespace mapping %s=%s: both locations must be absolute paths", oldLoc, newLoc)
		}
		clean[filepath.Clean(oldLoc)] = filepath.Clean(newLoc)
	}
	used := map[string]bool{}
	haveBase := false
	for _, a := range m.Archives {
		if a.Name == baseArchive {
			if haveBase {
				return base, nil, fmt.Errorf("the manifest of backup %s lists %s twice: the manifest is damaged", m.ID, baseArchive)
			}
			base, haveBase = a, true
			continue
		}
		oid, ok := strings.CutSuffix(a.Name, ".tar")
		if !ok || !isDigits(oid) || (a.TablespaceOID != 0 && strconv.FormatUint(uint64(a.TablespaceOID), 10) != oid) {
			return base, nil, fmt.Errorf("the manifest of backup %s lists archive %q (tablespace oid %d): only base.tar and <oid>.tar are known; the manifest is damaged or from a newer walvault", m.ID, a.Name, a.TablespaceOID)
		}
		if !filepath.IsAbs(a.TablespaceLocation) {
			return base, nil, fmt.Errorf("the manifest of backup %s gives tablespace %s the location %q, not an absolute path: the manifest is damaged", m.ID, oid, a.TablespaceLocation)
		}
		p := tablespacePlan{archive: a, oid: oid, oldLocation: filepath.Clean(a.TablespaceLocation)}
		p.location = p.oldLocation
		if n, ok := clean[p.oldLocation]; ok {
			p.location = n
			used[p.oldLocation] = true
		}
		tbs = append(tbs, p)
	}
	if !haveBase {
		return base, nil, fmt.Errorf("the manifest of backup %s lists no %s: the manifest is damaged", m.ID, baseArchive)
	}
	for oldLoc := range clean {
		if !used[oldLoc] {
			var locs []string
			for _, t := range tbs {
				locs = append(locs, t.oldLocation)
			}
			have := "it has no tablespaces"
			if len(locs) > 0 {
				have = "its tablespaces are at " + strings.Join(locs, ", ")
			}
			return base, nil, fmt.Errorf("tablespace mapping %s matches no tablespace of backup %s: %s", oldLoc, m.ID, have)
		}
	}
	sort.Slice(tbs, func(i, j int) bool { return tbs[i].oid < tbs[j].oid })
	// No location may contain another or the data directory.
	all := []string{dataDir}
	for _, t := range tbs {
		all = append(all, t.location)
	}
	for i := range all {
		for j := range all {
			if i != j && within(all[j], all[i]) {
				what := func(k int) string {
					if k == 0 {
						return "the data directory " + all[0]
					}
					return fmt.Sprintf("tablespace %s's location %s", tbs[k-1].oid, all[k])
				}
				return base, nil, fmt.Errorf("%s lies within %s: map the tablespaces to separate directories outside the data directory (--tablespace-mapping OLD=NEW)", what(j), what(i))
			}
		}
	}
	return base, tbs, nil
}

// within reports whether p is dir or lies beneath it (both clean, absolute).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// tablespaceMapEntry is one line of tablespace_map.
type tablespaceMapEntry struct {
	oid, path string
}

// parseTablespaceMap reads tablespace_map as PostgreSQL does: one
// "<oid> <path>" per line, where a backslash makes the next character
// literal (so paths may hold newlines).
func parseTablespaceMap(data []byte) ([]tablespaceMapEntry, error) {
	var out []tablespaceMapEntry
	var line []byte
	escaped := false
	for _, c := range data {
		switch {
		case escaped:
			line = append(line, c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '\n' || c == '\r':
			if len(line) == 0 {
				continue
			}
			oid, p, ok := bytes.Cut(line, []byte{' '})
			if !ok || len(oid) == 0 || len(p) == 0 || !isDigits(string(oid)) {
				return nil, fmt.Errorf("invalid line %q in %s: want \"<oid> <path>\"", line, tablespaceMapName)
			}
			out = append(out, tablespaceMapEntry{string(oid), string(p)})
			line = line[:0]
		default:
			line = append(line, c)
		}
	}
	if len(line) > 0 || escaped {
		return nil, fmt.Errorf("%s does not end with a line break: it is truncated", tablespaceMapName)
	}
	return out, nil
}

// formatTablespaceMap writes entries the way PostgreSQL does, escaping
// backslashes and line breaks in paths.
func formatTablespaceMap(entries []tablespaceMapEntry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.oid)
		b.WriteByte(' ')
		for i := 0; i < len(e.path); i++ {
			if c := e.path[i]; c == '\\' || c == '\n' || c == '\r' {
				b.WriteByte('\\')
			}
			b.WriteByte(e.path[i])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// finishTablespaces writes tablespace_map (remapped when a mapping applies)
// and makes sure pg_tblspc/<oid> links to each restored tablespace, so
// pg_verifybackup can follow them before PostgreSQL recreates them from
// tablespace_map at startup. It reports whether tablespace_map differs from
// the backed-up one.
func finishTablespaces(root *os.Root, held *heldFile, tbs []tablespacePlan, backupID string) (rewritten bool, err error) {
	byOID := map[string]tablespacePlan{}
	for _, t := range tbs {
		byOID[t.oid] = t
	}
	if held != nil {
		entries, err := parseTablespaceMap(held.data)
		if err != nil {
			return false, fmt.Errorf("backup %s: %w", backupID, err)
		}
		seen := map[string]bool{}
		for i, e := range entries {
			t, ok := byOID[e.oid]
			if !ok {
				return false, fmt.Errorf("backup %s: %s lists tablespace %s at %s, but the backup has no archive for it: the backup is incomplete", backupID, tablespaceMapName, e.oid, e.path)
			}
			if filepath.Clean(e.path) != t.oldLocation {
				return false, fmt.Errorf("backup %s: %s puts tablespace %s at %s, its manifest at %s: the backup is inconsistent", backupID, tablespaceMapName, e.oid, e.path, t.oldLocation)
			}
			seen[e.oid] = true
			if t.location != t.oldLocation {
				entries[i].path = t.location
				rewritten = true
			}
		}
		for _, t := range tbs {
			if !seen[t.oid] {
				return false, fmt.Errorf("backup %s: %s does not list tablespace %s, which the backup holds: the backup is inconsistent", backupID, tablespaceMapName, t.oid)
			}
		}
		data := held.data
		if rewritten {
			data = formatTablespaceMap(entries)
		}
		if err := root.WriteFile(tablespaceMapName, data, 0o600); err != nil {
			return false, fmt.Errorf("write %s: %w", tablespaceMapName, err)
		}
		if err := root.Chmod(tablespaceMapName, held.mode); err != nil {
			return false, fmt.Errorf("chmod %s: %w", tablespaceMapName, err)
		}
		if err := root.Chtimes(tablespaceMapName, held.mtime, held.mtime); err != nil {
			return false, fmt.Errorf("set the time of %s: %w", tablespaceMapName, err)
		}
	}
	for _, t := range tbs {
		link := path.Join(pgTblspcDir, t.oid)
		target, err := root.Readlink(link)
		switch {
		case err == nil && target == t.location:
			continue // base.tar carried the link (no tablespace_map)
		case err == nil:
			return false, fmt.Errorf("%s points to %s, not to tablespace %s's location %s", link, target, t.oid, t.location)
		case !errors.Is(err, fs.ErrNotExist):
			return false, fmt.Errorf("read link %s: %w", link, err)
		}
		if err := makeDir(root, pgTblspcDir); err != nil {
			return false, err
		}
		if err := root.Symlink(t.location, link); err != nil {
			return false, fmt.Errorf("link %s to %s: %w", link, t.location, err)
		}
	}
	return rewritten, nil
}
