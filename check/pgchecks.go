package check

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/wal"
)

const walPushLine = "archive_command = 'walvault wal-push %p'"

// receiveAlternative is the other way for WAL to reach the repository.
const receiveAlternative = "or stream WAL into the repository with walvault wal-receive --slot walvault --create-slot"

// unreachable is the verdict of a check that needs PostgreSQL when it
// could not be reached.
func (c *checker) unreachable(name string) (Result, bool) {
	if c.srv.connErr != nil {
		return failed(name, "not checked: PostgreSQL is unreachable"), true
	}
	return Result{}, false
}

func (c *checker) checkPostgreSQL() Result {
	if c.srv.connErr != nil {
		return failed(NamePostgreSQL, "%v", c.srv.connErr)
	}
	role := "primary"
	if c.srv.inRecovery {
		role = "standby"
	}
	version, _, _ := strings.Cut(c.srv.version, " ") // "15.10 (Debian 15.10-1)"
	if err := pg.CheckVersion(pg.VersionNumOf(c.srv.version)); err != nil {
		return failed(NamePostgreSQL, "%v", err)
	}
	return ok(NamePostgreSQL, "PostgreSQL %s, %s", version, role)
}

// settingResult handles a setting that could not be read.
func (c *checker) setting(name, setting string) (string, Result, bool) {
	if r, bad := c.unreachable(name); bad {
		return "", r, false
	}
	s := c.srv.settings[setting]
	if s.err != nil {
		return "", failed(name, "cannot read %s: %v", setting, s.err), false
	}
	return s.value, Result{}, true
}

func (c *checker) checkWALLevel() Result {
	v, r, good := c.setting(NameWALLevel, "wal_level")
	if !good {
		return r
	}
	if v == "replica" || v == "logical" {
		return ok(NameWALLevel, "%s", v)
	}
	return failed(NameWALLevel, "wal_level is %s, which leaves out what base backups and archive recovery need: set wal_level = replica in postgresql.conf and restart PostgreSQL", v)
}

func (c *checker) checkArchiveMode() Result {
	v, r, good := c.setting(NameArchiveMode, "archive_mode")
	if !good {
		return r
	}
	switch {
	case v == "always":
		return ok(NameArchiveMode, "always")
	case v == "on" && c.srv.inRecovery:
		return ok(NameArchiveMode, "on: a standby with archive_mode = on archives nothing itself, its primary must; set always to archive here too")
	case v == "on":
		return ok(NameArchiveMode, "on")
	}
	if via := c.viaReceive(); via != "" {
		return ok(NameArchiveMode, "%s: WAL reaches the repository through %s instead; see the %s line", v, via, NameReceiveSlot)
	}
	return failed(NameArchiveMode, "archive_mode is %s, so no WAL reaches the repository and no backup can be restored to a point in time: set archive_mode = on and %s in postgresql.conf, then restart PostgreSQL; %s", v, walPushLine, receiveAlternative)
}

func (c *checker) checkArchiveCommand() Result {
	r := c.archiveCommandVerdict()
	if r.OK {
		r.Detail += c.unreadVariables()
	}
	return r
}

// unreadVariables names the WALVAULT_* variables set for archive_command
// (in front of it, or in the server's environment) that walvault reads
// none of: a misspelled setting wal-push ignores. "" when there are none
// or they were not looked for.
func (c *checker) unreadVariables() string {
	cmd := c.srv.settings["archive_command"]
	if c.opts.UnknownEnvVars == nil || cmd.err != nil {
		return ""
	}
	cs := parseArchiveCommand(cmd.value)
	if !cs.runsWalvault {
		return ""
	}
	var names []string
	for _, name := range cs.assigned {
		names = append(names, name+"=")
	}
	if l := c.localServer(); l.envErr == nil {
		for _, name := range l.envNames {
			names = append(names, name+"=")
		}
	}
	unknown := slices.Compact(slices.Sorted(slices.Values(c.opts.UnknownEnvVars(names))))
	if len(unknown) == 0 {
		return ""
	}
	them := "it"
	if len(unknown) > 1 {
		them = "them"
	}
	return fmt.Sprintf("; but walvault reads no variable named %s, set for it (misspelled? see the configuration reference): wal-push ignores %s", strings.Join(unknown, " or "), them)
}

