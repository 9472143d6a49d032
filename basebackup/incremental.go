package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// An incremental backup (PostgreSQL 17 and later) is a BASE_BACKUP with the
// INCREMENTAL option on a connection that first uploaded the parent's
// backup_manifest (UPLOAD_MANIFEST, a COPY from the client). The server
// then sends whole files only where its WAL summaries cannot tell which
// blocks changed since the parent's start, and INCREMENTAL.<name> files
// carrying just the changed blocks everywhere else.

// IncrementalImpossible marks a refusal of --incremental that a full
// backup avoids: a server older than 17, summarize_wal off, WAL summaries
// that no longer reach back to the parent, no parent to build on. Such an
// error wraps ErrRefused and this type (errors.As).
type IncrementalImpossible struct{ Err error }

func (e *IncrementalImpossible) Error() string { return e.Err.Error() }
func (e *IncrementalImpossible) Unwrap() error { return e.Err }

// impossible marks err as an IncrementalImpossible refusal.
func impossible(err error) error { return &IncrementalImpossible{Err: err} }

// fallBackToFull takes a full backup instead when an incremental one was
// asked for, was impossible, and opts.FallbackFull allows it; otherwise
// it returns what the push returned.
func fallBackToFull(ctx context.Context, b storage.Backend, opts Options, m repository.BackupManifest, err error) (repository.BackupManifest, error) {
	var no *IncrementalImpossible
	if err == nil || !opts.Incremental || !opts.FallbackFull || ctx.Err() != nil || !errors.As(err, &no) {
		return m, err
	}
	opts.Log.Warn("an incremental backup is impossible: taking a full backup instead (--fallback-full)", "reason", err)
	opts.Incremental, opts.Parent = false, ""
	return Push(ctx, b, opts)
}

// minIncrementalVersion is the first server_version_num with incremental
// backups.
const minIncrementalVersion = 170000

// checkIncrementalServer refuses, with what to change, a server that
// cannot take an incremental backup: older than 17, or with WAL
// summarization off (the server would refuse BASE_BACKUP INCREMENTAL only
// after a checkpoint).
func checkIncrementalServer(ctx context.Context, w pg.Wire, s serverSettings) error {
	if s.VersionNum < minIncrementalVersion {
		return impossible(fmt.Errorf("%w: --incremental needs PostgreSQL 17 or later, and this server runs PostgreSQL %s: take a full backup (backup-push without --incremental, or add --fallback-full)",
			ErrRefused, pg.FormatVersion(s.VersionNum)))
	}
	rs, err := pg.SimpleQuery(ctx, w, "SHOW summarize_wal", nil)
	if err != nil {
		return err
	}
	if len(rs.Rows) != 1 || len(rs.Rows[0]) != 1 {
		return errors.New("SHOW summarize_wal: unexpected answer")
	}
	if v := rs.Rows[0][0].S; v != "on" {
		return impossible(fmt.Errorf("%w: --incremental needs summarize_wal = on, and this server has it %s: set summarize_wal = on (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()), take a full backup, and incremental ones from then on",
			ErrRefused, v))
	}
	return nil
}

