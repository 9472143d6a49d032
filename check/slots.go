package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

const receiveAppName = pg.ReceiveApplicationName

// MaxSlotRetained is how much WAL a wal-receive slot may hold back in
// pg_wal (or wal-receive may be behind the server) before it counts as
// falling behind: the same bound as the .ready files of archive_command.
const MaxSlotRetained = MaxReadyBytes

// slotState is a replication slot and, when a client streams from it,
// its walsender, as gather read them.
type slotState = pg.Slot

// receivers names the slots wal-receive streams from now.
func (c *checker) receivers() []string {
	if c.srv == nil || c.srv.connErr != nil {
		return nil
	}
	var names []string
	for _, s := range c.srv.slots {
		if s.StreamedBy(receiveAppName) {
			names = append(names, s.Name)
		}
	}
	return names
}

// viaReceive says which wal-receive brings WAL to the repository, for the
// archiving checks' OK lines; "" when none does.
func (c *checker) viaReceive() string {
	names := c.receivers()
	if len(names) == 0 {
		return ""
	}
	return "wal-receive on slot " + strings.Join(names, ", ")
}

// checkReceiveSlots reports each slot wal-receive streams from, and the one
// Options.Slot names: state, positions, lag, and whether the repository
// holds what the slot reports flushed. Without wal-receive in use and
// without --slot there is no line at all.
func (c *checker) checkReceiveSlots(ctx context.Context) []Result {
	named := c.opts.Slot
	if c.srv.connErr != nil {
		if named == "" {
			return nil
		}
		return []Result{failed(NameReceiveSlot, "%s: not checked: PostgreSQL is unreachable", named)}
	}
	if c.srv.slotsErr != nil {
		return []Result{failed(NameReceiveSlot, "cannot read pg_replication_slots and pg_stat_replication: %v", c.srv.slotsErr)}
	}
	var out []Result
	found := false
	for _, s := range c.srv.slots {
		found = found || s.Name == named
		out = append(out, c.slotResult(ctx, s))
	}
	if named != "" && !found {
		out = append(out, failed(NameReceiveSlot, "%s: the replication slot does not exist, so wal-receive cannot stream from it: start walvault wal-receive --slot %s --create-slot (or fix --slot / WALVAULT_SLOT)", named, named))
	}
	return out
}

func (c *checker) slotResult(ctx context.Context, s slotState) Result {
	limit := int64(MaxSlotRetained)
	retained := "retained WAL unknown"
	if s.Retained != nil {
		retained = fmt.Sprintf("%s of WAL retained since restart_lsn %s", units.Bytes(max(*s.Retained, 0)), s.RestartLSN)
	}
	switch {
	case s.Type != "physical":
		return failed(NameReceiveSlot, "%s: a %s slot; wal-receive streams from a physical slot: name a physical one with --slot", s.Name, s.Type)
	case s.WALStatus == "lost":
		return failed(NameReceiveSlot, "%s: PostgreSQL removed WAL this slot still needed (wal_status lost, max_slot_wal_keep_size): that WAL never reached the repository, so no restore can cross the gap: drop and recreate the slot, restart wal-receive, and take a new backup-push", s.Name)
	case !s.Active:
		return failed(NameReceiveSlot, "%s: inactive, %s: wal-receive is not streaming from it, so new WAL does not reach the repository through it, and pg_wal keeps growing: start walvault wal-receive --slot %s (see its log or systemd unit), or drop the slot if nothing uses it: SELECT pg_drop_replication_slot('%s')", s.Name, retained, s.Name, s.Name)
	case s.AppName != receiveAppName:
		return failed(NameReceiveSlot, "%s: streamed by %q, not by wal-receive (application_name %s): give wal-receive its own slot", s.Name, s.AppName, receiveAppName)
	}

	facts := []string{fmt.Sprintf("%s: active, wal-receive %s", s.Name, s.State)}
	lagKnown := s.FlushLSN != "" && s.Behind != nil
	if lagKnown {
		facts = append(facts, fmt.Sprintf("flushed to the repository up to %s, %s behind the server", s.FlushLSN, units.Bytes(max(*s.Behind, 0))))
		if s.FlushLag != nil || s.ReplayLag != nil {
			facts = append(facts, fmt.Sprintf("flush lag %s, replay lag %s", lag(s.FlushLag), lag(s.ReplayLag)))
		} else {
			facts = append(facts, "no lag measured lately (nothing to stream)")
		}
	} else {
		facts = append(facts, fmt.Sprintf("its flush position and lag are hidden from role %[1]s: GRANT pg_monitor TO %[1]s", pg.QuoteIdent(c.srv.user)))
	}
	facts = append(facts, retained)
	detail := strings.Join(facts, "; ")

	big := func(n *int64) bool { return n != nil && *n > limit }
	switch {
	case s.WALStatus == "unreserved":
		return failed(NameReceiveSlot, "%s: the slot holds back more WAL than max_slot_wal_keep_size allows (wal_status unreserved), so PostgreSQL is about to remove WAL that never reached the repository: see why wal-receive falls behind (its log, the storage's speed)", detail)
	case big(s.Retained) || big(s.Behind):
		return failed(NameReceiveSlot, "%s: more than %s: wal-receive falls behind and pg_wal grows; see its log and the storage's speed", detail, units.Bytes(limit))
	}
	if !lagKnown {
		return ok(NameReceiveSlot, "%s", detail)
	}
	where, err := c.repositoryHasFlushed(ctx, s.FlushLSN)
	switch {
	case err != nil:
		return ok(NameReceiveSlot, "%s; whether the repository holds what it flushed is not checked: %v", detail, err)
	case where != "":
		return failed(NameReceiveSlot, "%s; but %s: this wal-receive streams into another repository than %s (see its --repo), or it was just promoted", detail, where, c.b.Location())
	}
	return ok(NameReceiveSlot, "%s; the repository holds WAL up to the flushed position", detail)
}