func (c *checker) archiveCommandVerdict() Result {
	cmd, r, good := c.setting(NameArchiveCmd, "archive_command")
	if !good {
		return r
	}
	if via := c.viaReceive(); via != "" {
		// archive_command is not the WAL source; a server that archives
		// with walvault too is still checked below.
		if m := c.srv.settings["archive_mode"]; m.err == nil && m.value == "off" {
			return ok(NameArchiveCmd, "not used, archive_mode is off: WAL reaches the repository through %s", via)
		}
		if lib := c.srv.settings["archive_library"]; (lib.err == nil && lib.value != "") || !parseArchiveCommand(cmd).runsWalvault {
			return ok(NameArchiveCmd, "does not run walvault wal-push, but WAL reaches the repository through %s instead", via)
		}
	}
	if m := c.srv.settings["archive_mode"]; m.err == nil && m.value == "off" {
		// PostgreSQL shows archive_command as "(disabled)" then, whatever
		// postgresql.conf says: its words tell nothing.
		return failed(NameArchiveCmd, "not used: archive_mode is off, so PostgreSQL archives nothing (see the archive_mode line)")
	}
	if lib := c.srv.settings["archive_library"]; lib.err == nil && lib.value != "" {
		return failed(NameArchiveCmd, "archive_library is %q, so PostgreSQL archives through that library and ignores archive_command: set archive_library = '' and %s, then reload PostgreSQL", lib.value, walPushLine)
	}
	cs := parseArchiveCommand(cmd)
	if c.proofRan {
		var src repoSource
		var same bool
		var sameErr error
		if cs.runsWalvault {
			src = archiveRepository(cs, c.localServer())
			if src.repo != "" {
				same, sameErr = sameRepository(src.repo, c.opts.Repo)
			}
		}
		return c.archiveVerdict(cmd, describeCommand(cs, src, same, sameErr))
	}
	// The proof did not run: judge by the command's words. Words that
	// look right prove nothing while the repository does not answer.
	r = c.wordsVerdict(cmd, cs)
	if r.OK && c.repoDown != "" {
		return failed(NameArchiveCmd, "not checked: %s %s (see %q above), so whether archiving reaches it is not known; by its words, archive_command %s", c.b.Location(), c.repoDown, NameRepository, r.Detail)
	}
	return r
}

// wordsVerdict judges archive_command by what its words say, when the
// proof could not run.
func (c *checker) wordsVerdict(cmd string, cs commandSettings) Result {
	if !cs.runsWalvault {
		return failed(NameArchiveCmd, "archive_command is %q, which does not run walvault wal-push, so WAL does not reach %s: set %s, then reload PostgreSQL (SELECT pg_reload_conf())", cmd, c.b.Location(), walPushLine)
	}
	src := archiveRepository(cs, c.localServer())
	if src.repo == "" {
		return ok(NameArchiveCmd, "runs walvault wal-push; which repository it pushes to is not checked: %s", src.unknown)
	}
	same, err := sameRepository(src.repo, c.opts.Repo)
	if err != nil {
		return failed(NameArchiveCmd, "archive_command pushes to %q (%s), which is not a repository URL: %v", src.repo, src.from, err)
	}
	if !same {
		return failed(NameArchiveCmd, "archive_command pushes to %s (%s), but this check looks at %s: point both at the same repository", src.repo, src.from, c.b.Location())
	}
	return ok(NameArchiveCmd, "runs walvault wal-push into this repository, named by %s", src.from)
}

func (c *checker) checkArchiver() Result {
	if r, bad := c.unreachable(NameArchiver); bad {
		return r
	}
	if c.srv.archErr != nil {
		return failed(NameArchiver, "cannot read pg_stat_archiver: %v", c.srv.archErr)
	}
	a := c.srv.archiver
	successes := fmt.Sprintf("%d segments archived", a.archived)
	if a.lastArchivedAt != nil {
		successes += fmt.Sprintf(", the last, %s, %s ago", a.lastArchived, age(a.archivedAge))
	}
	if a.failed == 0 {
		return ok(NameArchiver, "%s, no failure", successes)
	}
	if a.lastFailedAt != nil && (a.lastArchivedAt == nil || a.lastFailedAt.After(*a.lastArchivedAt)) {
		if c.proofRan && c.proofErr == nil && c.archiverReadAfterProof && c.failingAfterProof == "" {
			// Read before the proof: the archiver has succeeded since
			// (the first check after a restart sees the failures of the
			// last cycle before it, whose success PostgreSQL did not keep).
			return ok(NameArchiver, "%s; archive_command failed %d times, the last time for %s %s ago, but the archiver has archived since (see the archive_command line): archiving works again", successes, a.failed, a.lastFailed, age(a.failedAge))
		}
		since := "and none has succeeded since the statistics were reset"
		if a.lastArchivedAt != nil {
			since = fmt.Sprintf("after the last success %s ago", age(a.archivedAge))
		}
		return failed(NameArchiver, "archive_command failed %d times, the last time for %s %s ago, %s: WAL piles up in pg_wal until it succeeds; the server log has walvault's error: fix its cause, and PostgreSQL retries on its own",
			a.failed, a.lastFailed, age(a.failedAge), since)
	}
	return ok(NameArchiver, "%s; %d failures, none since the last success", successes, a.failed)
}

