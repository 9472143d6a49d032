package restore

// The drill guard: a restore drill's server gets its WAL through wal-fetch
// --drill-scratch, which checks each segment here before PostgreSQL may
// read it. Redo of CREATE TABLESPACE makes pg_tblspc/OID a link to the
// location the record names and creates the tablespace's directory there;
// redo of DROP TABLESPACE removes the empty directories under where
// pg_tblspc/OID leads. Replayed by a drill on the database host, a CREATE
// recorded after the drilled backup points the drill's server at
// production's own tablespace, and the drill then writes over live files.
// The guard refuses such a segment: wal-fetch exits 200, PostgreSQL stops
// recovery before reading it, and the drill fails saying why. A restored
// server's wal-fetch --tablespace-guard (RestoreGuard) refuses a CREATE
// whose location holds another cluster's tablespace directory, for the
// same reason.
//
// State, in the drill's data directory:
//
//	pg_wal/walvault/guard/<LSN>.carry   the record cut at the end of the
//	                                    segment ending at LSN (wal.Carry,
//	                                    JSON), for the next segment's scan
//	pg_wal/walvault/guard/refused       why the guard refused, for the drill

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walvault/walvault/wal"
)

// guardDir is where the guard keeps its state, relative to the data
// directory: beside the prefetch cache, apart from it (clearing the cache
// must not clear the guard's state).
const guardDir = "pg_wal/walvault/guard"

// guardRefusedFile holds the reason of a refusal for the drill to report.
const guardRefusedFile = "refused"

// ErrDrillGuard marks a segment the drill guard refused.
var ErrDrillGuard = errors.New("restore drill guard")

// ErrTablespaceGuard marks a segment a restored server's tablespace guard
// (RestoreGuard) refused.
var ErrTablespaceGuard = errors.New("restore tablespace guard")

// DrillGuard checks the segments wal-fetch hands a restore drill's server.
type DrillGuard struct {
	// Scratch is the drill's scratch directory. The data directory must
	// lie in it; a tablespace location in it is the drill's own.
	Scratch string
}

// Check scans the segment name that wal-fetch just wrote to dest (%p, in
// the recovering data directory's pg_wal) for records that create or drop
// a tablespace outside the scratch directory. When it finds one, or cannot
// read the segment's records to tell, it removes dest, records the reason
// for DrillGuardRefusal and returns an error wrapping ErrDrillGuard:
// PostgreSQL must not replay the segment. It returns the tablespace
// records it let through (inside the scratch directory, or harmless).
// Files that are not segments (timeline history files) hold no records
// and pass.
//
// A record cut at a segment's end is completed with the next segment,
// from what the scan of that segment stored in the data directory: as
// PostgreSQL reads segments in order, a segment it reads on into was
// checked just before. Without it (the first segment recovery reads, where
// it starts at the backup's checkpoint) the record's rest is passed over:
// PostgreSQL never replays a record it did not read from its start. Nor
// does it replay records before the backup's start (backup_label's START
// WAL LOCATION), which the segment it starts in may hold: those are not
// judged.
func (g DrillGuard) Check(name, dest string) ([]wal.TablespaceRecord, error) {
	file, err := wal.Classify(name)
	if err != nil || file.Kind != wal.KindSegment {
		return nil, nil
	}
	dataDir, ok := recoveryDataDir(dest)
	if !ok {
		return nil, g.refuse("", dest, fmt.Errorf("%s is not in a recovering data directory's pg_wal: --drill-scratch is for the restore_command walvault drill writes", dest))
	}
	scratch, err := filepath.Abs(g.Scratch)
	if err != nil {
		return nil, g.refuse(dataDir, dest, err)
	}
	switch in, err := resolvedWithin(scratch, dataDir); {
	case err != nil:
		return nil, g.refuse(dataDir, dest, fmt.Errorf("cannot tell whether the data directory %s is inside the drill's scratch directory %s: %w", dataDir, scratch, err))
	case !in:
		return nil, g.refuse(dataDir, dest, fmt.Errorf("the data directory %s is not inside the drill's scratch directory %s", dataDir, scratch))
	}
	return checkTablespaceRecords(file.Segment, name, dataDir, dest, ErrDrillGuard, func(r wal.TablespaceRecord) string {
		return judgeTablespaceRecord(r, dataDir, scratch)
	})
}