// repositoryHasFlushed looks in the repository for the WAL just before the
// flushed position: the complete segment, or a partial of it reaching that
// position (wal-receive reports a position flushed only once it is durable
// there). Partials are looked at first: wal-receive deletes them only after
// storing the complete segment, so this order cannot miss both. It returns
// what is missing, or "" when the WAL is there.
func (c *checker) repositoryHasFlushed(ctx context.Context, flush string) (string, error) {
	if !c.identityLoaded {
		return "", fmt.Errorf("the repository has no readable %s", repository.IdentityKey)
	}
	if len(c.srv.currentWAL) < 24 {
		// On a standby the timeline of the streamed WAL is not at hand.
		return "", errors.New("on a standby the timeline of the streamed WAL is not at hand")
	}
	cur, err := wal.ParseSegmentName(c.srv.currentWAL)
	if err != nil {
		return "", err
	}
	lsn, err := wal.ParseLSN(flush)
	if err != nil || lsn == 0 {
		return "", fmt.Errorf("flush position %q: %w", flush, err)
	}
	id := c.identity.id
	seg, err := wal.SegmentFromLSN(cur.Timeline, lsn-1, id.WALSegmentSize)
	if err != nil {
		return "", err
	}
	parts, err := repository.ListPartials(ctx, c.b, seg)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if p.End >= lsn {
			return "", nil
		}
	}
	_, err = repository.StatWAL(ctx, c.b, wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, id.Compression)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, storage.ErrNotFound):
		if uint64(lsn)%uint64(id.WALSegmentSize) == 0 {
			// A wal-receive that just (re)started reports the start of the
			// segment it resumes at, and the one before may predate the
			// repository.
			return "", fmt.Errorf("it reports %s, the start of a segment it has not stored any of yet", lsn)
		}
		return fmt.Sprintf("the repository has neither segment %s nor a partial of it reaching %s", seg, lsn), nil
	}
	return "", err
}

// lag prints a replication lag: to the millisecond, since wal-receive's
// lag is meant to stay under a second (max-lag).
func lag(secs *float64) string {
	if secs == nil {
		return "not measured"
	}
	d := time.Duration(*secs * float64(time.Second))
	if d >= time.Minute {
		return roundDuration(d)
	}
	return d.Round(time.Millisecond).String()
}
