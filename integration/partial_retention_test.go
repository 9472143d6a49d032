package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// partialVerify is the part of verify --json about wal-receive's partials.
type partialVerify struct {
	OK      bool `json:"ok"`
	Summary struct {
		ReceivedPartials   int `json:"received_partials"`
		SupersededPartials int `json:"superseded_partials"`
	} `json:"summary"`
	Timelines []struct {
		Timeline         uint32 `json:"timeline"`
		CheckedTo        string `json:"checked_to"`
		CheckedToPartial bool   `json:"checked_to_partial"`
		ReceivedPartials int    `json:"received_partials"`
		NewestPartial    string `json:"newest_partial"`
		NewestPartialEnd string `json:"newest_partial_end_lsn"`
	} `json:"timelines"`
	Problems []struct {
		Kind string `json:"kind"`
		Key  string `json:"key"`
	} `json:"problems"`
	Warnings []struct {
		Kind   string `json:"kind"`
		Key    string `json:"key"`
		Detail string `json:"detail"`
	} `json:"warnings"`
}

func verifyPartials(t *testing.T, r *repo, args ...string) (partialVerify, result) {
	t.Helper()
	res := walvault(t, r.env, append([]string{"verify", "--json"}, args...)...)
	var rep partialVerify
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("verify --json: %v\n%v", err, res)
	}
	return rep, res
}

// segmentPartials lists the partials of segment name.
func segmentPartials(t *testing.T, r *repo, name string) []string {
	t.Helper()
	seg, err := wal.ParseSegmentName(name)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range partialKeys(t, r.backend) {
		if strings.HasPrefix(k, repository.PartialSegmentPrefix(seg)) {
			keys = append(keys, k)
		}
	}
	return keys
}

