package check

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

func i64(n int64) *int64 { return &n }

// receivingChecker is a checker of a primary writing segment 7 whose
// repository (segments 1 to 6) has walvault.json loaded.
func receivingChecker(t *testing.T) (*checker, storage.Backend) {
	t.Helper()
	c, b := newChecker(t)
	id, err := repository.LoadIdentity(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	c.identityLoaded, c.identity = true, identityFacts{id: id}
	c.srv.currentWAL = "000000010000000000000007"
	c.srv.user = "monitor"
	return c, b
}

// streaming is an active wal-receive slot flushed up to flush.
func streaming(name, flush string) slotState {
	return slotState{Name: name, Type: "physical", Active: true, RestartLSN: flush, WALStatus: "reserved",
		AppName: receiveAppName, State: "streaming", FlushLSN: flush, Behind: i64(120), Retained: i64(120),
		FlushLag: secs(0.25), ReplayLag: secs(0.25)}
}

func TestReceiveSlots(t *testing.T) {
	seg7 := wal.Segment{Timeline: 1, Seg: 7}
	tests := []struct {
		name    string
		named   string // --slot
		slots   []slotState
		partial wal.LSN // a partial of segment 7 ending here (0: none)
		want    []string
		ok      []bool
	}{
		{"not in use", "", nil, 0, nil, nil},
		{"streaming, partial in the repository", "", []slotState{streaming("walvault", "0/7000148")}, 0x7000148,
			[]string{"walvault: active, wal-receive streaming; flushed to the repository up to 0/7000148, 120 B behind the server; flush lag 250ms, replay lag 250ms; 120 B of WAL retained since restart_lsn 0/7000148; the repository holds WAL up to the flushed position"}, []bool{true}},
		{"flushed at a segment boundary", "walvault", []slotState{streaming("walvault", "0/7000000")}, 0,
			[]string{"walvault: active", "the repository holds WAL up to the flushed position"}, []bool{true}},
		{"streaming into another repository", "", []slotState{streaming("walvault", "0/7000148")}, 0x7000100,
			[]string{"neither segment 000000010000000000000007 nor a partial of it reaching 0/7000148", "another repository"}, []bool{false}},
		{"just resumed at a segment boundary", "", []slotState{streaming("walvault", "0/9000000")}, 0,
			[]string{"is not checked: it reports 0/9000000, the start of a segment"}, []bool{true}},
		{"named and missing", "walvault", nil, 0, []string{"walvault: the replication slot does not exist", "--create-slot"}, []bool{false}},
		{"inactive", "walvault", []slotState{{Name: "walvault", Type: "physical", RestartLSN: "0/5000000", WALStatus: "reserved", Retained: i64(3 << 24)}}, 0,
			[]string{"walvault: inactive, 48.0 MiB of WAL retained since restart_lsn 0/5000000", "start walvault wal-receive --slot walvault", "pg_drop_replication_slot('walvault')"}, []bool{false}},
		{"far behind", "", []slotState{func() slotState {
			s := streaming("walvault", "0/7000148")
			s.Behind, s.Retained = i64(65<<24), i64(65<<24)
			return s
		}()}, 0x7000148, []string{"more than 1.0 GiB", "falls behind"}, []bool{false}},
		{"lost WAL", "walvault", []slotState{{Name: "walvault", Type: "physical", WALStatus: "lost"}}, 0, []string{"wal_status lost", "new backup-push"}, []bool{false}},
		{"unreserved", "", []slotState{func() slotState { s := streaming("walvault", "0/7000148"); s.WALStatus = "unreserved"; return s }()}, 0x7000148,
			[]string{"wal_status unreserved"}, []bool{false}},
		{"positions hidden from the role", "", []slotState{func() slotState {
			s := streaming("walvault", "")
			s.Behind, s.FlushLag, s.ReplayLag = nil, nil, nil
			return s
		}()}, 0, []string{`hidden from role "monitor": GRANT pg_monitor TO "monitor"`}, []bool{true}},
		{"idle", "", []slotState{func() slotState {
			s := streaming("walvault", "0/7000148")
			s.FlushLag, s.ReplayLag = nil, nil
			return s
		}()}, 0x7000148,
			[]string{"no lag measured lately"}, []bool{true}},
		{"a logical slot named", "walvault", []slotState{{Name: "walvault", Type: "logical", Active: true}}, 0, []string{"a logical slot"}, []bool{false}},
		{"a standby's slot named", "standby1", []slotState{{Name: "standby1", Type: "physical", Active: true, AppName: "walreceiver", WALStatus: "reserved"}}, 0,
			[]string{`streamed by "walreceiver", not by wal-receive`}, []bool{false}},
		{"two receivers", "", []slotState{streaming("a", "0/7000148"), streaming("b", "0/9000148")}, 0x7000148,
			[]string{"a: active", "b: active"}, []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, b := receivingChecker(t)
			c.opts.Slot = tc.named
			c.srv.slots = tc.slots
			if tc.partial != 0 {
				key := repository.PartialKey(seg7, tc.partial, repository.LZ4)
				if err := b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{IfNotExists: true}); err != nil {
					t.Fatal(err)
				}
			}
			rs := c.checkReceiveSlots(context.Background())
			if len(rs) != len(tc.ok) {
				t.Fatalf("got %d lines, want %d: %+v", len(rs), len(tc.ok), rs)
			}
			for i, r := range rs {
				if r.Name != NameReceiveSlot || r.OK != tc.ok[i] {
					t.Errorf("line %d: %+v, want %q ok=%v", i, r, NameReceiveSlot, tc.ok[i])
				}
			}
			var all []string
			for _, r := range rs {
				all = append(all, r.Detail)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.Join(all, "\n"), w) {
					t.Errorf("lines lack %q:\n%s", w, strings.Join(all, "\n"))
				}
			}
		})
	}
}

