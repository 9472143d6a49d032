package basebackup

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// TestCheckIncrementalServer: 15 and 16 are refused before anything is
// asked; on 17 summarize_wal must be on.
func TestCheckIncrementalServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		num       int
		summarize string
		want      string // "" accepted
	}{
		{150010, "", "needs PostgreSQL 17 or later"},
		{160004, "", "needs PostgreSQL 17 or later"},
		{170002, "off", "summarize_wal = on"},
		{170002, "on", ""},
		{180000, "on", ""},
	} {
		srv := &pgtest.Server{Answer: func(sql string) []pgproto3.BackendMessage {
			return pgtest.Result("SHOW", []string{"summarize_wal"}, []string{tc.summarize})
		}}
		err := checkIncrementalServer(t.Context(), srv, serverSettings{VersionNum: tc.num})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d summarize_wal=%q: got %v, want it accepted", tc.num, tc.summarize, err)
		case tc.want != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d summarize_wal=%q: got %v, want a refusal saying %q", tc.num, tc.summarize, err, tc.want)
		case tc.want != "" && !errors.As(err, new(*IncrementalImpossible)):
			t.Errorf("%d summarize_wal=%q: %v is not marked IncrementalImpossible, so --fallback-full would not take a full backup", tc.num, tc.summarize, err)
		}
		if tc.num < 170000 && len(srv.Queries) != 0 {
			t.Errorf("%d: asked %v of a server that cannot take incremental backups", tc.num, srv.Queries)
		}
	}
}

func TestChooseParent(t *testing.T) {
	t.Parallel()
	sys := pg.SystemInfo{SystemID: "7", Timeline: 2}
	bk := func(id string, st repository.BackupStatus, sysid string, ver int, tli uint32) *repository.Backup {
		return &repository.Backup{ID: id, HasManifest: true, WAL: repository.BackupWAL{Status: st},
			Manifest: &repository.BackupManifest{ID: id, SystemID: sysid, PGVersion: ver, StopTimeline: tli}}
	}
	inv := &repository.Inventory{Location: "mem://", Backups: []*repository.Backup{
		bk("20260101T000000Z", repository.StatusDone, "7", 170002, 2),
		bk("20260102T000000Z", repository.StatusDone, "7", 170002, 2),
		bk("20260103T000000Z", repository.StatusWaitingForWALs, "7", 170002, 2),
		bk("20260104T000000Z", repository.StatusDone, "7", 170002, 1), // older timeline
		bk("20260105T000000Z", repository.StatusDone, "8", 170002, 2), // another cluster
		bk("20260106T000000Z", repository.StatusDone, "7", 180000, 2), // another major
		{ID: "20260107T000000Z", WAL: repository.BackupWAL{Status: repository.StatusIncomplete}},
	}}
	m, err := chooseParent(inv, sys, 17, "")
	if err != nil || m.ID != "20260102T000000Z" {
		t.Fatalf("newest fitting DONE backup: got %v, %v, want 20260102T000000Z", m, err)
	}
	if m, err := chooseParent(inv, sys, 17, "20260101T000000Z"); err != nil || m.ID != "20260101T000000Z" {
		t.Fatalf("--parent 20260101T000000Z: got %v, %v", m, err)
	}
	for ref, want := range map[string]string{
		"20260103T000000Z": "WAITING_FOR_WALS",
		"20260105T000000Z": "another cluster",
		"20260106T000000Z": "PostgreSQL 18",
		"20260107T000000Z": "INCOMPLETE",
		"20260108T000000Z": "does not exist",
	} {
		if _, err := chooseParent(inv, sys, 17, ref); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("--parent %s: got %v, want a refusal saying %q", ref, err, want)
		}
	}
	if _, err := chooseParent(&repository.Inventory{}, sys, 17, ""); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "take a full backup first") {
		t.Errorf("no backup: got %v, want a refusal saying to take a full backup", err)
	}

	// Promoted since the last backup: the refusal names the newest backup
	// of the earlier timeline for --parent.
	promoted := pg.SystemInfo{SystemID: "7", Timeline: 3}
	if _, err := chooseParent(inv, promoted, 17, ""); !errors.As(err, new(*IncrementalImpossible)) || !strings.Contains(err.Error(), "--parent 20260102T000000Z") {
		t.Errorf("on timeline 3: got %v, want an IncrementalImpossible naming --parent 20260102T000000Z", err)
	}
}

