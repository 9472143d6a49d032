package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/pg"
)

// proofSlack is how much longer than the wait itself the proof step may
// take: connecting, switching WAL, reading the archiver afterwards.
const proofSlack = 15 * time.Second

// proveArchiving sees whether the server's archiving reaches the
// repository by its effect (archiveproof.Prove: the archiver's last
// segment is there, or else one completed by a WAL switch arrives within
// the check timeout), for the archive_command verdict. It runs only when
// the server archives and no wal-receive is the WAL source, before the
// identity check, so that a repository the first switched segment creates
// is judged as it is then; and not when the repository did not answer,
// where it would wait another --timeout for nothing (the verdict then
// goes by the command's words).
func (c *checker) proveArchiving(parent context.Context) {
	if c.srv.connErr != nil || c.viaReceive() != "" || c.repoDown != "" {
		return
	}
	mode := c.srv.settings["archive_mode"]
	cmd := c.srv.settings["archive_command"]
	if mode.err != nil || cmd.err != nil || (mode.value != "on" && mode.value != "always") {
		return
	}
	if lib := c.srv.settings["archive_library"]; lib.err != nil || lib.value != "" {
		return
	}
	ctx, cancel := context.WithTimeout(parent, c.opts.Timeout+proofSlack)
	defer cancel()
	c.proofRan = true
	cfg, err := pg.ParseConfig(c.opts.ConnString, "")
	if err != nil {
		c.proofErr = err
		return
	}
	cfg.RuntimeParams["application_name"] = "walvault check"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	w, err := pg.Open(ctx, cfg, false)
	if err != nil {
		c.proofErr = err
		return
	}
	defer w.Close()
	srv := archiveproof.Server{
		Settings: pg.Settings{SegmentSize: c.srv.segSize, ArchiveMode: mode.value, ArchiveCommand: cmd.value, InRecovery: c.srv.inRecovery},
		SystemID: c.srv.sysID,
		User:     cfg.User,
	}
	p, err := archiveproof.Prove(ctx, w, c.b, srv, archiveproof.Options{Timeout: c.opts.Timeout, Log: c.opts.Log})
	c.proof, c.proofErr = p, err
	if err == nil {
		// The archiver as it is after the proof (stuckBehind): a failure
		// it has since got past is not a stuck archive.
		rs, qerr := pg.SimpleQuery(ctx, w, "SELECT coalesce(last_failed_wal, ''), coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver", nil)
		if qerr == nil && len(rs.Rows) == 1 && len(rs.Rows[0]) == 2 {
			c.archiverReadAfterProof = true
			if rs.Rows[0][1].S == "t" {
				c.failingAfterProof = rs.Rows[0][0].S
			}
		}
	}
}

// archiveVerdict is the archive_command line from the proof, with what
// the command's words say (named) as a note.
func (c *checker) archiveVerdict(cmd, named string) Result {
	if c.proofErr != nil {
		if errors.Is(c.proofErr, archiveproof.ErrNotReached) {
			if named != "" {
				return failed(NameArchiveCmd, "%v (%s)", c.proofErr, named)
			}
			return failed(NameArchiveCmd, "%v", c.proofErr)
		}
		return failed(NameArchiveCmd, "cannot see whether archive_command %q reaches %s: %v", cmd, c.b.Location(), c.proofErr)
	}
	if stuck := c.stuckBehind(); stuck != "" {
		return failed(NameArchiveCmd, "%s, but PostgreSQL's own archive_command call for %s keeps failing (see the archiver line): archiving is stuck there and WAL piles up in pg_wal (another call, push-ahead or by hand, stored what the repository holds)", c.proof, stuck)
	}
	if named != "" {
		return ok(NameArchiveCmd, "%s; %s", named, c.proof)
	}
	return ok(NameArchiveCmd, "%q reaches this repository: %s", cmd, c.proof)
}

// stuckBehind is the segment PostgreSQL's archiver keeps failing on when
// the proof's segment is that one or a later one (push-ahead stored it
// meanwhile), "" otherwise: the file the archiver last failed on, failed after its last
// success, as the archiver's statistics said after the proof.
func (c *checker) stuckBehind() string {
	failing := c.failingAfterProof
	if len(failing) < 24 || len(c.proof.Segment) < 24 || failing[:24] > c.proof.Segment[:24] {
		return ""
	}
	return failing
}

// describeCommand is what archive_command's words say about where it
// pushes, for the verdict's note.
func describeCommand(cs commandSettings, src repoSource, same bool, sameErr error) string {
	switch {
	case !cs.runsWalvault:
		return ""
	case src.repo == "":
		return fmt.Sprintf("runs walvault wal-push; which repository its settings name is not checked: %s", src.unknown)
	case sameErr != nil:
		return fmt.Sprintf("archive_command pushes to %q (%s), which is not a repository URL: %v", src.repo, src.from, sameErr)
	case !same:
		return fmt.Sprintf("archive_command pushes to %s (%s), not to this repository", src.repo, src.from)
	}
	return "runs walvault wal-push into this repository, named by " + src.from
}