// RestoreGuard checks the segments wal-fetch --tablespace-guard hands a
// server that walvault restore made. Redo of CREATE TABLESPACE links the
// tablespace to the location its record names, which no
// --tablespace-mapping can move: for a backup older than the statement,
// restored on the database host (a copy to get a dropped row back), that
// location is the live cluster's tablespace, and the restored server would
// write its pages there. Such a segment is refused while the location
// holds a cluster's version directory (PG_*), even an empty one; an
// absent or empty location, or one this data directory already links to,
// passes.
type RestoreGuard struct{}

// Check is DrillGuard.Check for a restored server: it refuses (an error
// wrapping ErrTablespaceGuard, dest removed) a segment holding a CREATE
// TABLESPACE whose location holds another cluster's tablespace directory.
func (RestoreGuard) Check(name, dest string) ([]wal.TablespaceRecord, error) {
	file, err := wal.Classify(name)
	if err != nil || file.Kind != wal.KindSegment {
		return nil, nil
	}
	dataDir, ok := recoveryDataDir(dest)
	if !ok {
		return nil, refuseSegment(ErrTablespaceGuard, "", dest, fmt.Errorf("%s is not in a recovering data directory's pg_wal: --tablespace-guard is for the restore_command walvault restore writes", dest))
	}
	return checkTablespaceRecords(file.Segment, name, dataDir, dest, ErrTablespaceGuard, func(r wal.TablespaceRecord) string {
		return judgeRestoredRecord(r, dataDir)
	})
}

// checkTablespaceRecords scans segment seg (name), just written to dest in
// dataDir's pg_wal, and judges each tablespace record replay would apply
// (judge: why it must not be replayed, "" when it may): the first refused
// removes dest and fails with an error wrapping sentinel. It returns the
// records it let through.
func checkTablespaceRecords(seg wal.Segment, name, dataDir, dest string, sentinel error, judge func(wal.TablespaceRecord) string) ([]wal.TablespaceRecord, error) {
	state := filepath.Join(dataDir, guardDir)
	scan, segEnd, err := scanGuarded(state, dest, seg)
	if err != nil {
		return nil, refuseSegment(sentinel, dataDir, dest, fmt.Errorf("cannot read the records of segment %s to check them for tablespace records: %w", name, err))
	}
	var allowed []wal.TablespaceRecord
	from := replayStart(dataDir)
	for _, r := range scan.Tablespace {
		if r.LSN < from {
			continue // before the backup's start: never replayed, the backup holds its effect
		}
		if why := judge(r); why != "" {
			return nil, refuseSegment(sentinel, dataDir, dest, fmt.Errorf("segment %s holds %s: %s", name, r, why))
		}
		allowed = append(allowed, r)
	}
	if err := saveCarry(state, scan, segEnd); err != nil {
		return nil, refuseSegment(sentinel, dataDir, dest, fmt.Errorf("cannot keep what the next segment's check needs: %w", err))
	}
	return allowed, nil
}

