package repository

import (
	"errors"
	"fmt"
	"sort"

	"github.com/walvault/walvault/wal"
)

// ErrBrokenChain: an incremental backup cannot be restored because an
// ancestor of it is missing, not DONE, or of another cluster.
var ErrBrokenChain = errors.New("incomplete backup chain")

// maxChain bounds a chain walk, so a damaged repository whose parents
// form a loop cannot hang it.
const maxChain = 10000

// Chain returns the chain backup id restores from: its full backup first,
// then each incremental on it in order, id last; a full backup's chain is
// itself. Every ancestor must be present with a manifest, DONE, and of the
// same cluster; otherwise the error wraps ErrBrokenChain and names the
// first ancestor at fault. backups are as Inventory.Catalog returns them.
func Chain(backups []BackupInfo, id string) ([]BackupInfo, error) {
	byID := make(map[string]BackupInfo, len(backups))
	for _, bi := range backups {
		byID[bi.ID] = bi
	}
	bi, ok := byID[id]
	if !ok || bi.Manifest == nil {
		return nil, fmt.Errorf("%w: backup %s has no manifest", ErrBrokenChain, id)
	}
	chain := []BackupInfo{bi}
	for cur := bi; cur.Manifest.IsIncremental(); {
		if len(chain) > maxChain {
			return nil, fmt.Errorf("%w: backup %s's parents form a loop or a chain longer than %d: the repository is damaged", ErrBrokenChain, id, maxChain)
		}
		pid := cur.Manifest.Parent
		p, ok := byID[pid]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is not in the repository (deleted?)", ErrBrokenChain, id, pid)
		case p.Status == StatusDamaged:
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is DAMAGED: %v", ErrBrokenChain, id, pid, p.Damage)
		case p.Manifest == nil || p.Status == StatusIncomplete:
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is INCOMPLETE", ErrBrokenChain, id, pid)
		case p.Status != StatusDone:
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is %s", ErrBrokenChain, id, pid, p.Status)
		case p.Manifest.SystemID != bi.Manifest.SystemID:
			return nil, fmt.Errorf("%w: backup %s builds on %s, a backup of another cluster: the repository is damaged", ErrBrokenChain, id, pid)
		case pid >= cur.ID:
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is not older: the repository is damaged", ErrBrokenChain, cur.ID, pid)
		}
		chain = append(chain, p)
		cur = p
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// Ancestors are the ids of the backups id builds on, nearest first, as far
// as they are recorded (a missing parent ends the walk).
func Ancestors(backups []BackupInfo, id string) []string {
	parent := parents(backups)
	var out []string
	for p := parent[id]; p != "" && len(out) < maxChain; p = parent[p] {
		out = append(out, p)
	}
	return out
}

// Descendants are the ids of the backups that build on id, directly or
// through others, in id order.
func Descendants(backups []BackupInfo, id string) []string {
	parent := parents(backups)
	var out []string
	for _, bi := range backups {
		n := 0
		for p := parent[bi.ID]; p != "" && n < maxChain; p, n = parent[p], n+1 {
			if p == id {
				out = append(out, bi.ID)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func parents(backups []BackupInfo) map[string]string {
	parent := make(map[string]string, len(backups))
	for _, bi := range backups {
		if bi.Manifest != nil && bi.Manifest.IsIncremental() {
			parent[bi.ID] = bi.Manifest.Parent
		}
	}
	return parent
}

// Misordered finds two DONE backups of one timeline (in id order, as
// Catalog returns them) whose times are in another order than their WAL
// positions: newer started after older by its time but before it by its
// start LSN, so the clock of a host that took one of them was off, and
// whatever orders backups by their times (retention, restore's choice for
// a target time) would be misled. ok is false when there are none.
func Misordered(backups []BackupInfo) (newer, older BackupInfo, ok bool) {
	// The previous DONE backup of each timeline: one of another timeline
	// between two must not hide their order.
	prev := map[uint32]*BackupInfo{}
	for i, bi := range backups {
		m := bi.Manifest
		if m == nil || bi.Status != StatusDone {
			continue
		}
		if p := prev[m.StartTimeline]; p != nil {
			a, aerr := wal.ParseLSN(p.Manifest.StartLSN)
			b, berr := wal.ParseLSN(m.StartLSN)
			if aerr == nil && berr == nil && b < a {
				return bi, *p, true
			}
		}
		prev[m.StartTimeline] = &backups[i]
	}
	return BackupInfo{}, BackupInfo{}, false
}

// MisorderedFix is what to do about what Misordered found.
const MisorderedFix = "set the clocks right (NTP), then delete the misdated backup by id (walvault delete --backup ID) if it is not wanted"

// MisorderedWhy says what Misordered found.
func MisorderedWhy(newer, older BackupInfo) string {
	return fmt.Sprintf("backup %s is newer than backup %s by its time, but older by its WAL position (start %s before %s on timeline %d): the clock of a host that took one of them was off",
		newer.ID, older.ID, newer.Manifest.StartLSN, older.Manifest.StartLSN, newer.Manifest.StartTimeline)
}