// chooseParent picks the backup an incremental builds on: ref when set
// (it must be DONE and of this cluster), else the newest DONE backup of
// this cluster and major that ends on the server's current timeline.
func chooseParent(inv *repository.Inventory, sys pg.SystemInfo, major int, ref string) (*repository.BackupManifest, error) {
	fits := func(m *repository.BackupManifest) error {
		if m.SystemID != sys.SystemID {
			return fmt.Errorf("backup %s is of another cluster (system identifier %s, this server's is %s)", m.ID, m.SystemID, sys.SystemID)
		}
		if m.PGVersion/10000 != major {
			return fmt.Errorf("backup %s was taken on PostgreSQL %d and this server runs PostgreSQL %d", m.ID, m.PGVersion/10000, major)
		}
		return nil
	}
	// An incremental on a parent whose own chain is broken could never be
	// restored either: refused, not reported done (explore25d F2).
	catalog := inv.ChainInfo()
	chainBroken := func(id string) error {
		_, err := repository.Chain(catalog, id)
		return err
	}
	if ref != "" {
		if err := repository.ValidateBackupID(ref); err != nil {
			return nil, err
		}
		bk := inv.Backup(ref)
		if bk == nil || !bk.HasManifest {
			return nil, fmt.Errorf("%w: parent backup %s does not exist or is INCOMPLETE in %s (see backup-list)", ErrRefused, ref, inv.Location)
		}
		if bk.ManifestErr != nil {
			return nil, fmt.Errorf("%w: parent backup %s: %w", ErrRefused, ref, bk.ManifestErr)
		}
		if st := bk.Status(); st != repository.StatusDone {
			return nil, fmt.Errorf("%w: parent backup %s is %s, and an incremental backup builds only on a DONE one (see backup-list)", ErrRefused, ref, st)
		}
		if err := fits(bk.Manifest); err != nil {
			return nil, fmt.Errorf("%w: parent %w", ErrRefused, err)
		}
		if err := chainBroken(ref); err != nil {
			return nil, fmt.Errorf("%w: parent backup %s cannot be restored, nor could an incremental on it: %w; take a full backup (backup-push without --parent and --incremental)", ErrRefused, ref, err)
		}
		return bk.Manifest, nil
	}
	var broken error // the newest fitting backup passed over for its chain
	for i := len(inv.Backups) - 1; i >= 0; i-- {
		bk := inv.Backups[i]
		if !bk.HasManifest || bk.ManifestErr != nil || bk.Status() != repository.StatusDone {
			continue
		}
		m := bk.Manifest
		if fits(m) != nil || m.StopTimeline != uint32(sys.Timeline) {
			continue
		}
		if err := chainBroken(m.ID); err != nil {
			if broken == nil {
				broken = err
			}
			continue
		}
		return m, nil
	}
	if broken != nil {
		return nil, impossible(fmt.Errorf("%w: --incremental found no backup of this cluster on timeline %d in %s to build on whose chain is whole (%w): take a full backup (backup-push without --incremental, or add --fallback-full)",
			ErrRefused, uint32(sys.Timeline), inv.Location, broken))
	}
	return nil, impossible(fmt.Errorf("%w: --incremental found no DONE backup of this cluster on timeline %d in %s to build on: take a full backup first (backup-push without --incremental, or add --fallback-full)%s",
		ErrRefused, uint32(sys.Timeline), inv.Location, olderTimelineHint(inv, sys, fits)))
}

// olderTimelineHint names, for --incremental on a server promoted since
// its last backup, the newest DONE backup of this cluster on an earlier
// timeline, which --parent may name: PostgreSQL takes it when its WAL
// summaries reach back across the switch (explore25d F5).
func olderTimelineHint(inv *repository.Inventory, sys pg.SystemInfo, fits func(*repository.BackupManifest) error) string {
	var best *repository.BackupManifest // the latest timeline's newest
	for _, bk := range inv.Backups {
		if !bk.HasManifest || bk.ManifestErr != nil || bk.Status() != repository.StatusDone {
			continue
		}
		if m := bk.Manifest; fits(m) == nil && m.StopTimeline < uint32(sys.Timeline) && (best == nil || m.StopTimeline >= best.StopTimeline) {
			best = m
		}
	}
	if best == nil {
		return ""
	}
	return fmt.Sprintf("; or, if this server was promoted from timeline %d and summarize_wal was on before the switch, --parent %s (the newest backup of timeline %d)", best.StopTimeline, best.ID, best.StopTimeline)
}