// TestChooseParentBrokenChain: a backup whose own chain is broken (its
// full backup DAMAGED or deleted) is no parent: an incremental on it could
// never be restored either. The default passes it over for an older whole
// one, or refuses so that --fallback-full takes a full backup; --parent
// naming it is refused (explore25d F2).
func TestChooseParentBrokenChain(t *testing.T) {
	t.Parallel()
	sys := pg.SystemInfo{SystemID: "7", Timeline: 1}
	bk := func(id, parent string) *repository.Backup {
		return &repository.Backup{ID: id, HasManifest: true, WAL: repository.BackupWAL{Status: repository.StatusDone},
			Manifest: &repository.BackupManifest{ID: id, Parent: parent, SystemID: "7", PGVersion: 170002, StopTimeline: 1}}
	}
	older := bk("20260101T000000Z", "")
	damagedFull := bk("20260102T000000Z", "")
	damagedFull.PartsErr = errors.New("part base.tar.lz4 has 5 bytes, its manifest says 6")
	incr := bk("20260103T000000Z", "20260102T000000Z")
	orphan := bk("20260104T000000Z", "20260100T000000Z") // its parent deleted
	for name, tc := range map[string]struct {
		backups []*repository.Backup
		want    string // the default's choice; "" a refusal
	}{
		"damaged full, older whole one": {[]*repository.Backup{older, damagedFull, incr}, older.ID},
		"damaged full only":             {[]*repository.Backup{damagedFull, incr}, ""},
		"parent deleted":                {[]*repository.Backup{orphan}, ""},
	} {
		inv := &repository.Inventory{Location: "mem://", Backups: tc.backups}
		m, err := chooseParent(inv, sys, 17, "")
		switch {
		case tc.want != "" && (err != nil || m.ID != tc.want):
			t.Errorf("%s: got %v, %v, want %s", name, m, err, tc.want)
		case tc.want == "" && (!errors.As(err, new(*IncrementalImpossible)) || !strings.Contains(err.Error(), "whole")):
			t.Errorf("%s: got %v, %v, want an IncrementalImpossible refusal (for --fallback-full) saying no chain is whole", name, m, err)
		}
	}
	inv := &repository.Inventory{Location: "mem://", Backups: []*repository.Backup{older, damagedFull, incr, orphan}}
	for _, ref := range []string{incr.ID, orphan.ID} {
		if _, err := chooseParent(inv, sys, 17, ref); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cannot be restored") {
			t.Errorf("--parent %s: got %v, want a refusal saying it cannot be restored", ref, err)
		}
	}
}

// TestUploadParentManifest: the stored backup_manifest goes up whole on
// UPLOAD_MANIFEST; one that is not what walvault's manifest records (its
// stored sum, or the raw sum of a parent written before stored sums) is
// aborted with CopyFail, never handed to the server as complete.
func TestUploadParentManifest(t *testing.T) {
	t.Parallel()
	for name, putPart := range map[string]func(testing.TB, storage.Backend, string, repository.Compression, []byte, []byte) repository.BackupPart{
		"stored sum": repotest.PutPart, "raw sum": repotest.PutPartRawSum,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testUploadParentManifest(t, putPart)
		})
	}
}

func testUploadParentManifest(t *testing.T, putPart func(testing.TB, storage.Backend, string, repository.Compression, []byte, []byte) repository.BackupPart) {
	pgm := []byte(strings.Repeat(`{"PostgreSQL-Backup-Manifest-Version": 2}`, 5000))
	accept := func(string) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.CopyInResponse{}, pgtest.Complete("UPLOAD_MANIFEST"), pgtest.Ready()}
	}
	b := mem.New()
	parent := repository.BackupManifest{ID: "20260101T000000Z"}
	parent.PGManifest = putPart(t, b, repository.BackupPrefix(parent.ID)+repository.PGManifestName, repository.None, pgm, nil)

	srv := &pgtest.Server{Answer: accept}
	if err := uploadParentManifest(t.Context(), srv, b, &parent, manifestCopies{}, nil); err != nil {
		t.Fatal(err)
	}
	if len(srv.Queries) != 1 || srv.Queries[0] != "UPLOAD_MANIFEST" || string(srv.CopyIn) != string(pgm) || srv.CopyDones != 1 || len(srv.CopyFails) != 0 {
		t.Fatalf("queries %v, %d bytes sent (want %d), %d CopyDone, CopyFail %v", srv.Queries, len(srv.CopyIn), len(pgm), srv.CopyDones, srv.CopyFails)
	}

	damaged := parent
	damaged.PGManifest = putPart(t, b, "backups/20260102T000000Z/backup_manifest", repository.None, pgm, append([]byte{'x'}, pgm[1:]...))
	srv = &pgtest.Server{Answer: func(string) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.CopyInResponse{}, pgtest.ErrorMsg("57014", "COPY from stdin failed"), pgtest.Ready()}
	}}
	err := uploadParentManifest(t.Context(), srv, b, &damaged, manifestCopies{}, nil)
	if err == nil || !strings.Contains(err.Error(), "the parent is damaged") || srv.CopyDones != 0 || len(srv.CopyFails) != 1 {
		t.Fatalf("damaged manifest: got %v, %d CopyDone, CopyFail %v; want an error, CopyFail and no CopyDone", err, srv.CopyDones, srv.CopyFails)
	}
	if !errors.As(err, new(*IncrementalImpossible)) {
		t.Fatalf("damaged manifest: %v is not marked IncrementalImpossible, so --fallback-full would not take a full backup (explore25d F4)", err)
	}

	srv = &pgtest.Server{Answer: func(string) []pgproto3.BackendMessage {
		return pgtest.Failure("42601", `syntax error at or near "UPLOAD_MANIFEST"`)
	}}
	if err := uploadParentManifest(t.Context(), srv, b, &parent, manifestCopies{}, nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("server refusing UPLOAD_MANIFEST: got %v, want a refusal", err)
	}
}