func TestReceiveSlotsUnreachable(t *testing.T) {
	c, _ := receivingChecker(t)
	c.srv.connErr = errors.New("connection refused")
	if rs := c.checkReceiveSlots(context.Background()); len(rs) != 0 {
		t.Errorf("no --slot, PostgreSQL unreachable: %+v, want no line", rs)
	}
	c.opts.Slot = "walvault"
	if r := one(t, c.checkReceiveSlots(context.Background())); r.OK || !strings.Contains(r.Detail, "unreachable") {
		t.Errorf("--slot, PostgreSQL unreachable: %+v", r)
	}
	c.srv.connErr = nil
	c.srv.slotsErr = errors.New("permission denied")
	if r := one(t, c.checkReceiveSlots(context.Background())); r.OK || !strings.Contains(r.Detail, "permission denied") {
		t.Errorf("slots unreadable: %+v", r)
	}
}

// TestArchivingWithReceive: with a running wal-receive, archive_mode off
// is no failure; with a stopped one it still is.
func TestArchivingWithReceive(t *testing.T) {
	c, _ := receivingChecker(t)
	c.loc = &local{why: "not here"}
	c.srv.settings = map[string]setting{"archive_mode": {value: "off"}, "archive_command": {value: "(disabled)"}, "archive_library": {value: ""}}
	c.srv.slots = []slotState{{Name: "walvault", Type: "physical", WALStatus: "reserved"}}
	for _, r := range []Result{c.checkArchiveMode(), c.checkArchiveCommand(), c.checkArchiveLag()} {
		if r.OK {
			t.Errorf("archive_mode off, wal-receive stopped: %+v, want FAILED", r)
		}
	}
	if r := c.checkArchiveMode(); !strings.Contains(r.Detail, "wal-receive --slot walvault --create-slot") {
		t.Errorf("archive_mode off: %+v, want wal-receive named as the alternative", r)
	}

	c.srv.slots = []slotState{streaming("walvault", "0/7000148")}
	for _, r := range []Result{c.checkArchiveMode(), c.checkArchiveCommand(), c.checkArchiveLag()} {
		if !r.OK || !strings.Contains(r.Detail, "wal-receive on slot walvault") {
			t.Errorf("archive_mode off, wal-receive streaming: %+v, want OK naming it", r)
		}
	}
	c.srv.settings["archive_mode"] = setting{value: "on"}
	c.srv.settings["archive_command"] = setting{value: ""}
	if r := c.checkArchiveCommand(); !r.OK || !strings.Contains(r.Detail, "through wal-receive on slot walvault instead") {
		t.Errorf("empty archive_command, wal-receive streaming: %+v", r)
	}
	// Archiving with walvault as well: archive_command is still checked.
	c.srv.settings["archive_command"] = setting{value: "walvault wal-push --repo s3://other/p %p"}
	c.opts.Repo = "s3://mine/p"
	if r := c.checkArchiveCommand(); r.OK {
		t.Errorf("walvault archiving into another repository, wal-receive streaming: %+v, want FAILED", r)
	}
}

// TestReceiveSlotOnStandby: without the streamed timeline at hand the
// repository side is not judged, and the line says so.
func TestReceiveSlotOnStandby(t *testing.T) {
	c, _ := receivingChecker(t)
	c.srv.currentWAL = ""
	c.srv.slots = []slotState{streaming("walvault", "0/9000148")}
	r := one(t, c.checkReceiveSlots(context.Background()))
	if !r.OK || !strings.Contains(r.Detail, "is not checked: on a standby") {
		t.Errorf("slot on a standby: %+v, want OK saying what was not checked", r)
	}
}