// waitPartialUpTo waits until wal-receive stored a partial of the server's
// current segment that reaches the server's current WAL position, and
// returns the segment's name.
func waitPartialUpTo(t *testing.T, r *repo, pg *testenv.Postgres, rc *receiver) string {
	t.Helper()
	out := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn()) || ' ' || pg_current_wal_lsn()")
	name, lsnText, _ := strings.Cut(out, " ")
	lsn, err := wal.ParseLSN(lsnText)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if keys := segmentPartials(t, r, name); len(keys) > 0 {
			if p, ok := repository.ParsePartialKey(keys[len(keys)-1]); ok && p.End >= lsn {
				return name
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no partial of %s up to %s after 30s: %v\n%s", name, lsn, partialKeys(t, r.backend), rc.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitSlotInactive(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pg.SQL(t, "SELECT active FROM pg_replication_slots WHERE slot_name = 'walvault'") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("the replication slot is still active 30s after wal-receive was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPartialRetentionAndVerify runs the real wal-receive, delete and
// verify on file:// with the three kinds of partials:
//
//   - orphaned by a receiver killed with SIGKILL, then superseded when
//     archive_command stored the complete segment (in the range retention
//     keeps: garbage all the same);
//   - the newest partial of the open segment, left by a receiver stopped
//     cleanly: it holds the last WAL and must stay;
//   - a partial of a segment that is not archived and lies before the
//     oldest kept backup (what an old timeline's last segment becomes):
//     written with repository.PartialKey from a real segment.
func TestPartialRetentionAndVerify(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE marks (id serial PRIMARY KEY, note text)")
	oldest := pg.SwitchWAL(t) // archived before any backup starts
	pg.WaitArchived(t, oldest, 60*time.Second)
	b1 := backupPush(t, r, pg)
	waitDone(t, r, b1)

	spool := testenv.UserDir(t)
	rc := startReceiver(t, r, pg, spool, "--create-slot")
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('streamed')")
	orphanSeg := waitPartialUpTo(t, r, pg, rc)
	rc.cmd.Process.Kill()
	<-rc.done
	orphans := segmentPartials(t, r, orphanSeg)
	waitSlotInactive(t, pg)
	if switched := pg.SwitchWAL(t); switched != orphanSeg {
		t.Fatalf("switched %s, but the receiver was killed in %s", switched, orphanSeg)
	}
	pg.WaitArchived(t, orphanSeg, 60*time.Second)

	b2 := backupPush(t, r, pg)
	waitDone(t, r, b2)
	rc = startReceiver(t, r, pg, spool)
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('open')")
	openSeg := waitPartialUpTo(t, r, pg, rc)
	rc.stop(t)
	open := segmentPartials(t, r, openSeg)
	newestOpen, _ := repository.ParsePartialKey(open[len(open)-1])
	seg, _ := wal.ParseSegmentName(openSeg)
	pg.WaitArchived(t, wal.Segment{Timeline: seg.Timeline, Log: seg.Log, Seg: seg.Seg - 1}.String(), 60*time.Second)

	// The oldest segment survives only as a partial of its first 64 KiB.
	oldSeg, _ := wal.ParseSegmentName(oldest)
	oldKey := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: oldSeg.Timeline, Segment: oldSeg}, repository.LZ4)
	body, _ := getObject(t, r.backend, oldKey)
	zr, err := repository.LZ4.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<10))
	if err != nil || len(raw) != 64<<10 {
		t.Fatalf("read %s: %d bytes, %v", oldKey, len(raw), err)
	}
	start, _ := oldSeg.StartLSN(16 << 20)
	oldPartial := repository.PartialKey(oldSeg, start+wal.LSN(len(raw)), repository.LZ4)
	repotest.PutWAL(t, r.backend, oldPartial, repository.LZ4, raw, map[string]string{repository.MetaEndLSN: (start + wal.LSN(len(raw))).String()})
	if err := r.backend.Delete(context.Background(), oldKey); err != nil {
		t.Fatal(err)
	}
	all := partialKeys(t, r.backend)
	t.Logf("partials: orphaned %v, open %v, old %s", orphans, open, oldPartial)

	t.Run("verify", func(t *testing.T) {
		rep, res := verifyPartials(t, r, "--full")
		if res.code != 0 || !rep.OK || rep.Summary.ReceivedPartials != len(all) || rep.Summary.SupersededPartials != len(orphans) {
			t.Fatalf("verify --full: %+v\n%v", rep, res)
		}
		var superseded []string
		for _, w := range rep.Warnings {
			if w.Kind == "superseded_partial" {
				superseded = append(superseded, w.Key)
				if !strings.Contains(w.Detail, "walvault delete") {
					t.Errorf("warning %q does not say walvault delete removes it", w.Detail)
				}
			}
		}
		if !reflect.DeepEqual(superseded, orphans) {
			t.Fatalf("superseded warnings for %v, want %v\n%v", superseded, orphans, res)
		}
		tl := rep.Timelines[0]
		if tl.CheckedTo != openSeg || !tl.CheckedToPartial || tl.NewestPartial != newestOpen.Key || tl.NewestPartialEnd != newestOpen.End.String() {
			t.Fatalf("timeline: %+v; want it checked to %s, held by the partial %s", tl, openSeg, newestOpen.Key)
		}
		text := walvault(t, r.env, "verify")
		t.Logf("verify:\n%s", text.stdout)
		if text.code != 0 || !strings.Contains(text.stdout, "OK: timeline 1: WAL continuous from") ||
			!strings.Contains(text.stdout, openSeg+" only as a partial of wal-receive") ||
			!strings.Contains(text.stdout, "the newest ending at "+newestOpen.End.String()) {
			t.Fatalf("verify: %v", text)
		}
	})

	t.Run("delete", func(t *testing.T) {
		before := repoKeys(t, r)
		dry := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 2")
		t.Logf("delete dry run:\n%s", dry.stdout)
		out := strings.Join(strings.Fields(dry.stdout), " ")
		for _, want := range []string{
			"partials: delete " + strconv.Itoa(len(orphans)+1) + " files",
			strconv.Itoa(len(orphans)) + " superseded (segment archived complete), 1 wholly before",
			"partials: keep " + strconv.Itoa(len(open)),
			"of 1 segment not archived complete",
			"and " + strconv.Itoa(len(orphans)+1) + " partials",
		} {
			if dry.code != 0 || !strings.Contains(out, want) {
				t.Errorf("dry run lacks %q: %v", want, dry)
			}
		}
		if after := repoKeys(t, r); !reflect.DeepEqual(after, before) {
			t.Fatal("a dry run changed the repository")
		}
		res := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 2", "--confirm")
		if res.code != 0 || !strings.Contains(res.stdout, "deleted partials: "+strconv.Itoa(len(orphans)+1)+" files") {
			t.Fatalf("delete --confirm: %v", res)
		}
		if left := partialKeys(t, r.backend); !reflect.DeepEqual(left, open) {
			t.Fatalf("partials left %v, want the open segment's %v", left, open)
		}
		if got := backupIDs(t, r); !reflect.DeepEqual(got, []string{b1, b2}) {
			t.Fatalf("backups %v, want both kept", got)
		}
		rep, res := verifyPartials(t, r)
		if res.code != 0 || rep.Summary.SupersededPartials != 0 || rep.Summary.ReceivedPartials != len(open) {
			t.Fatalf("verify after delete: %+v\n%v", rep, res)
		}
	})

	t.Run("damaged newest partial", func(t *testing.T) {
		// Valid lz4 of other bytes of the same length, the same metadata:
		// only re-reading against the sha256 finds it.
		body, _ := getObject(t, r.backend, newestOpen.Key)
		zr, err := repository.LZ4.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		damaged, err := io.ReadAll(zr)
		if err != nil || len(damaged) == 0 {
			t.Fatalf("read %s: %d bytes, %v", newestOpen.Key, len(damaged), err)
		}
		damaged[len(damaged)-1] ^= 0xFF
		var buf bytes.Buffer
		zw, _ := repository.LZ4.NewWriter(&buf)
		zw.Write(damaged)
		zw.Close()
		r.tamper(t, newestOpen.Key, buf.Bytes())
		if res := walvault(t, r.env, "verify"); res.code != 0 {
			t.Fatalf("verify without --full reads no body: %v", res)
		}
		rep, res := verifyPartials(t, r, "--full")
		if res.code != 1 || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != "partial_checksum" || rep.Problems[0].Key != newestOpen.Key {
			t.Fatalf("verify --full of a damaged partial: %+v\n%v", rep, res)
		}
		if text := walvault(t, r.env, "verify", "--full"); !strings.Contains(text.stdout, "PROBLEM: "+newestOpen.Key) || !strings.Contains(text.stdout, "sha256") {
			t.Fatalf("verify --full: %v", text)
		}
	})
}