// uploadParentManifest sends the parent's backup_manifest with
// UPLOAD_MANIFEST, streaming, and aborts the upload when its size or sum
// is not the one walvault's manifest of the parent records. The manifest
// is the stored one, or, when that is encrypted, the plain copy kept here.
func uploadParentManifest(ctx context.Context, w pg.CopyInWire, b storage.Backend, parent *repository.BackupManifest, copies manifestCopies, recipients *crypt.Recipients) error {
	if parent.PGManifest.Key == "" {
		return fmt.Errorf("%w: parent backup %s records no backup_manifest", ErrRefused, parent.ID)
	}
	var rc io.ReadCloser
	var check func(n int64, sha256 []byte) error
	var err error
	if parent.PGManifest.Encryption != "" {
		rc, check, err = openManifestCopy(copies, parent, recipients)
	} else {
		rc, check, err = openStoredManifest(ctx, b, parent)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	h := &countingHash{Hash: sha256.New()}
	err = pg.CopyIn(ctx, w, "UPLOAD_MANIFEST", io.TeeReader(rc, h), func() error { return check(h.n, h.Sum(nil)) })
	var damaged *IncrementalImpossible
	if errors.As(err, &damaged) {
		return err // says what it is; --fallback-full takes a full backup
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%w: PostgreSQL refused the backup_manifest of parent backup %s: %w", ErrRefused, parent.ID, err)
	}
	if err != nil {
		return fmt.Errorf("upload the backup_manifest of parent backup %s: %w", parent.ID, err)
	}
	return nil
}

// openStoredManifest opens the parent's stored backup_manifest, decoded
// the way every part is (its codec recorded with it); check, given the
// size and sha256 of what was read, compares them with the parent's
// record: of the stored bytes, or of the raw ones (a parent written
// before stored sums).
func openStoredManifest(ctx context.Context, b storage.Backend, parent *repository.BackupManifest) (io.ReadCloser, func(int64, []byte) error, error) {
	part := parent.PGManifest
	rc, _, err := b.Get(ctx, part.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("read backup_manifest of parent backup %s: %w", parent.ID, err)
	}
	stored := repository.NewStoredHash(rc)
	r, err := repository.OpenBody(stored, part.Compression, nil, part.Meta())
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("read backup_manifest of parent backup %s: %w", parent.ID, err)
	}
	check := func(n int64, sum []byte) error {
		got, want := hex.EncodeToString(sum), part.SHA256
		if part.StoredSHA256 != "" {
			var err error
			got, _, err = stored.Finish(part.StoredSize)
			if err != nil {
				return fmt.Errorf("read backup_manifest of parent backup %s: %w", parent.ID, err)
			}
			want = part.StoredSHA256
		}
		if n != part.RawSize || got != want {
			return impossible(fmt.Errorf("%w: backup_manifest of parent backup %s in %s has %d bytes with sha256 %s, walvault's manifest says %d bytes with %s: the parent is damaged (walvault verify --full tells what else); take a full backup (or add --fallback-full)",
				ErrRefused, parent.ID, b.Location(), n, got, part.RawSize, want))
		}
		return nil
	}
	return readCloser{r, rc}, check, nil
}

// openManifestCopy opens the plain copy of an encrypted parent's
// backup_manifest, checked against the parent's record before the upload
// begins; check makes sure the upload sent those very bytes.
func openManifestCopy(copies manifestCopies, parent *repository.BackupManifest, recipients *crypt.Recipients) (io.ReadCloser, func(int64, []byte) error, error) {
	f, digest, err := copies.open(parent, recipients)
	if err != nil {
		return nil, nil, err
	}
	check := func(n int64, sum []byte) error {
		if n != parent.PGManifest.RawSize || !bytes.Equal(sum, digest) {
			return fmt.Errorf("the copy of the backup_manifest of parent backup %s changed while it was uploaded", parent.ID)
		}
		return nil
	}
	return f, check, nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// countingHash is a hash that counts what it was given.
type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.Hash.Write(p)
}