// judgeRestoredRecord says why replaying r in a restored data directory
// would write into another cluster's tablespace, or "" when it would not.
func judgeRestoredRecord(r wal.TablespaceRecord, dataDir string) string {
	if r.Op != wal.TablespaceCreate || r.Path == "" || !filepath.IsAbs(r.Path) {
		return "" // a drop, or a tablespace inside the data directory
	}
	link := filepath.Join(dataDir, "pg_tblspc", strconv.FormatUint(uint64(r.OID), 10))
	if target, err := filepath.EvalSymlinks(link); err == nil {
		if loc, err := filepath.EvalSymlinks(r.Path); err == nil && loc == target {
			return "" // replayed here before (a recovery restarted): its files are this server's
		}
	}
	entries, err := os.ReadDir(r.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "" // PostgreSQL stops, asking for the directory to be created
	case err != nil:
		return fmt.Sprintf("cannot tell whether %s holds another cluster's files: %v; the restored server's wal-fetch refused the segment, so recovery stopped before it", r.Path, err)
	}
	for _, e := range entries {
		// A version directory, even empty, is a cluster's: one made
		// for its tablespace and not used yet is still the live
		// server's, which would put its files beside this one's, and a
		// DROP DATABASE here would remove them.
		if e.IsDir() && strings.HasPrefix(e.Name(), "PG_") {
			return fmt.Sprintf("replaying it would make this server's pg_tblspc/%d a link to %s, where %s is another cluster's tablespace directory (on the database host, the live server's), and put this server's files in it. "+
				"The restored server's wal-fetch refused the segment, so recovery stopped before it and nothing was written there. "+
				"Restore on another host, or restore a backup taken after this tablespace was created (backup-list), which holds it and takes --tablespace-mapping; if the cluster it belongs to is gone and its files are not needed, empty %s and start the server again. "+
				"If the recovery target lies before this record, start the server with recovery_prefetch = off: PostgreSQL reads WAL ahead and asked for this segment before reaching the target",
				r.OID, r.Path, e.Name(), r.Path)
		}
	}
	return ""
}

// scanGuarded scans the segment at path with the carry the previous
// segment's check left, and returns where the segment ends.
func scanGuarded(state, path string, seg wal.Segment) (*wal.SegmentScan, wal.LSN, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h, err := wal.ReadHeader(f)
	if err != nil {
		return nil, 0, err
	}
	carry, err := loadCarry(state, h.PageAddr)
	if err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	scan, err := wal.ScanSegment(bufio.NewReaderSize(f, 1<<20), seg, carry)
	return scan, h.PageAddr + wal.LSN(h.SegmentSize), err
}

// labelStart is the line of backup_label naming where the backup starts:
// the redo point of its checkpoint, where replay starts.
const labelStart = "START WAL LOCATION: "

// replayStart is where PostgreSQL starts replaying WAL in dataDir: the
// backup's START WAL LOCATION, from backup_label or, once recovery began
// (PostgreSQL renames it then, replacing any older copy), from
// backup_label.old. 0 when neither says: every record is checked then.
func replayStart(dataDir string) wal.LSN {
	for _, name := range []string{backupLabelName, backupLabelName + ".old"} {
		f, err := os.Open(filepath.Join(dataDir, name))
		if err != nil {
			continue
		}
		label, err := io.ReadAll(io.LimitReader(f, maxBackupLabel))
		f.Close()
		if err != nil {
			continue
		}
		if v, ok := labelValue(label, labelStart); ok {
			text, _, _ := strings.Cut(v, " ")
			if lsn, err := wal.ParseLSN(text); err == nil {
				return lsn
			}
		}
		return 0
	}
	return 0
}

// judgeTablespaceRecord says why replaying r in the drill's data directory
// would write outside scratch, or "" when it would not.
func judgeTablespaceRecord(r wal.TablespaceRecord, dataDir, scratch string) string {
	const remedy = "The drill's wal-fetch refused the segment, so recovery stopped before it and nothing was written there. " +
		"Drills cannot replay this record: drill a backup taken after it instead (walvault backup-push), which holds the tablespace itself."
	switch r.Op {
	case wal.TablespaceCreate:
		if r.Path == "" {
			return "" // in place: a directory in the data directory's pg_tblspc
		}
		loc := r.Path
		if !filepath.IsAbs(loc) { // redo resolves it in the data directory
			loc = filepath.Join(dataDir, loc)
		}
		if in, err := resolvedWithin(scratch, loc); err == nil && in {
			return ""
		}
		here := "it exists on this host: on the database host it is production's own tablespace, whose files the replay would overwrite"
		if _, err := os.Stat(loc); errors.Is(err, fs.ErrNotExist) {
			here = "it does not exist on this host (PostgreSQL would stop there too), and creating it would let the drill write outside its scratch directory"
		}
		return fmt.Sprintf("replaying it would make the drill's pg_tblspc/%d a link to %s, outside the drill's scratch directory %s, and write that tablespace's files there; %s. %s",
			r.OID, r.Path, scratch, here, remedy)
	case wal.TablespaceDrop:
		link := filepath.Join(dataDir, "pg_tblspc", strconv.FormatUint(uint64(r.OID), 10))
		fi, err := os.Lstat(link)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Nothing to remove, unless a CREATE replayed before this
			// record makes the link: that CREATE passed this check.
			return ""
		case err != nil:
			return fmt.Sprintf("cannot tell where the drill's %s leads: %v. %s", link, err, remedy)
		case fi.Mode()&fs.ModeSymlink == 0:
			return "" // a directory in the data directory
		}
		target, err := os.Readlink(link)
		if err != nil {
			return fmt.Sprintf("cannot tell where the drill's %s leads: %v. %s", link, err, remedy)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(link), target)
		}
		if in, err := resolvedWithin(scratch, target); err == nil && in {
			return ""
		}
		return fmt.Sprintf("the drill's pg_tblspc/%d links to %s, outside the drill's scratch directory %s: replaying it would remove the empty directories there. %s",
			r.OID, target, scratch, remedy)
	}
	return "PostgreSQL defines no such tablespace operation (its redo would stop with a PANIC). " + remedy
}