func (c *checker) checkArchiveLag() Result {
	if r, bad := c.unreachable(NameArchiveLag); bad {
		return r
	}
	if m := c.srv.settings["archive_mode"]; m.err == nil && m.value == "off" {
		if via := c.viaReceive(); via != "" {
			return ok(NameArchiveLag, "nothing to archive, archive_mode is off; the lag of %s is on the %s line", via, NameReceiveSlot)
		}
		return failed(NameArchiveLag, "nothing is archived: archive_mode is off")
	}
	a := c.srv.archiver
	last := "no segment archived yet"
	if c.srv.archErr == nil && a.lastArchivedAt != nil {
		last = fmt.Sprintf("last segment archived %s ago", age(a.archivedAge))
	}
	if rf := c.srv.ready; rf.err == nil {
		switch {
		case int64(rf.count) > c.maxReady():
			return failed(NameArchiveLag, "%d WAL files wait for archiving (.ready in pg_wal/archive_status), more than %d (%s of WAL): archiving falls behind and pg_wal grows; see the archiver check and the server log, and the storage's speed", rf.count, c.maxReady(), units.Bytes(MaxReadyBytes))
		case rf.count > 0 && rf.oldest != nil && time.Duration(*rf.oldest*float64(time.Second)) > MaxReadyAge:
			return failed(NameArchiveLag, "the oldest of %d WAL files waiting for archiving has waited %s, more than %s: archiving is stuck; see the archiver check and the server log", rf.count, age(rf.oldest), MaxReadyAge)
		}
		return ok(NameArchiveLag, "%s; %d .ready files waiting", last, rf.count)
	}
	// Without pg_monitor: estimate from the current WAL position.
	pending, known := c.pendingSegments()
	if known && pending > c.maxReady() {
		return failed(NameArchiveLag, "about %d completed WAL segments are not archived yet, more than %d (%s of WAL): archiving falls behind and pg_wal grows; see the archiver check and the server log", pending, c.maxReady(), units.Bytes(MaxReadyBytes))
	}
	if known {
		return ok(NameArchiveLag, "%s; about %d segments waiting (estimated from the WAL position: %v)", last, pending, c.srv.ready.err)
	}
	return ok(NameArchiveLag, "%s; files waiting not counted: %v", last, c.srv.ready.err)
}

// pendingSegments estimates the completed segments not archived yet: those
// between the last archived segment and the one being written.
func (c *checker) pendingSegments() (int64, bool) {
	if c.srv.currentWAL == "" || c.srv.segSize == 0 || c.srv.archErr != nil || len(c.srv.archiver.lastArchived) < 24 {
		return 0, false
	}
	cur, err1 := wal.ParseSegmentName(c.srv.currentWAL)
	last, err2 := wal.ParseSegmentName(c.srv.archiver.lastArchived[:24])
	if err1 != nil || err2 != nil || cur.Timeline != last.Timeline {
		return 0, false
	}
	per := int64((1 << 32) / uint64(c.srv.segSize))
	n := (int64(cur.Log)*per + int64(cur.Seg)) - (int64(last.Log)*per + int64(last.Seg)) - 1
	if n < 0 {
		n = 0
	}
	return n, true
}

func (c *checker) checkFreeSpace() Result {
	l := c.localServer()
	if l.why != "" {
		return ok(NameWALFreeSpace, "not checked: %s", l.why)
	}
	dir := filepath.Join(l.dataDir, "pg_wal")
	avail, total, err := freeSpace(dir)
	if err != nil {
		return ok(NameWALFreeSpace, "not checked: %v", err)
	}
	frac := 0.0
	if total > 0 {
		frac = float64(avail) / float64(total)
	}
	what := fmt.Sprintf("%s free, %.0f%% of %s, where %s lives", units.Bytes(int64(avail)), frac*100, units.Bytes(int64(total)), dir)
	if avail < MinFreeBytes || frac < MinFreeFraction {
		return failed(NameWALFreeSpace, "%s: when pg_wal fills up PostgreSQL stops; free space, and make sure archiving keeps up (WAL waiting for archiving stays in pg_wal)", what)
	}
	return ok(NameWALFreeSpace, "%s", what)
}

// age prints a duration in seconds the way people read it.
func age(secs *float64) string {
	if secs == nil {
		return "never"
	}
	d := time.Duration(*secs * float64(time.Second))
	if d < 0 {
		d = 0
	}
	return roundDuration(d)
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// shortDuration prints a setting's duration as it is usually written:
// 26h, 90m, 45s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// maxReady is how many segments of the server's size may wait for
// archiving: MaxReadyBytes of them, at least 4 (of 1 GiB segments, one
// filling while a few are pushed is normal).
func (c *checker) maxReady() int64 {
	if c.srv == nil || c.srv.segSize == 0 {
		return MaxReady
	}
	return max(4, MaxReadyBytes/int64(c.srv.segSize))
}
