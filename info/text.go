package info

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/pg"
)

const timeLayout = "2006-01-02 15:04:05 UTC"

func stamp(t *time.Time) string {
	if t == nil {
		return "time unknown"
	}
	return t.UTC().Format(timeLayout)
}

// WriteSummaryText prints s for people.
func WriteSummaryText(w io.Writer, s Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "repository   %s (cluster %s, %s WAL segments, created with %s)\n", s.Repository, s.SystemID, units.Bytes(int64(s.WALSegmentSize)), s.Compression)
	wl := s.WAL
	fmt.Fprintf(&b, "WAL          %s, %s stored", units.Plural(int(wl.Segments), "segment"), units.Bytes(wl.StoredBytes))
	if wl.NewestWAL != "" {
		fmt.Fprintf(&b, "; stored last %s, at %s", wl.NewestWAL, stamp(wl.NewestArchivedAt))
	}
	fmt.Fprintf(&b, "; last 24h: %s, %s (%.1f segments/hour)\n", units.Plural(int(wl.Last24h.Segments), "segment"), units.Bytes(wl.Last24h.StoredBytes), wl.SegmentsPerHour)
	fmt.Fprintf(&b, "backups      %d DONE, %d waiting for WAL, %d incomplete", s.Backups.Done, s.Backups.WaitingForWALs, s.Backups.Incomplete)
	if s.Backups.Damaged > 0 {
		fmt.Fprintf(&b, ", %d DAMAGED", s.Backups.Damaged)
	}
	if nb := s.NewestBackup; nb != nil {
		fmt.Fprintf(&b, "; newest DONE %s, stopped %s at %s on timeline %d", nb.ID, nb.StopTime.Format(timeLayout), nb.StopLSN, nb.Timeline)
	}
	b.WriteString("\n")
	for _, d := range s.Damaged {
		fmt.Fprintf(&b, "DAMAGED      backup %s: %s (walvault info %s says how to recover it)\n", d.ID, d.Damage, d.ID)
	}
	if s.HiddenObjects > 0 {
		fmt.Fprintf(&b, "HIDDEN       %s behind delete markers (someone deleted them without a version id): restore and wal-fetch read through them, and they count below; run walvault repair to make them visible again\n", units.Plural(s.HiddenObjects, "object"))
	}
	switch d := s.NewestDrill; {
	case d == nil:
		b.WriteString("drill        none yet: run walvault drill\n")
	case d.OK:
		fmt.Fprintf(&b, "drill        newest %s OK, restored backup %s, RTO %s\n", d.FinishedAt.Format(timeLayout), d.BackupID, (time.Duration(d.RTOSeconds * float64(time.Second))).Round(time.Second))
	default:
		fmt.Fprintf(&b, "drill        newest %s FAILED: %s", d.FinishedAt.Format(timeLayout), d.Error)
		if ok := s.NewestOKDrill; ok != nil {
			fmt.Fprintf(&b, " (last OK %s)", ok.FinishedAt.Format(timeLayout))
		}
		b.WriteString("\n")
	}
	for _, t := range s.Timelines {
		fmt.Fprintf(&b, "timeline %d", t.Timeline)
		if t.Parent != 0 {
			fmt.Fprintf(&b, " (from timeline %d at %s)", t.Parent, t.SwitchLSN)
		}
		if t.HistoryUnreadable != "" {
			fmt.Fprintf(&b, " (branch point unknown: %s)", t.HistoryUnreadable)
		}
		if t.NewestWAL != "" {
			fmt.Fprintf(&b, ": %s, %s to %s\n", units.Plural(int(t.Segments), "segment"), t.OldestWAL, t.NewestWAL)
		} else {
			b.WriteString(": no segment archived\n")
		}
		w := t.RecoveryWindow
		if w == nil {
			b.WriteString("  recovery window: none (no DONE backup leads to this timeline)\n")
			continue
		}
		if w.Continuous {
			fmt.Fprintf(&b, "  recovery window: %s to %s\n", from(w.From), to(w.To))
			continue
		}
		fmt.Fprintf(&b, "  recovery window: %s to %s, BROKEN by %d gap(s):\n", from(w.From), to(w.To), len(w.Gaps))
		for i, r := range w.Ranges {
			fmt.Fprintf(&b, "    reachable %s to %s\n", from(r.From), to(r.To))
			if i < len(w.Gaps) {
				g := w.Gaps[i]
				fmt.Fprintf(&b, "    gap: %d segment(s) missing on timeline %d, %s to %s\n", g.Count, g.Timeline, g.First, g.Last)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func from(p Point) string {
	return fmt.Sprintf("%s (end of backup %s, %s)", stamp(p.Time), p.BackupID, p.LSN)
}

func to(p Point) string {
	// A segment closed by a switch (pg_switch_wal, archive_timeout) holds
	// WAL only up to the switch: its end is a bound, not the last record.
	return fmt.Sprintf("%s at most (end of %s, archived %s)", p.LSN, p.WAL, stamp(p.Time))
}

// WriteBackupText prints one backup for people.
func WriteBackupText(w io.Writer, bk Backup) error {
	var b strings.Builder
	status := bk.Status
	if bk.Latest {
		status += ", LATEST"
	}
	fmt.Fprintf(&b, "backup       %s (%s, %s)\n", bk.ID, bk.Type, status)
	if bk.Parent != "" {
		chain := strings.Join(bk.Chain, " -> ")
		if bk.ChainError != "" {
			chain = "NOT RESTORABLE: " + bk.ChainError
		}
		fmt.Fprintf(&b, "parent       %s (chain: %s)\n", bk.Parent, chain)
	}
	fmt.Fprintf(&b, "label        %s\n", bk.Label)
	fmt.Fprintf(&b, "time         %s to %s (%s)\n", bk.StartTime.Format(timeLayout), bk.StopTime.Format(timeLayout), (time.Duration(bk.DurationSeconds * float64(time.Second))).Round(time.Second))
	fmt.Fprintf(&b, "LSN          %s (timeline %d) to %s (timeline %d)\n", bk.StartLSN, bk.StartTimeline, bk.StopLSN, bk.StopTimeline)
	fmt.Fprintf(&b, "server       PostgreSQL %s, cluster %s, host %s, walvault %s\n", pg.FormatVersion(bk.PGVersion), bk.SystemID, orDash(bk.Host), orDash(bk.Walvault))
	if bk.ChecksumsUnverified {
		b.WriteString("checksums    NOT VERIFIED when taken (backup-push --no-verify-checksums): a damaged page may be in it\n")
	}
	fmt.Fprintf(&b, "size         %s, stored as %s in %s\n", units.Bytes(bk.RawBytes), units.Bytes(bk.StoredBytes), units.Plural(bk.Parts, "part"))
	for _, a := range bk.Archives {
		fmt.Fprintf(&b, "  %-10s %s, stored as %s in %s\n", a.Name, units.Bytes(a.RawBytes), units.Bytes(a.StoredBytes), units.Plural(a.Parts, "part"))
	}
	for _, t := range bk.Tablespaces {
		fmt.Fprintf(&b, "tablespace   %d at %s (%s)\n", t.OID, t.Location, t.Archive)
	}
	keep := "no (retention applies)"
	if bk.Kept {
		keep = "yes (exempt from retention)"
	}
	fmt.Fprintf(&b, "kept         %s", keep)
	if n := len(bk.Marks); n > 0 {
		fmt.Fprintf(&b, ", %d mark(s), newest %s", n, bk.Marks[n-1].At.Format(timeLayout))
	}
	b.WriteString("\n")
	if bk.LockedUntil != nil {
		fmt.Fprintf(&b, "locked until %s\n", bk.LockedUntil.Format(timeLayout))
	} else {
		b.WriteString("locked until not locked\n")
	}
	fmt.Fprintf(&b, "WAL needed   %s to %s (%s): ", bk.WAL.From, bk.WAL.To, units.Plural(int(bk.WAL.Segments), "segment"))
	if bk.WAL.Complete {
		b.WriteString("all in the repository\n")
	} else {
		fmt.Fprintf(&b, "INCOMPLETE, first missing %s\n", bk.WAL.Missing)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
