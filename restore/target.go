package restore

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// Target is where recovery stops: at most one of Time, XID, LSN, Name and
// Immediate; none means "replay everything archived" (latest).
type Target struct {
	Time      *time.Time
	XID       string // decimal transaction id (pg_current_xact_id's form is fine)
	LSN       *wal.LSN
	Name      string // a restore point made by pg_create_restore_point
	Immediate bool   // stop as soon as the backup is consistent
	// Inclusive is recovery_target_inclusive (time, xid and lsn targets
	// only); nil leaves PostgreSQL's default (true).
	Inclusive *bool
	// Timeline is recovery_target_timeline: "latest", "current", or a
	// timeline number; empty: "current" with Immediate, else "latest".
	Timeline string
	// Action is recovery_target_action: "pause" (PostgreSQL's default when
	// empty), "promote" or "shutdown". Only with a target.
	Action string
}

// Actions recovery_target_action accepts.
var targetActions = []string{"pause", "promote", "shutdown"}

// maxRestorePointName is PostgreSQL's limit on recovery_target_name
// (MAXFNAMELEN - 1 bytes).
const maxRestorePointName = 63

// kinds lists the targets that are set, by name.
func (t Target) kinds() []string {
	var k []string
	if t.Time != nil {
		k = append(k, "time")
	}
	if t.XID != "" {
		k = append(k, "xid")
	}
	if t.LSN != nil {
		k = append(k, "lsn")
	}
	if t.Name != "" {
		k = append(k, "name")
	}
	if t.Immediate {
		k = append(k, "immediate")
	}
	return k
}

// TimelineSetting is the recovery_target_timeline recovery gets: Timeline,
// or when empty "current" with Immediate (the backup's consistent point
// lies on its own timeline: "latest" would first ask restore_command for
// newer timelines' history files, a wal-fetch each at every start, and
// follow one that branched off before the backup ended away from that
// point), else "latest".
func (t Target) TimelineSetting() string {
	switch {
	case t.Timeline != "":
		return t.Timeline
	case t.Immediate:
		return "current"
	}
	return "latest"
}

// IsLatest reports whether no target is set: recovery replays all WAL.
func (t Target) IsLatest() bool { return len(t.kinds()) == 0 }

// Validate checks the target the way PostgreSQL would at startup, so a
// mistake is reported now rather than by a server that refuses to start.
func (t Target) Validate() error {
	kinds := t.kinds()
	if len(kinds) > 1 {
		return fmt.Errorf("recovery target: give at most one of time, xid, lsn, name and immediate (got %s)", strings.Join(kinds, ", "))
	}
	if t.Time != nil && t.Time.IsZero() {
		return errors.New("recovery target time is the zero time")
	}
	if t.XID != "" {
		if err := validateXID(t.XID); err != nil {
			return err
		}
	}
	if t.Name != "" {
		if len(t.Name) > maxRestorePointName {
			return fmt.Errorf("recovery target name %.20q... is %d bytes long; PostgreSQL allows at most %d", t.Name, len(t.Name), maxRestorePointName)
		}
		if strings.ContainsAny(t.Name, "\x00\n\r") {
			return fmt.Errorf("recovery target name %q contains a NUL or line break", t.Name)
		}
	}
	if t.Inclusive != nil && t.Time == nil && t.XID == "" && t.LSN == nil {
		return errors.New("recovery target inclusive applies only to a time, xid or lsn target")
	}
	if err := validateTimeline(t.Timeline); err != nil {
		return err
	}
	if t.Action != "" {
		if !slices.Contains(targetActions, t.Action) {
			return fmt.Errorf("unknown recovery target action %q: use pause, promote or shutdown", t.Action)
		}
		if len(kinds) == 0 {
			return fmt.Errorf("recovery target action %q needs a target (time, xid, lsn, name or immediate): without one, recovery replays all WAL and promotes", t.Action)
		}
	}
	return nil
}

// validateXID accepts a decimal transaction id: a 32-bit xid or the 64-bit
// form with an epoch that pg_current_xact_id returns. PostgreSQL compares
// the low 32 bits, which must be a normal xid (3 or more).
func validateXID(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("invalid recovery target xid %q: want a decimal transaction id such as 1234 (see txid_current() or pg_current_xact_id())", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid recovery target xid %q: larger than a 64-bit transaction id", s)
	}
	if uint32(v) < 3 {
		return fmt.Errorf("invalid recovery target xid %q: xids 0 to 2 are reserved, a transaction's xid is 3 or more", s)
	}
	return nil
}

func validateTimeline(s string) error {
	switch s {
	case "", "latest", "current":
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return fmt.Errorf("invalid recovery target timeline %q: use latest, current or a timeline number such as 2", s)
	}
	return nil
}

// String describes the target for messages and logs.
func (t Target) String() string {
	var s string
	switch {
	case t.Time != nil:
		s = "time " + formatTargetTime(*t.Time)
	case t.XID != "":
		s = "xid " + t.XID
	case t.LSN != nil:
		s = "lsn " + t.LSN.String()
	case t.Name != "":
		s = fmt.Sprintf("restore point %q", t.Name)
	case t.Immediate:
		s = "immediate (end of the backup)"
	case t.Timeline != "" && t.Timeline != "latest":
		s = "all archived WAL"
	default:
		return "latest (all archived WAL)"
	}
	if t.Inclusive != nil && !*t.Inclusive && (t.Time != nil || t.XID != "" || t.LSN != nil) {
		s += ", exclusive (stops just before it)"
	}
	if t.Timeline != "" {
		s += " on timeline " + t.Timeline
	}
	return s
}

