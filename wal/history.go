package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: an ancestor
// timeline and the LSN where it ended and its child timeline began.
// PostgreSQL writes each line as "timeline<TAB>switchpoint<TAB>reason",
// the timeline in decimal ("1\t0/4002D98\tno recovery target specified").
type HistoryEntry struct {
	Timeline    TimelineID
	SwitchPoint LSN
	Reason      string
}

// maxHistoryLine bounds one line of a history file. PostgreSQL's lines are
// short (a timeline, an LSN and a sentence); this only stops a corrupt file
// from growing a line without limit.
const maxHistoryLine = 64 << 10

// ParseHistory reads a timeline history file the way PostgreSQL's
// readTimeLineHistory does: blank lines and lines starting with "#" (after
// leading white space) are skipped, and each other line holds a decimal
// timeline, a tab, the switchpoint LSN and, after another tab, the reason
// (which may be missing). Timelines must be increasing and not 0. Carriage
// returns at the end of a line are dropped. An empty file gives no entries.
func ParseHistory(r io.Reader) ([]HistoryEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxHistoryLine)
	var entries []HistoryEntry
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimLeft(line, " \t\n\v\f\r")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		e, err := parseHistoryLine(trimmed)
		if err != nil {
			return nil, fmt.Errorf("history file line %d: %w", lineNo, err)
		}
		if n := len(entries); n > 0 && e.Timeline <= entries[n-1].Timeline {
			return nil, fmt.Errorf("history file line %d: timeline %d does not follow timeline %d: timelines must be increasing",
				lineNo, e.Timeline, entries[n-1].Timeline)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("history file: line longer than %d bytes", maxHistoryLine)
		}
		return nil, fmt.Errorf("read history file: %w", err)
	}
	return entries, nil
}

func parseHistoryLine(line string) (HistoryEntry, error) {
	fields := strings.SplitN(line, "\t", 3)
	tli, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return HistoryEntry{}, fmt.Errorf("%q: want a decimal timeline ID first", line)
	}
	if tli == 0 {
		return HistoryEntry{}, fmt.Errorf("%q: timeline 0 is not valid", line)
	}
	if len(fields) < 2 {
		return HistoryEntry{}, fmt.Errorf("%q: want a tab and a switchpoint LSN after the timeline", line)
	}
	lsn, err := ParseLSN(fields[1])
	if err != nil {
		return HistoryEntry{}, fmt.Errorf("%q: switchpoint: %w", line, err)
	}
	e := HistoryEntry{Timeline: TimelineID(tli), SwitchPoint: lsn}
	if len(fields) == 3 {
		e.Reason = fields[2]
	}
	return e, nil
}

// FormatHistory writes entries in PostgreSQL's history file format, one
// "timeline<TAB>switchpoint<TAB>reason" line each, so that ParseHistory
// gives the same entries back. It refuses entries ParseHistory would not
// return: timeline 0, timelines not increasing, a reason containing a
// newline or ending in "\r".
func FormatHistory(w io.Writer, entries []HistoryEntry) error {
	var b strings.Builder
	for i, e := range entries {
		switch {
		case e.Timeline == 0:
			return fmt.Errorf("history entry %d: timeline 0 is not valid", i)
		case i > 0 && e.Timeline <= entries[i-1].Timeline:
			return fmt.Errorf("history entry %d: timeline %d does not follow timeline %d: timelines must be increasing",
				i, e.Timeline, entries[i-1].Timeline)
		case strings.Contains(e.Reason, "\n") || strings.HasSuffix(e.Reason, "\r"):
			return fmt.Errorf("history entry %d: reason %q contains a line break", i, e.Reason)
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\n", e.Timeline, e.SwitchPoint, e.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CheckHistory reports whether entries can be the history of timeline tli:
// every timeline it lists must be older than tli (PostgreSQL: "Timeline IDs
// must be less than child timeline's ID"). Use it to check that a history
// file's content matches its name.
func CheckHistory(tli TimelineID, entries []HistoryEntry) error {
	if tli == 0 {
		return errors.New("history of timeline 0: timeline 0 is not valid")
	}
	if n := len(entries); n > 0 && entries[n-1].Timeline >= tli {
		return fmt.Errorf("history of timeline %d lists timeline %d: timelines in a history must be older than its own",
			tli, entries[n-1].Timeline)
	}
	return nil
}