// incrementalError explains a BASE_BACKUP INCREMENTAL the server refused
// because its WAL summaries do not cover the time since the parent began;
// other errors pass unchanged.
func incrementalError(err error, parent *repository.BackupManifest) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case strings.HasPrefix(pgErr.Message, "WAL summaries are required"):
		// "WAL summaries are required on timeline N from ... to ...": on a
		// timeline the parent did not start on, the hole is at the switch
		// (a promotion since the parent), not summaries that expired.
		var tli uint32
		var from, to string
		if _, serr := fmt.Sscanf(pgErr.Message, "WAL summaries are required on timeline %d from %s to %s", &tli, &from, &to); serr == nil {
			to = strings.TrimSuffix(to, ",")
			f, ferr := wal.ParseLSN(from)
			t, terr := wal.ParseLSN(to)
			if ferr == nil && terr == nil && f > t {
				// The range runs backwards: the parent began on timeline
				// tli past the point where this server's history left
				// it (taken on the old primary after a failover).
				return impossible(fmt.Errorf("%w: parent backup %s began on timeline %d at %s, after this server's timeline history left timeline %d (at %s): the parent is not in this server's past (it was taken on the old primary after a failover, say): name a backup taken before that point with --parent, or take a full backup (or add --fallback-full) (%w)",
					ErrRefused, parent.ID, tli, from, tli, to, err))
			}
		}
		if _, serr := fmt.Sscanf(pgErr.Message, "WAL summaries are required on timeline %d", &tli); serr == nil && tli != parent.StartTimeline {
			return impossible(fmt.Errorf("%w: parent backup %s began on timeline %d, and PostgreSQL has no WAL summaries of timeline %d back to its switch from there (this server was promoted since the parent): take a full backup on the new timeline (or add --fallback-full) (%w)",
				ErrRefused, parent.ID, parent.StartTimeline, tli, err))
		}
		return impossible(fmt.Errorf("%w: PostgreSQL lacks WAL summaries for part of the WAL since the start of parent backup %s (LSN %s): summarize_wal was off for a while, or the summaries were removed (wal_summary_keep_time shorter than the time between backups): take a full backup now (or add --fallback-full), and keep summarize_wal on (%w)",
			ErrRefused, parent.ID, parent.StartLSN, err))
	case strings.Contains(pgErr.Message, "WAL summarization"):
		return impossible(fmt.Errorf("%w: PostgreSQL cannot take an incremental backup: %w; check summarize_wal and the server log, or take a full backup", ErrRefused, err))
	case strings.HasPrefix(pgErr.Message, "manifest requires WAL") && strings.Contains(pgErr.Hint, "little activity"):
		// A standby starts a backup at its last restartpoint: with no
		// restartpoint since the parent, the new backup would begin
		// before the parent ended (explore25e D).
		return impossible(fmt.Errorf("%w: this standby has made no restartpoint since parent backup %s (little activity on the primary since): run CHECKPOINT on the primary, wait for the standby to replay it, and try again; or take a full backup (or add --fallback-full) (%w)", ErrRefused, parent.ID, err))
	case strings.HasPrefix(pgErr.Message, "manifest requires WAL"):
		return fmt.Errorf("%w: parent backup %s does not fit this server's WAL history: %w; take a full backup", ErrRefused, parent.ID, err)
	}
	return err
}

// prepareIncremental checks that the server can take an incremental
// backup and picks its parent (parentRef, or the newest fitting DONE
// backup).
func prepareIncremental(ctx context.Context, w pg.Wire, b storage.Backend, sys pg.SystemInfo, s serverSettings, parentRef string) (*repository.BackupManifest, error) {
	if err := checkIncrementalServer(ctx, w, s); err != nil {
		return nil, err
	}
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		return nil, fmt.Errorf("look for the parent backup in %s: %w", b.Location(), err)
	}
	return chooseParent(inv, sys, s.VersionNum/10000, parentRef)
}

// incrementalCommand adds INCREMENTAL to a BASE_BACKUP command that
// baseBackupCommand built.
func incrementalCommand(cmd string) string {
	return strings.TrimSuffix(cmd, " )") + ", INCREMENTAL )"
}