// formatTargetTime is ISO 8601 with an explicit UTC offset and microseconds
// (PostgreSQL's precision; walvault's --target-time is rounded to it as
// PostgreSQL rounds the text, and finer digits of other callers' times
// are dropped).
func formatTargetTime(t time.Time) string {
	return t.Format("2006-01-02 15:04:05.999999-07:00")
}

// ChooseBackup picks the backup to restore from backups (as
// repository.ListBackups returns them, oldest first).
//
// With ref set to a backup id, that backup, which must be DONE and must end
// before the target. Without (ref "" or "LATEST"), the newest DONE backup
// that ends before the target: for a time target its stop time is strictly
// earlier; for an lsn target its stop LSN is at or before it; for xid, name,
// immediate and latest the newest DONE backup. A backup that ends after the
// target is never picked: PostgreSQL cannot stop before the end of the
// backup it starts from. An incremental backup restores with its chain
// (repository.Chain): one whose chain is broken is refused when named and
// passed over otherwise.
func ChooseBackup(backups []repository.BackupInfo, ref string, t Target) (repository.BackupInfo, error) {
	return chooseBackup(backups, ref, t, nil)
}

// chooseBackup is ChooseBackup passing over, without a ref, the backups
// in skip (which cannot reach the target timeline).
func chooseBackup(backups []repository.BackupInfo, ref string, t Target, skip map[string]bool) (repository.BackupInfo, error) {
	if err := t.Validate(); err != nil {
		return repository.BackupInfo{}, err
	}
	if !repository.IsLatest(ref) {
		bi, err := repository.FindBackup(backups, ref)
		if err != nil {
			return repository.BackupInfo{}, err
		}
		if err := restorable(bi); err != nil {
			return repository.BackupInfo{}, err
		}
		if _, err := repository.Chain(backups, bi.ID); err != nil {
			return repository.BackupInfo{}, fmt.Errorf("%w: %w; restore another backup (see backup-list)", repository.ErrNoBackup, err)
		}
		fits, err := endsBefore(*bi.Manifest, t)
		if err != nil {
			return repository.BackupInfo{}, err
		}
		if !fits {
			return repository.BackupInfo{}, fmt.Errorf("%w: backup %s ends at %s (LSN %s), not before the target %s: recovery cannot stop before the end of its backup; pick an earlier backup (see backup-list) or leave out the backup id",
				repository.ErrNoBackup, bi.ID, bi.Manifest.StopTime.UTC().Format(time.RFC3339Nano), bi.Manifest.StopLSN, t)
		}
		return bi, nil
	}
	var oldest *repository.BackupInfo
	for i := len(backups) - 1; i >= 0; i-- {
		bi := backups[i]
		if bi.Status != repository.StatusDone || bi.Manifest == nil || skip[bi.ID] {
			continue
		}
		if _, err := repository.Chain(backups, bi.ID); err != nil {
			continue // an incremental whose chain is broken
		}
		oldest = &backups[i]
		fits, err := endsBefore(*bi.Manifest, t)
		if err != nil {
			return repository.BackupInfo{}, err
		}
		if fits {
			return bi, nil
		}
	}
	if oldest == nil {
		return repository.BackupInfo{}, repository.NoRestorableBackup(backups)
	}
	m := oldest.Manifest
	return repository.BackupInfo{}, fmt.Errorf("%w: the target %s is earlier than every backup: the oldest DONE backup, %s, ends at %s (LSN %s); choose a later target",
		repository.ErrNoBackup, t, oldest.ID, m.StopTime.UTC().Format(time.RFC3339Nano), m.StopLSN)
}

// restorable refuses backups that are not DONE, saying why.
func restorable(bi repository.BackupInfo) error {
	switch bi.Status {
	case repository.StatusDone:
		if bi.Manifest == nil {
			return fmt.Errorf("backup %s has no manifest loaded", bi.ID)
		}
		return nil
	case repository.StatusWaitingForWALs:
		return fmt.Errorf("%w: backup %s is WAITING_FOR_WALS: WAL segment %s, which it needs to become consistent, is not archived (yet); check archive_command and pg_stat_archiver, or pick another backup",
			repository.ErrNoBackup, bi.ID, bi.MissingWAL)
	case repository.StatusIncomplete:
		return fmt.Errorf("%w: backup %s is INCOMPLETE: it has parts but no manifest (an interrupted or still running backup-push) and can never be restored; pick another backup (see backup-list)",
			repository.ErrNoBackup, bi.ID)
	case repository.StatusDamaged:
		return repository.DamagedError(bi)
	}
	return fmt.Errorf("%w: backup %s has status %q and cannot be restored", repository.ErrNoBackup, bi.ID, bi.Status)
}

// endsBefore reports whether the backup ends before the target, so that
// recovery can reach it.
func endsBefore(m repository.BackupManifest, t Target) (bool, error) {
	switch {
	case t.Time != nil:
		return m.StopTime.Before(*t.Time), nil
	case t.LSN != nil:
		stop, err := wal.ParseLSN(m.StopLSN)
		if err != nil {
			return false, fmt.Errorf("backup %s: stop_lsn: %w", m.ID, err)
		}
		return stop <= *t.LSN, nil
	}
	return true, nil
}