// resolvedWithin reports whether p lies in dir after following the
// symbolic links of both (as far as they exist): a path that leads out of
// dir through a link is outside it. A path that does not exist and has
// ".." in it is an error.
func resolvedWithin(dir, p string) (bool, error) {
	d, err := resolvePath(dir)
	if err != nil {
		return false, err
	}
	q, err := resolvePath(p)
	if err != nil {
		return false, err
	}
	return within(q, d), nil
}

// resolvePath is p absolute, with the symbolic links of its longest
// existing prefix followed.
func resolvePath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p, nil
		}
		base := filepath.Base(p)
		if base == ".." {
			return "", fmt.Errorf("%s does not exist and has \"..\" in it", p)
		}
		rest = append([]string{base}, rest...)
		p = parent
	}
}

func carryPath(state string, end wal.LSN) string {
	return filepath.Join(state, fmt.Sprintf("%016X.carry", uint64(end)))
}

// loadCarry reads the carry of the segment ending at start, nil when there
// is none.
func loadCarry(state string, start wal.LSN) (*wal.Carry, error) {
	data, err := os.ReadFile(carryPath(state, start))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c wal.Carry
	if err := json.Unmarshal(data, &c); err != nil || c.End != start {
		return nil, fmt.Errorf("the guard's record %s is damaged (%v)", carryPath(state, start), err)
	}
	return &c, nil
}

// saveCarry stores what the scan of the segment ending at segEnd leaves
// for the next one, or removes the carry an earlier pass through the
// segment left when this one leaves nothing. Carries are kept for the
// whole recovery (a few hundred bytes a segment, in the scratch
// directory): a server that restarts recovery after a crash reads its
// segments again, some from pg_wal, where the guard does not see them.
func saveCarry(state string, scan *wal.SegmentScan, segEnd wal.LSN) error {
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	if scan.Next == nil {
		if err := os.Remove(carryPath(state, segEnd)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.Marshal(scan.Next)
	if err != nil {
		return err
	}
	tmp := carryPath(state, scan.Next.End) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, carryPath(state, scan.Next.End))
}

func (g DrillGuard) refuse(dataDir, dest string, err error) error {
	return refuseSegment(ErrDrillGuard, dataDir, dest, err)
}

// refuseSegment removes dest, notes why for the drill and returns the
// error, wrapping sentinel.
func refuseSegment(sentinel error, dataDir, dest string, err error) error {
	err = fmt.Errorf("%w: %w", sentinel, err)
	os.Remove(dest)
	if dataDir != "" {
		state := filepath.Join(dataDir, guardDir)
		if os.MkdirAll(state, 0o700) == nil {
			os.WriteFile(filepath.Join(state, guardRefusedFile), []byte(err.Error()+"\n"), 0o600)
		}
	}
	return err
}

// DrillGuardRefusal is why the drill guard refused a segment of the
// recovery in dataDir, "" if it did not.
func DrillGuardRefusal(dataDir string) string {
	f, err := os.Open(filepath.Join(dataDir, guardDir, guardRefusedFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return strings.TrimSpace(string(b))
}