func TestIncrementalCommandAndErrors(t *testing.T) {
	t.Parallel()
	cmd, err := baseBackupCommand("l", true, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := incrementalCommand(cmd); !strings.HasSuffix(got, ", TABLESPACE_MAP, INCREMENTAL )") {
		t.Fatalf("incremental command %q", got)
	}
	parent := &repository.BackupManifest{ID: "20260101T000000Z", StartLSN: "0/5000028", StartTimeline: 1}
	srvErr := pg.ServerError("BASE_BACKUP", pgtest.ErrorMsg("55000",
		"WAL summaries are required on timeline 1 from 0/5000028 to 0/9000028, but no summaries for that timeline and LSN range exist"))
	got := incrementalError(srvErr, parent)
	if !errors.Is(got, ErrRefused) || !strings.Contains(got.Error(), "take a full backup now") || !strings.Contains(got.Error(), parent.ID) {
		t.Fatalf("summaries gone: got %v", got)
	}
	if !errors.As(got, new(*IncrementalImpossible)) {
		t.Fatalf("summaries gone: %v is not marked IncrementalImpossible, so --fallback-full would not take a full backup", got)
	}
	// After a promotion the summaries stop at the switch, whatever
	// wal_summary_keep_time says.
	switched := incrementalError(pg.ServerError("BASE_BACKUP", pgtest.ErrorMsg("55000",
		"WAL summaries are required on timeline 2 from 0/32000000 to 0/35000028, but the summaries for that timeline and LSN range are incomplete")), parent)
	if !errors.As(switched, new(*IncrementalImpossible)) || !strings.Contains(switched.Error(), "began on timeline 1") || !strings.Contains(switched.Error(), "full backup on the new timeline") || strings.Contains(switched.Error(), "wal_summary_keep_time") {
		t.Fatalf("summaries missing at a timeline switch: got %v", switched)
	}
	// A parent taken on the old timeline after this server left it: the
	// range PostgreSQL names runs backwards (explore25d F6).
	after := &repository.BackupManifest{ID: "20260102T000000Z", StartLSN: "0/10000028", StartTimeline: 1}
	backwards := incrementalError(pg.ServerError("BASE_BACKUP", pgtest.ErrorMsg("55000",
		"WAL summaries are required on timeline 1 from 0/10000028 to 0/F0000A0, but no summaries for that timeline and LSN range exist")), after)
	if !errors.As(backwards, new(*IncrementalImpossible)) || !strings.Contains(backwards.Error(), "not in this server's past") || strings.Contains(backwards.Error(), "summarize_wal was off") {
		t.Fatalf("a parent past the branch: got %v", backwards)
	}
	// A quiet standby: no restartpoint since the parent (explore25e D).
	quiet := pgtest.ErrorMsg("55000", "manifest requires WAL from final timeline 1 ending at 0/5000120, but this backup starts at 0/5000028")
	quiet.Hint = "This can happen for incremental backups on a standby if there was little activity since the previous backup."
	if got := incrementalError(pg.ServerError("BASE_BACKUP", quiet), parent); !errors.As(got, new(*IncrementalImpossible)) || !strings.Contains(got.Error(), "CHECKPOINT on the primary") {
		t.Fatalf("a quiet standby: got %v, want an IncrementalImpossible naming CHECKPOINT on the primary", got)
	}
	other := errors.New("connection lost")
	if incrementalError(other, parent) != other {
		t.Fatal("an error that is not the server's passes unchanged")
	}
}
