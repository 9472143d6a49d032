package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// BackupOptions are restore's settings, resolved by cmd.
type BackupOptions struct {
	// DataDir is where the cluster is restored: it must be absent (it is
	// created, mode 0700) or an empty directory.
	DataDir string
	// BackupRef is a backup id, or "" / "LATEST" for the newest DONE
	// backup that ends before Target.
	BackupRef string
	Target    Target
	// TablespaceMapping moves tablespaces: OLD location -> NEW location,
	// both absolute. Each NEW (or unmapped OLD) must be absent or empty.
	TablespaceMapping map[string]string
	// Owner is the OS user the restored files are given to. Only root can
	// give files away; as root, "" means "postgres". Not as root, "" (or
	// the current user) leaves the files the caller's.
	Owner string
	// OwnerReads are other files restore_command reads as Owner (the S3
	// CA bundle the settings file names): checked as the identity file
	// is, before anything is written.
	OwnerReads []string
	// RestoreCommand is written as restore_command (cmd builds it: the
	// absolute walvault path, its settings, %f %p); "" writes none.
	RestoreCommand string
	// RestoreCommandAcceptingGap is RestoreCommand with wal-fetch's
	// --accept-gap: written instead when recovery to a time, xid or name
	// target would pass a gap restore found, so that it ends there as
	// PostgreSQL ends a recovery whose target lies past the archive
	// (wal-fetch would otherwise ask for the missing segment until its
	// --timeout). "": RestoreCommand.
	RestoreCommandAcceptingGap string
	// AcceptGap restores to the end of the archive although recovery
	// would stop at a gap before it (checkRecoveryEnd): the WAL archived
	// after the gap is not replayed.
	AcceptGap bool
	// ArchiveOff writes archive_mode = off: a copy of the cluster (a test
	// restore, a reporting clone) that must never archive its own
	// timeline into the repository the original archives to.
	ArchiveOff bool
	// ConfigFile, when set, is a file name relative to DataDir that gets
	// ConfigYAML (repository settings for restore_command, never
	// credentials), written after extraction. It must not clash with a file
	// of the backup.
	ConfigFile string
	ConfigYAML []byte
	// Verify says how the restored files are checked against PostgreSQL's
	// backup_manifest; "" means VerifyStream.
	Verify VerifyMode
	// PGBinDir is where pg_verifybackup is looked for (VerifyPGVerifyBackup,
	// VerifyBoth); "" means /usr/lib/postgresql/<major>/bin, then PATH.
	// Without a usable one the same check is done in Go (VerifyDataDir).
	PGBinDir string
	// Identities decrypt an encrypted repository's parts (nil: none).
	Identities *crypt.Identities
	Log        *slog.Logger
	// Progress shows the download (nil: nothing); MaxRate, above 0,
	// limits it to that many bytes a second.
	Progress *progress.Output
	MaxRate  int64
	// Now is the clock for the future-target check and the note in
	// postgresql.auto.conf; nil means time.Now.
	Now func() time.Time

	// observe, when set, is called after extracted entries were made
	// visible (from the extracting goroutines), and with failed set once a
	// restore failed, before it cleans up: a test looks at the target then.
	observe func(failed bool)
	// firstSegment, when set, says whether the segment recovery reads
	// first can be used, asked beside the first layer's backup_manifest
	// and waited for before anything is extracted.
	firstSegment func() error
}

// VerifyMode says how a restore proves its files match backup_manifest.
type VerifyMode string

const (
	// VerifyStream checks every file as it is written: its size and its
	// manifest checksum computed on the bytes going to disk; at the end,
	// that no listed file is missing. No second reading pass.
	VerifyStream VerifyMode = "stream"
	// VerifyPGVerifyBackup reads every restored file again after
	// extraction: pg_verifybackup -n when a usable one is installed, else
	// the same check in Go (VerifyDataDir).
	VerifyPGVerifyBackup VerifyMode = "pg_verifybackup"
	// VerifyBoth does both.
	VerifyBoth VerifyMode = "both"
)

// ParseVerifyMode reads a --verify value; "" is VerifyStream.
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch m := VerifyMode(s); m {
	case "":
		return VerifyStream, nil
	case VerifyStream, VerifyPGVerifyBackup, VerifyBoth:
		return m, nil
	}
	return "", fmt.Errorf("unknown verification %q: use stream (check each file as it is written, the default), pg_verifybackup (read the restored files again with pg_verifybackup -n) or both", s)
}

func (m VerifyMode) stream() bool { return m == "" || m == VerifyStream || m == VerifyBoth }
func (m VerifyMode) readPass() bool {
	return m == VerifyPGVerifyBackup || m == VerifyBoth
}

// BackupResult says what RestoreBackup restored.
type BackupResult struct {
	Backup repository.BackupManifest
	// Bytes is the size of the tar streams extracted (raw, uncompressed).
	Bytes   int64
	Elapsed time.Duration
	// Verified says how the result was checked against backup_manifest.
	Verified string
	// Warnings are what the restore found about the WAL recovery will
	// replay: a gap before the archive's end it stops at (a restore with
	// a target, or AcceptGap), a timeline it leaves that went on past the
	// branch point (checkRecoveryEnd).
	Warnings []string
	// NoConfigFile: the backup holds no postgresql.conf (its cluster keeps
	// its configuration outside the data directory, as Debian's and
	// Ubuntu's do), so the server starts only once it is given one.
	NoConfigFile bool
}

// NoConfigFileWarning says what a backup without postgresql.conf needs.
const NoConfigFileWarning = "the backup holds no postgresql.conf (its cluster kept its configuration outside the data directory, as Debian and Ubuntu do in /etc/postgresql/MAJOR/NAME): PostgreSQL will not start until the restored cluster has one; copy postgresql.conf, pg_hba.conf and pg_ident.conf from the source cluster's configuration (with data_directory, hba_file and ident_file pointing here), or create a cluster configuration for it (pg_createcluster on Debian); archiving is then whatever that configuration says"

// maxParallelArchives bounds how many tar streams (base.tar and
// tablespaces) are extracted at once. Memory per stream is about 10 MiB
// (an lz4 decoder with 4 MiB blocks, two 1 MiB copy buffers), so restore
// stays far below 150 MiB whatever the database size.
const maxParallelArchives = 4

// RestoreBackup restores a base backup from b into opts.DataDir, ready for
// point-in-time recovery to opts.Target:
//
//  1. choose the backup (ChooseBackup) and refuse a target in the future
//     or, for an lsn target, beyond the archived WAL;
//  2. refuse a DataDir or tablespace location that exists and is not an
//     empty directory (never touching it), then create them (0700);
//  3. download, decompress and extract every archive as a stream, each
//     part checked against its size and sha256 (ErrCorrupt names a bad
//     part). Files are written into a hidden staging directory inside
//     each target and moved into place only once every part up to their
//     end is verified (stager), so no unverified byte is ever visible;
//     with opts.Verify stream (the default) each file is also checked
//     against backup_manifest as it is written (manifestCheck).
//     global/pg_control is written last, so a restore interrupted midway
//     leaves a directory PostgreSQL refuses to start;
//  4. write backup_manifest, tablespace_map (remapped) and pg_tblspc links,
//     recovery.signal, the recovery settings in postgresql.auto.conf, and
//     opts.ConfigFile;
//  5. with opts.Verify pg_verifybackup or both, read the result again
//     against backup_manifest (pg_verifybackup -n, or the same check in
//     Go); hand the files to opts.Owner and flush everything to disk with
//     one syncfs per file system.
//
// An incremental backup restores with its chain (repository.Chain; see
// chain.go): every part of every backup of it is proven present before
// step 2, step 3 runs for each backup in order, each applied onto what
// the ones before left, and the result is reduced to the newest backup's
// files, with backup_label and backup_manifest as pg_combinebackup writes
// them.
//
// On any failure after step 2, everything written is removed: directories
// restore created are deleted, ones that existed empty are emptied.
func RestoreBackup(ctx context.Context, b storage.Backend, opts BackupOptions) (res BackupResult, err error) {
	began := time.Now()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b = seeHidden(b, log) // objects hidden by delete markers are still restored
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	t := opts.Target
	if err := t.Validate(); err != nil {
		return res, err
	}
	if opts.DataDir == "" {
		return res, errors.New("no data directory given to restore into")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return res, err
	}
	// A data directory given as a link to an empty one (Debian's
	// /var/lib/postgresql/15/main -> /srv/...) is restored where it leads:
	// the walks that hand files to the server's user, prune an
	// incremental chain and look for unlisted files do not enter a link.
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = real
	} else if fi, lerr := os.Lstat(dataDir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(dataDir)
		return res, fmt.Errorf("data directory %s is a link to %s, which does not lead to a directory (%v): create the directory it leads to, or give another path", dataDir, target, err)
	}
	if _, err := ParseVerifyMode(string(opts.Verify)); err != nil {
		return res, err
	}
	for _, cmd := range []string{opts.RestoreCommand, opts.RestoreCommandAcceptingGap} {
		if _, err := quoteConfValue(cmd); err != nil {
			return res, fmt.Errorf("restore_command: %w", err)
		}
	}
	restoreCommand := opts.RestoreCommand
	if opts.ConfigFile != "" && (!filepath.IsLocal(opts.ConfigFile) || filepath.Clean(opts.ConfigFile) != opts.ConfigFile) {
		return res, fmt.Errorf("config file %q must be a clean path relative to the data directory", opts.ConfigFile)
	}
	own, err := resolveOwner(opts.Owner)
	if err != nil {
		return res, err
	}
	if own != nil && opts.Identities != nil && opts.Identities.Path() != "" {
		// restore_command reads it as the owner, at the first WAL file.
		if err := own.canRead(opts.Identities.Path()); err != nil {
			return res, fmt.Errorf("the identity file %s decrypts the WAL restore_command fetches as %s, the server's user, who cannot read it: %w; make it %s's and private (chown %s %s; chmod 600 %s), in a directory %s can search, or copy it so and point decrypt-with there; nothing was restored", opts.Identities.Path(), own.name, err, own.name, own.name, opts.Identities.Path(), opts.Identities.Path(), own.name)
		}
	}
	for _, p := range opts.OwnerReads {
		if own == nil || p == "" {
			continue
		}
		if err := own.canRead(p); err != nil {
			return res, fmt.Errorf("restore_command reads %s as %s, the server's user, who cannot read it: %w; make it readable by %s (in a directory %s can search), or copy it so and point the setting there; nothing was restored", p, own.name, err, own.name, own.name)
		}
	}
	if t.Time != nil {
		if n := now(); t.Time.After(n) {
			return res, fmt.Errorf("the target time %s is in the future (now it is %s): recovery would replay all archived WAL and never reach it; give a past time, or no target to restore everything", formatTargetTime(*t.Time), formatTargetTime(n.In(t.Time.Location())))
		}
	}

	// b reads through delete markers, so its listing shows hidden
	// objects too: a backup or segment a marker hides still restores.
	// A restore needs the backups and the WAL that decides their status;
	// an LSN target also the WAL up to it, listed once a backup is chosen.
	load := repository.LoadOptions{BackupsOnly: true, Identities: opts.Identities}
	if ref := opts.BackupRef; !repository.IsLatest(ref) {
		load.ReadAhead = []string{ref}
	}
	inv, err := repository.LoadInventory(ctx, b, load)
	if err != nil {
		return res, err
	}
	backups, err := inv.Catalog()
	if err != nil {
		return res, err
	}
	bi, passed, err := ChooseBackupFollowing(ctx, b, inv, backups, opts.BackupRef, t, log)
	if err != nil {
		return res, err
	}
	m := *bi.Manifest
	res.Backup = m
	if err := timelineExists(ctx, b, m, t.Timeline); err != nil {
		return res, err
	}
	chain, err := repository.Chain(backups, bi.ID)
	if err != nil {
		return res, fmt.Errorf("%w: %w", repository.ErrNoBackup, err)
	}
	var branch *branchBefore // an LSN target's branch point passed, if any
	if t.LSN != nil {
		if t.Timeline == "" {
			// An LSN past a branch point names a point on each timeline:
			// the checks a recovery to latest gets (explore24b F3).
			if branch, err = lsnPastBranch(ctx, b, inv, m, *t.LSN); err != nil {
				return res, err
			}
		}
		inclusive := t.Inclusive == nil || *t.Inclusive
		if res.Warnings, err = checkLSNArchived(ctx, b, inv, m, *t.LSN, inclusive, t.TimelineSetting(), opts.Identities, log); err != nil {
			if branch != nil {
				err = fmt.Errorf("%w; the target LSN lies past where timeline %d branched off timeline %d (%s): if it is timeline %d's, give --target-timeline %d", err, branch.child, branch.parent, branch.at, branch.parent, branch.parent)
			}
			return res, err
		}
		for _, w := range res.Warnings {
			log.Warn("the target may lie past the archived WAL", "why", w)
		}
	} else if !t.Immediate {
		var gap bool
		if res.Warnings, gap, err = checkRecoveryEnd(ctx, b, inv, m, t, opts.AcceptGap, opts.Identities, log); err != nil {
			return res, err
		}
		if gap && !t.IsLatest() && opts.RestoreCommandAcceptingGap != "" {
			restoreCommand = opts.RestoreCommandAcceptingGap
		}
		for _, w := range res.Warnings {
			log.Warn("recovery will not replay all archived WAL", "why", w)
		}
	}
	// Said by ChooseBackupFollowing's log already; in the result too, for
	// restore's summary and the drill's record.
	res.Warnings = append(passed, res.Warnings...)
	// warn logs what restore found and keeps it for the result.
	warn := func(msg, why string) {
		log.Warn(msg, "why", why)
		res.Warnings = append(res.Warnings, why)
	}
	if branch != nil && branch.parentWentOn {
		warn("the target LSN names a point on more than one timeline",
			fmt.Sprintf("the target LSN %s lies past where timeline %d branched off timeline %d (%s), and timeline %d holds WAL past that point too: the same LSN names another point there. This restore follows timeline %d; if timeline %d is the live server's and %d a restored copy's, restore with --target-timeline %d",
				t.LSN, branch.child, branch.parent, branch.at, branch.parent, branch.child, branch.parent, branch.child, branch.parent))
	}
	if newer, older, bad := repository.Misordered(backups); bad && t.Time != nil && opts.BackupRef == "" {
		warn("backups' times disagree with their WAL positions",
			repository.MisorderedWhy(newer, older)+": the backup for --target-time is chosen by the times, which may be wrong here; check the choice, or name the backup with --backup")
	}
	if (t.XID != "" || t.Name != "") && repository.IsLatest(opts.BackupRef) {
		if older := olderDone(backups, m); older != "" {
			// Neither can be placed among the backups: the newest goes,
			// and a target before its end fails only once replayed
			// (explore24b F4).
			warn("the backup for an xid or restore point target is the newest",
				fmt.Sprintf("an xid or a restore point cannot be placed among the backups, so the newest, %s (ended %s), is restored: if the target came before that, PostgreSQL stops with \"recovery ended before configured recovery target was reached\"; restore then with --backup %s or another older one (backup-list)",
					m.ID, m.StopTime.UTC().Format(time.RFC3339), older))
		}
	}
	for _, c := range chain {
		if c.Manifest != nil && c.Manifest.ChecksumsUnverified {
			warn("restoring a backup whose page checksums were not verified",
				fmt.Sprintf("backup %s was taken with --no-verify-checksums: a page whose checksum did not match then is restored as it was; PostgreSQL reports it when read (pg_amcheck finds it)", c.ID))
		}
	}
	base, tbs, err := planArchives(m, opts.TablespaceMapping, dataDir)
	if err != nil {
		return res, err
	}
	if m.PGManifest.Key == "" {
		return res, fmt.Errorf("backup %s has no PostgreSQL backup_manifest, so its restore could not be verified: restore another backup", m.ID)
	}
	layers, err := planLayers(chain, base, tbs)
	if err != nil {
		return res, err
	}

	if m.PGManifest.Encryption != "" {
		if err := checkDecryptable(ctx, b, m, opts.Identities, !t.IsLatest(), log); err != nil {
			return res, err
		}
	}
	for _, l := range layers[:len(layers)-1] {
		if err := checkPartsDecryptable(l.m, opts.Identities); err != nil {
			return res, err
		}
	}
	if len(layers) > 1 {
		if err := checkChainPresent(ctx, b, layers); err != nil {
			return res, err
		}
	}

	// Check every target directory before creating any.
	dd, err := checkTargetDir(dataDir, "data directory")
	if err != nil {
		return res, err
	}
	dirs := []*targetDir{dd}
	for _, tb := range tbs {
		d, err := checkTargetDir(tb.location, "tablespace "+tb.oid+" location")
		if err != nil {
			if tb.location == tb.oldLocation {
				err = fmt.Errorf("%w (map the tablespace elsewhere with --tablespace-mapping %s=NEW)", err, tb.oldLocation)
			}
			return res, err
		}
		dirs = append(dirs, d)
	}
	metered := m // what the download shows: the whole chain
	var chainIDs []string
	for _, l := range layers[:len(layers)-1] {
		metered.Stored += l.m.Stored
		metered.RawBytes += l.m.RawBytes
		chainIDs = append(chainIDs, l.m.ID)
	}
	log.Info("restoring backup", "backup_id", m.ID, "start_lsn", m.StartLSN, "stop_lsn", m.StopLSN,
		"stop_time", m.StopTime.UTC().Format(time.RFC3339), "target", t.String(), "data_dir", dataDir,
		"tablespaces", len(tbs), "bytes_raw", metered.RawBytes, "builds_on", strings.Join(chainIDs, ","))
	defer func() {
		if err == nil {
			return
		}
		if opts.observe != nil {
			opts.observe(true)
		}
		log.Warn("restore failed: removing what it wrote", "backup_id", m.ID, "data_dir", dataDir, "error", err)
		for _, d := range dirs {
			if cerr := d.clean(); cerr != nil {
				err = fmt.Errorf("%w; cleaning up %s %s also failed: %v (remove it by hand: it is not a usable restore)", err, d.what, d.path, cerr)
			}
		}
	}()
	for _, d := range dirs {
		if err := d.create(); err != nil {
			return res, err
		}
	}
	b, shown := meterDownloads(b, opts, log, metered)
	defer func() { shown.Done(err == nil) }()

	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return res, err
	}
	defer root.Close()
	var ignore []string
	if opts.ConfigFile != "" {
		ignore = append(ignore, filepath.ToSlash(opts.ConfigFile))
	}
	// Whether the segment recovery reads first carries the metadata
	// wal-fetch checks it against (a copy of the repository by a tool
	// that drops S3 user metadata does not), asked beside the download's
	// first requests: refused now, not after the whole download.
	firstSeg := make(chan error, 1)
	go func() { firstSeg <- usableFirstSegment(ctx, b, inv, m) }()
	opts.firstSegment = func() error { return <-firstSeg }
	n, baseRes, verified, err := restoreLayers(ctx, b, layers, root, tbs, opts, ignore)
	res.Bytes = n
	if err != nil {
		return res, err
	}
	if err := keepGroupAccess(root, dirs); err != nil {
		return res, err
	}
	if err := root.Rename(pgManifestPartial, pgManifestFile); err != nil {
		return res, fmt.Errorf("put %s in place: %w", pgManifestFile, err)
	}
	if _, err := root.Lstat("postgresql.conf"); errors.Is(err, os.ErrNotExist) {
		res.NoConfigFile = true
		warn("restored a backup without postgresql.conf", NoConfigFileWarning)
	}
	// A standby's backup holds its standby.signal: left there, the
	// restored server would start as a standby, stream from the primary
	// its primary_conninfo names and never promote (and a promoted one
	// would find recovery.signal again at its next start).
	switch err := root.Remove(standbySignal); {
	case err == nil:
		warn("removed the standby's standby.signal", "the backup was taken on a standby: its standby.signal was removed, so the restored server recovers from the archive and opens (to make a standby of it, add standby.signal and primary_conninfo yourself)")
	case !errors.Is(err, fs.ErrNotExist):
		return res, fmt.Errorf("remove the standby's %s from the restored data directory: %w", standbySignal, err)
	}
	rewritten, err := finishTablespaces(root, baseRes.tablespaceMap, tbs, m.ID)
	if err != nil {
		return res, err
	}
	archiveMode := ""
	switch {
	case opts.ArchiveOff:
		archiveMode = "off"
	case archiveModeAlways(root):
		// With always, a recovering server archives again what it
		// restores: wal-receive's zero-padded partial of the last
		// segment too, under the segment's full name, where the old
		// primary's complete copy is then refused for good (explore25e
		// A). on archives the same once promoted.
		archiveMode = "on"
		warn("archive_mode = always of the backup set to on", "the backup's configuration sets archive_mode = always, with which a recovering server archives again every file it restores, a zero-padded partial segment too; restore set archive_mode = on in postgresql.auto.conf, which archives the same once the server is promoted (a standby built from this restore may set always again)")
	}
	block, err := renderRecoveryConf(restoreCommand, t, archiveMode, m.ID, now())
	if err != nil {
		return res, err
	}
	if err := writeRecoverySettings(root, block); err != nil {
		return res, err
	}
	if changed, err := disableRecoveryLines(root); err != nil {
		return res, err
	} else if changed {
		ignore = append(ignore, mainConfName)
		warn("recovery settings in the backup's postgresql.conf commented out",
			mainConfName+" of the backup set recovery_target settings (an earlier point-in-time restore done by hand?): restore commented them out, marked \""+strings.TrimSpace(disabledPrefix)+"\", so that only its own apply")
	}
	if rewritten {
		ignore = append(ignore, tablespaceMapName)
	}
	if opts.ConfigFile != "" {
		if err := writeNewFile(root, opts.ConfigFile, opts.ConfigYAML); err != nil {
			return res, err
		}
	}
	if err := root.Rename(pgControlPartial, pgControlName); err != nil {
		return res, fmt.Errorf("put %s in place: %w", pgControlName, err)
	}

	shown.SetStatus("downloaded; verifying and syncing")
	if opts.Verify.readPass() {
		how, err := verify(ctx, dataDir, m, ignore, opts.PGBinDir)
		if err != nil {
			return res, err
		}
		verified = append(verified, how)
	}
	res.Verified = strings.Join(verified, "; ")
	var paths []string
	for _, d := range dirs {
		if own != nil {
			if err := chownTree(d.path, own); err != nil {
				return res, err
			}
		}
		paths = append(paths, d.path)
	}
	if err := syncDirs(paths); err != nil {
		return res, err
	}
	if own != nil {
		for _, d := range dirs {
			if err := own.canReach(d.path); err != nil {
				log.Warn("the restored files belong to "+own.name+", who may not reach them", "problem", err,
					"hint", "make every parent directory searchable by "+own.name+" (chmod o+x) or restore elsewhere")
			}
		}
	}
	res.Elapsed = time.Since(began)
	log.Info("restored backup", "backup_id", m.ID, "data_dir", dataDir, "bytes", res.Bytes,
		"elapsed", res.Elapsed.Round(time.Millisecond), "verified", res.Verified, "target", t.String())
	return res, nil
}

// restoreLayers fetches and extracts each backup of layers (one, or an
// incremental chain: the full backup first) into root and the tablespace
// locations, each checked against its own backup_manifest as it is
// written when opts.Verify says so. A chain is then reduced to what its
// newest backup holds and given backup_manifest and backup_label as
// pg_combinebackup writes them. It returns the raw bytes extracted, what
// the newest base.tar held, and how the files were checked.
func restoreLayers(ctx context.Context, b storage.Backend, layers []layer, root *os.Root, tbs []tablespacePlan, opts BackupOptions, ignore []string) (total int64, baseRes extractResult, verified []string, err error) {
	newest := len(layers) - 1
	var (
		names *chainNames
		sums  *chainSums
	)
	if newest > 0 {
		names, sums = newChainNames(), newChainSums()
	}
	var files int
	var bytes int64
	for i, l := range layers {
		if i > 0 {
			if err := root.Remove(pgManifestPartial); err != nil {
				return total, baseRes, nil, err
			}
		}
		// base.tar's first parts download while backup_manifest is
		// fetched and loaded (a round trip less in series): nothing of
		// them is written before the manifest is checked, and what is
		// fetched ahead is bounded (partStream's queues), so a damaged
		// manifest still fails the restore before the bulk is read.
		ahead := newPartStream(ctx, b, l.m.ID, l.base.Parts)
		ahead.ids = opts.Identities
		ahead.fill()
		defer ahead.Close() // a no-op once extractArchive has closed it
		if err := fetchPGManifest(ctx, b, l.m, root, opts.Identities); err != nil {
			return total, baseRes, nil, err
		}
		if i == 0 && opts.firstSegment != nil {
			if err := opts.firstSegment(); err != nil {
				return total, baseRes, nil, err
			}
		}
		xopts := extractOptions{ids: opts.Identities, sums: sums}
		if opts.observe != nil {
			xopts.promoted = func() { opts.observe(false) }
		}
		if opts.Verify.stream() {
			// Loaded before any download: a damaged manifest, or a checksum
			// algorithm walvault cannot compute, fails the restore at once.
			if xopts.check, err = loadManifestCheck(ctx, root, l.manifestIgnore(ignore)); err != nil {
				return total, baseRes, nil, err
			}
			if err := xopts.check.checkSystemID(l.m.ID, l.m.SystemID); err != nil {
				return total, baseRes, nil, err
			}
		}
		if i > 0 {
			bs, err := controlBlockSize(root)
			if err != nil {
				return total, baseRes, nil, fmt.Errorf("backup %s: %w", layers[0].m.ID, err)
			}
			xopts.layer = &layerApply{blockSize: bs, sums: sums}
			if i == newest {
				xopts.layer.names = names
			}
		}
		n, lres, err := extractArchives(ctx, b, l.m, l.base, ahead, l.tbs, root, xopts)
		total += n
		if err != nil {
			return total, baseRes, nil, err
		}
		if opts.Verify.stream() {
			st, err := xopts.check.finish(ctx)
			if err != nil {
				return total, baseRes, nil, fmt.Errorf("restore of backup %s: %w", l.m.ID, err)
			}
			files, bytes = files+st.Files, bytes+st.Bytes
		}
		if !lres.backupLabel || !lres.pgControl {
			return total, baseRes, nil, fmt.Errorf("%w: base.tar of backup %s lacks backup_label or global/pg_control: it is not a PostgreSQL base backup", ErrCorrupt, l.m.ID)
		}
		if newest > 0 {
			var parent *repository.BackupManifest
			if i > 0 {
				parent = &layers[i-1].m
			}
			if err := checkLabelLink(root, l.m, parent); err != nil {
				return total, baseRes, nil, err
			}
		}
		baseRes = lres
	}
	if opts.Verify.stream() {
		what := "backup_manifest checked by walvault as the files were written"
		if newest > 0 {
			what = fmt.Sprintf("each backup_manifest of the chain's %d backups checked by walvault as the files were written", len(layers))
		}
		verified = append(verified, fmt.Sprintf("%s: %d files, %d bytes", what, files, bytes))
	}
	if newest == 0 {
		return total, baseRes, verified, nil
	}
	if err := pruneToNewest(ctx, root, root.Name(), "", names); err != nil {
		return total, baseRes, verified, err
	}
	troots := map[string]*os.Root{}
	defer func() {
		for _, r := range troots {
			r.Close()
		}
	}()
	for _, tb := range tbs {
		tr, err := os.OpenRoot(tb.location)
		if err != nil {
			return total, baseRes, verified, err
		}
		troots[tb.oid] = tr
		if err := pruneToNewest(ctx, tr, tb.location, pgTblspcDir+"/"+tb.oid+"/", names); err != nil {
			return total, baseRes, verified, err
		}
	}
	if err := rewriteBackupLabel(root); err != nil {
		return total, baseRes, verified, err
	}
	st, err := writeCombinedManifest(ctx, root, troots, names, sums)
	if err != nil {
		return total, baseRes, verified, fmt.Errorf("restore of backup %s: %w", layers[newest].m.ID, err)
	}
	verified = append(verified, fmt.Sprintf("%d files reconstructed from incremental ones, each as long as its incremental file says, listed with their checksums in a combined backup_manifest (%d computed from the blocks the chain changed, %d read back)", st.Files, st.Files-st.Read, st.Read))
	return total, baseRes, verified, nil
}

// verify checks the restored directory with pg_verifybackup when a usable
// one is installed, else with VerifyDataDir, and says which.
func verify(ctx context.Context, dataDir string, m repository.BackupManifest, ignore []string, binDir string) (string, error) {
	tool, why := findPGVerifyBackup(ctx, binDir, m.PGVersion/10000)
	if tool.path != "" {
		if err := tool.run(ctx, dataDir, ignore); err != nil {
			return "", err
		}
		return "pg_verifybackup -n (" + tool.path + ")", nil
	}
	st, err := VerifyDataDir(ctx, dataDir, ignore)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("backup_manifest checked by walvault: %d files, %d bytes (no usable pg_verifybackup: %s)", st.Files, st.Bytes, why), nil
}

// ConfigFileMarker starts every settings file restore writes (cmd puts it
// on the first line). A backup taken from a restored cluster carries the
// previous restore's file; one that starts with the marker is ours and is
// replaced, anything else of the backup's never is.
const ConfigFileMarker = "# Written by walvault restore"

// writeNewFile creates name (mode 0600), refusing to replace anything but a
// settings file an earlier restore wrote.
func writeNewFile(root *os.Root, name string, data []byte) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if old, err := root.ReadFile(name); err == nil && bytes.HasPrefix(old, []byte(ConfigFileMarker)) {
		flags = os.O_WRONLY | os.O_TRUNC
	}
	f, err := root.OpenFile(name, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("config file %s would replace a file of the backup: choose another name", name)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// fetchPGManifest writes PostgreSQL's backup_manifest, verified, into the
// data directory. It comes first, beside only the first parts of base.tar:
// it is small, and a backup whose manifest is damaged fails before
// gigabytes are downloaded. It stays under a
// hidden name (pgManifestPartial) until RestoreBackup has extracted and
// checked the archives: like every file, it is visible only once the
// restore's data is verified.
func fetchPGManifest(ctx context.Context, b storage.Backend, m repository.BackupManifest, root *os.Root, ids *crypt.Identities) error {
	ps := newPartStream(ctx, b, m.ID, []repository.BackupPart{m.PGManifest})
	ps.ids = ids
	defer ps.Close()
	f, err := root.OpenFile(pgManifestPartial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", pgManifestFile, err)
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, ps, make([]byte, 256<<10))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore %s of backup %s: %w", pgManifestFile, m.ID, err)
	}
	return nil
}

// extractArchives extracts base.tar into root and each tablespace archive
// into its location, several at once. baseParts is base.tar's part stream,
// already started. It returns the raw bytes read.
func extractArchives(ctx context.Context, b storage.Backend, m repository.BackupManifest, base repository.BackupArchive, baseParts *partStream, tbs []tablespacePlan, root *os.Root, xopts extractOptions) (int64, extractResult, error) {
	links := map[string]string{}
	for _, tb := range tbs {
		links[tb.oid] = tb.location
	}
	var total atomic.Int64
	var baseRes extractResult
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelArchives)
	g.Go(func() error {
		o := xopts
		o.base, o.tablespaceLinks = true, links
		o.layer = xopts.layer.forArchive("")
		res, n, err := extractArchive(gctx, baseParts, m.ID, base, root, o)
		total.Add(n)
		baseRes = res
		return err
	})
	for _, tb := range tbs {
		g.Go(func() error {
			troot, err := os.OpenRoot(tb.location)
			if err != nil {
				return err
			}
			defer troot.Close()
			o := xopts
			o.manifestPrefix = pgTblspcDir + "/" + tb.oid + "/"
			o.layer = xopts.layer.forArchive(o.manifestPrefix)
			ps := newPartStream(gctx, b, m.ID, tb.archive.Parts)
			ps.ids = o.ids
			_, n, err := extractArchive(gctx, ps, m.ID, tb.archive, troot, o)
			total.Add(n)
			return err
		})
	}
	err := g.Wait()
	return total.Load(), baseRes, err
}

// errAborted ends a part stream whose tar reader gave up; errAbortedCheck
// also asks the stream to finish the current part, since what stopped the
// reader may be garbage from a damaged part.
var (
	errAborted            = errors.New("extraction aborted")
	errAbortedCheck error = abortedError("extraction aborted on malformed data")
)

// abortedError is an errAborted with a reason. It is a type rather than
// fmt.Errorf because package variables are built in every process, and
// fmt's printer comes from a sync.Pool, which under -race allocates anew
// at random.
type abortedError string

func (e abortedError) Error() string { return string(e) }
func (e abortedError) Unwrap() error { return errAborted }

// extractArchive streams one archive's parts (ps, which it closes) through
// a pipe into the tar extractor: download and decompression run in a
// goroutine per part (the next part's fetched ahead, see partStream),
// hashing in another, file writes in this one. Every part is read to its
// end (and so verified), also the padding after the tar's end marker.
func extractArchive(ctx context.Context, ps *partStream, backupID string, a repository.BackupArchive, root *os.Root, opts extractOptions) (extractResult, int64, error) {
	opts.verified = ps.Verified
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, ps) // ps.WriteTo: no buffer of its own
		if errors.Is(err, errAbortedCheck) {
			// The extractor stopped at data it could not use, perhaps
			// garbage from a damaged part: finish that part (at most
			// one part size more) so a checksum mismatch is reported as
			// what it is.
			if verr := ps.drainCurrent(); verr != nil {
				err = verr
			}
		}
		ps.Close()
		pw.CloseWithError(err)
		done <- err
	}()
	res, err := extractTar(ctx, pr, root, opts)
	if err == nil {
		_, err = io.Copy(io.Discard, pr)
	}
	if err != nil {
		// A local failure (disk full, permissions) or a cancellation says
		// nothing about the part: do not download more of it.
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) || ctx.Err() != nil {
			pr.CloseWithError(errAborted)
		} else {
			pr.CloseWithError(errAbortedCheck)
		}
	}
	perr := <-done
	if perr != nil && !errors.Is(perr, errAborted) {
		err = perr // the root cause: a bad or unreadable part
	}
	if err != nil {
		return res, ps.total, fmt.Errorf("restore %s of backup %s: %w", a.Name, backupID, err)
	}
	return res, ps.total, nil
}

// checkLSNArchived refuses an lsn target that recovery from backup m
// could not reach: a segment it reads on the way, or the target's own, is
// not archived on the timelines it follows (timeline: the
// recovery_target_timeline setting), or the target lies past the last
// record of the last segment archived before one that is not. PostgreSQL
// would stop with "recovery ended before configured recovery target was
// reached" after the whole restore was written. It lists only that WAL,
// not all of wal/, and reads the target's segment only when the next one
// is not archived.
func checkLSNArchived(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest, target wal.LSN, inclusive bool, timeline string, ids *crypt.Identities, log *slog.Logger) ([]string, error) {
	start, tl, ok, err := recoveryStart(inv, m, timeline)
	if !ok || err != nil {
		return nil, err
	}
	r := repository.RecoveryRange{Start: start, Target: target, Timeline: tl}
	if err := inv.LoadRecoveryWAL(ctx, b, r); err != nil {
		return nil, err
	}
	reach, err := inv.WAL.RecoveryReach(r)
	if err != nil {
		return nil, fmt.Errorf("the target LSN %s cannot be reached from backup %s: %w", target, m.ID, err)
	}
	if reach.OK {
		// Recovery stops at the first record at or past the target. Past
		// the target's segment there is one when the next segment is
		// archived; within the target's segment only up to its last
		// record, before the padding of a switch (pg_switch_wal,
		// archive_timeout).
		next, found, err := inv.ArchivedAfter(ctx, b, reach.TargetSegment)
		if err != nil {
			return nil, err
		}
		following, err := reach.TargetSegment.Next(m.WALSegmentSize)
		if err != nil {
			return nil, err
		}
		if found && next == following {
			return nil, nil
		}
		// On the followed timeline the next segment recovery reads is the
		// following one there; on an ancestor it may be a later
		// timeline's, which the listing above does not ask for.
		if reach.TargetSegment.Timeline == reach.Timeline {
			if last, known := lastRecordIn(ctx, b, reach.TargetSegment, ids, log); known {
				if target <= last.At {
					return nil, nil
				}
				return nil, unreachableInSegment(target, reach.TargetSegment, following, last, found)
			}
		}
		// The segment's records could not be read. Its being the newest
		// archived is the usual case (the next is being written): if its
		// WAL ends before the target, PostgreSQL itself stops short, so
		// no warning there.
		if !found {
			return nil, nil
		}
		return []string{fmt.Sprintf("the target LSN %s lies in %s, the last segment archived on timeline %d before a missing one (later ones are archived): if that segment was closed by a WAL switch before the target (pg_switch_wal, archive_timeout), its WAL ends there and PostgreSQL stops with \"recovery ended before configured recovery target was reached\"; a target before the switch, or archiving more WAL, avoids it", target, reach.TargetSegment, reach.TargetSegment.Timeline)}, nil
	}
	// The first segment of a timeline recovery switches to, missing while
	// its parent's copy is archived: PostgreSQL reads the parent's copy,
	// which holds the same WAL up to the switch point, so a target before
	// it is reached there (explore24e F3).
	fb, err := inv.FallsBack(ctx, b, r, reach.Missing)
	if err != nil {
		return nil, err
	}
	if fb != nil && target <= fb.SwitchPoint {
		if !inclusive {
			return nil, nil
		}
		// Inclusive, recovery stops after the first record at or past
		// the target, which may be the parent's first past the branch
		// (explore24g F1).
		return nil, fmt.Errorf("the target LSN %s lies at or before the point where timeline %d branched off timeline %d (%s), and none of timeline %d's WAL is archived: recovery reads timeline %d's copy of that segment, and an inclusive LSN target stops after the first record at or past it, which may be timeline %d's first past the branch, WAL timeline %d never had; give --target-inclusive=false (recovery then stops before it), or --target-timeline %d for timeline %d's WAL",
			target, fb.Child, fb.Parent, fb.SwitchPoint, fb.Child, fb.Parent, fb.Parent, fb.Child, fb.Parent, fb.Parent)
	}
	needed := fmt.Sprintf("segment %s, which recovery reads on the way to the target in %s,", reach.Missing, reach.TargetSegment)
	if reach.Missing == reach.TargetSegment {
		needed = fmt.Sprintf("segment %s, which holds the target,", reach.Missing)
	}
	if reach.Beyond {
		end, _ := reach.Missing.StartLSN(m.WALSegmentSize)
		return nil, fmt.Errorf("the target LSN %s is beyond the archive: on timeline %d the archived WAL ends at %s (%s is not archived), so recovery could never reach it; archive more WAL (SELECT pg_switch_wal() on the server) and wait for it, or choose an earlier target", target, reach.Missing.Timeline, end, needed)
	}
	return nil, fmt.Errorf("the target LSN %s cannot be reached from backup %s: WAL %s is missing from the archive, though later segments are archived (a gap); wal-push it from the server's pg_wal if it is still there, or choose a target before it", target, m.ID, needed)
}

// recoveryStart is where recovery from backup m starts (its start_wal)
// and the timeline it follows (the recovery_target_timeline setting, as a
// number). ok is false when the WAL checks cannot run: a manifest without
// the segment size (an old one: they are optional), or no WAL index.
func recoveryStart(inv *repository.Inventory, m repository.BackupManifest, setting string) (start wal.Segment, tl wal.TimelineID, ok bool, err error) {
	if wal.ValidateSegmentSize(m.WALSegmentSize) != nil || inv.WAL == nil {
		return wal.Segment{}, 0, false, nil
	}
	if start, err = wal.ParseSegmentName(m.StartWAL); err != nil {
		return wal.Segment{}, 0, false, fmt.Errorf("backup %s: start_wal: %w", m.ID, err)
	}
	tl, err = followedTimeline(setting, start)
	return start, tl, err == nil, err
}

// followedTimeline is recovery_target_timeline (Target.TimelineSetting) as a
// number; 0 is latest.
func followedTimeline(setting string, start wal.Segment) (wal.TimelineID, error) {
	switch setting {
	case "", "latest":
		return 0, nil
	case "current":
		return start.Timeline, nil
	}
	n, err := strconv.ParseUint(setting, 10, 32)
	if err != nil {
		return 0, err // Target.Validate refused it already
	}
	return wal.TimelineID(n), nil
}

// FollowedPath is the timeline a recovery from backup m follows under
// setting (Target.TimelineSetting), with what is known of its history (known
// false: no WAL index, or a history file that could not be read).
func FollowedPath(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest, setting string) (tli wal.TimelineID, history []wal.HistoryEntry, known bool, err error) {
	start, target, ok, err := recoveryStart(inv, m, setting)
	if !ok || err != nil {
		return 0, nil, false, err
	}
	return inv.FollowedTimeline(ctx, b, start, target)
}

// ChooseBackupFollowing is ChooseBackup for a recovery that follows a
// timeline (latest, or a number), judging each backup by its manifest's
// first version (firstManifest). A backup that ended on a timeline the
// followed one branched away from before the backup's end cannot reach
// it (PostgreSQL would not find its checkpoint there). Without a named
// backup such a one is passed over, with a warning, when it was taken
// before the followed timeline began (the old timeline's later backups,
// after a point-in-time restore promoted as a new timeline); one taken
// after, under "latest", is refused naming --target-timeline (the old
// timeline went on, the newer one is likely a restored copy's). A named
// backup is refused.
//
// passed says, for the result's warnings, which backups were passed over.
func ChooseBackupFollowing(ctx context.Context, b storage.Backend, inv *repository.Inventory, backups []repository.BackupInfo, ref string, t Target, log *slog.Logger) (chosen repository.BackupInfo, passed []string, err error) {
	skip, firstRead := map[string]bool{}, map[string]bool{}
	for {
		bi, err := chooseBackup(backups, ref, t, skip)
		if err != nil {
			if len(skip) > 0 && errors.Is(err, repository.ErrNoBackup) {
				return bi, passed, fmt.Errorf("%w: no DONE backup can reach the timeline recovery follows (%s passed over, see the warnings): give --target-timeline with the timeline to restore, or take a backup on that timeline", repository.ErrNoBackup, units.Plural(len(skip), "backup"))
			}
			return bi, passed, err
		}
		if !firstRead[bi.ID] {
			// Chosen by what its manifest says: by the first version
			// written, which is walvault's.
			firstRead[bi.ID] = true
			first, changed, err := firstManifest(ctx, b, inv, bi, log)
			if err != nil {
				return bi, passed, err
			}
			if changed {
				for i := range backups {
					if backups[i].ID == bi.ID {
						backups[i].Manifest = &first
					}
				}
				continue
			}
		}
		m := bi.Manifest
		setting := t.TimelineSetting()
		if setting == "current" {
			return bi, passed, nil // the backup's own: no other to reach
		}
		tli, history, known, err := FollowedPath(ctx, b, inv, *m, setting)
		if err != nil || !known {
			return bi, passed, err
		}
		if leads, err := m.LeadsTo(tli, history); err != nil || leads {
			return bi, passed, nil
		}
		why := fmt.Sprintf("backup %s ends at %s on timeline %d, and timeline %d, which recovery follows, branched away from it before that", bi.ID, m.StopLSN, m.StopTimeline, tli)
		if wal.TimelineID(m.StopTimeline) > tli {
			why = fmt.Sprintf("backup %s ends on timeline %d, later than timeline %d, which recovery follows: recovery never goes back to an earlier timeline", bi.ID, m.StopTimeline, tli)
		}
		if !repository.IsLatest(ref) {
			return bi, passed, fmt.Errorf("%w: %s: PostgreSQL would not find the backup's checkpoint on timeline %d; restore an older backup, or give --target-timeline %d to recover along the backup's own timeline", repository.ErrNoBackup, why, tli, m.StopTimeline)
		}
		if setting == "latest" {
			// Which timeline is the live one? A backup taken after the
			// followed timeline came into being says its own timeline
			// went on (the followed one is a restored copy's, promoted
			// and archiving here): "latest" would restore the copy's.
			born, err := b.Stat(ctx, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None))
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return bi, passed, err
			}
			if err == nil && m.StartTime.After(born.ModTime) {
				return bi, passed, fmt.Errorf("%w: %s, and the backup was taken after timeline %d began (%s): timeline %d went on, and timeline %d, which recovery to latest follows (the newest history file), is likely a restored copy's that archived here. To restore timeline %d's newest WAL, give --target-timeline %d; to follow timeline %d, give --backup with a backup from before its branch point (see backup-list)",
					repository.ErrNoBackup, why, tli, born.ModTime.UTC().Format(time.RFC3339), m.StopTimeline, tli, m.StopTimeline, m.StopTimeline, tli)
			}
		}
		hint := fmt.Sprintf("to restore it along its own timeline, give --backup %s --target-timeline %d", bi.ID, m.StopTimeline)
		log.Warn("passing over a backup that cannot reach the timeline recovery follows", "backup_id", bi.ID, "why", why, "hint", hint)
		passed = append(passed, fmt.Sprintf("passed over: %s (%s)", why, hint))
		skip[bi.ID] = true
	}
}

// firstManifest is the first version of bi's manifest where the storage
// keeps versions, and whether it differs from the current one. walvault
// writes a manifest once, so a newer version was put over it by someone
// else: with other times it could make a point-in-time restore pick this
// backup and recover past the target. A listing that fails is judged as
// wal-fetch judges one of WAL (listingFailed).
func firstManifest(ctx context.Context, b storage.Backend, inv *repository.Inventory, bi repository.BackupInfo, log *slog.Logger) (repository.BackupManifest, bool, error) {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return *bi.Manifest, false, nil
	}
	key := repository.BackupManifestKey(bi.ID)
	vs, err := inv.ManifestVersions(ctx, v, bi.ID)
	if err != nil {
		locked := func() bool { return inv.Identity != nil && inv.Identity.Lock().Enabled() }
		return *bi.Manifest, false, listingFailed(b, key, err, locked, "steer the restore to a backup that ends after its target", log)
	}
	if len(vs) < 2 {
		return *bi.Manifest, false, nil
	}
	first, err := repository.LoadBackupManifestVersion(ctx, v, b.Location(), bi.ID, vs[len(vs)-1].ID)
	if err != nil {
		return *bi.Manifest, false, fmt.Errorf("%s holds %d versions, and its first (walvault's) does not load: %w", key, len(vs), err)
	}
	changed := !reflect.DeepEqual(first, *bi.Manifest)
	log.Warn("backup manifest overwritten: it holds versions walvault did not write (it writes each once); using its first version", "key", key, "versions", len(vs), "differs", changed,
		"hint", "the newer versions are not walvault's: the credentials that wrote them may be compromised; delete them by version id (once their lock, if any, expires)")
	return first, changed, nil
}

// usableFirstSegment refuses a restore whose first WAL segment (where
// backup m starts) lacks the sha256 and raw size wal-fetch checks it
// against: recovery could not even start. One HEAD; a segment not found,
// or one that cannot be asked about, is left to the checks that follow.
func usableFirstSegment(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest) error {
	start, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil || inv.Identity == nil {
		return nil
	}
	info, err := repository.StatWAL(ctx, b, wal.FileName{Kind: wal.KindSegment, Timeline: start.Timeline, Segment: start}, inv.Identity.Compression)
	if err != nil {
		return nil
	}
	if _, ok := repository.WALMetadata(info.Metadata); !ok {
		return fmt.Errorf("%w: %s, the segment backup %s's recovery reads first, has no valid sha256/raw-size metadata, so wal-fetch would refuse it and recovery could not start: the repository was likely copied by a tool that drops S3 user metadata (see Repository layout in the README); walvault verify --full lists every such object", ErrCorrupt, info.Key, m.ID)
	}
	return nil
}

// targetAfterArchive says when a target time lies after the newest
// segment recovery can read (the one before end, where the archive ends)
// was pushed: no archived commit is that late, so unless more WAL is
// archived meanwhile, PostgreSQL replays everything and then fails,
// after the whole download and replay.
func targetAfterArchive(ctx context.Context, b storage.Backend, inv *repository.Inventory, end wal.Segment, target time.Time, segSize uint32) (string, error) {
	endLSN, err := end.StartLSN(segSize)
	if err != nil || endLSN < wal.LSN(segSize) || inv.Identity == nil {
		return "", nil
	}
	last, err := wal.SegmentFromLSN(end.Timeline, endLSN-1, segSize)
	if err != nil {
		return "", nil
	}
	info, err := repository.StatWAL(ctx, b, wal.FileName{Kind: wal.KindSegment, Timeline: last.Timeline, Segment: last}, inv.Identity.Compression)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "", nil // read from a parent timeline: not worth the search
	case err != nil:
		return "", err
	}
	pushed := repository.PushedAt(info)
	// pushed-at is stored in whole seconds: a second of slack.
	if !target.After(pushed.Add(time.Second)) {
		return "", nil
	}
	return fmt.Sprintf("the target time %s is after %s, when %s, the newest segment recovery can read, was archived: no archived commit is that late, so unless the server archives more WAL before recovery gets there, PostgreSQL replays all of it and then stops with \"recovery ended before configured recovery target was reached\"; restore with no target for everything archived, or give an earlier time",
		formatTargetTime(target), formatTargetTime(pushed.In(target.Location())), last), nil
}

// liveElsewhere refuses a recovery to latest (the default: the newest
// timeline, by its history file) when a timeline the followed one
// branched from received WAL after the followed one last did: that
// timeline went on, most likely as the live server's, and the followed
// one is a restored copy's, promoted and archiving here (recovering along
// it would silently restore the copy); or a point-in-time restore was
// promoted while the old primary still ran. Both ways out are named. An
// ancestor that stopped before (the old primary, after a point-in-time
// restore) is no objection. Each ancestor costs a listing of its WAL from
// its branch point on: the old primary's last WAL, as a rule little.
func liveElsewhere(ctx context.Context, b storage.Backend, followed wal.TimelineID, history []wal.HistoryEntry, start wal.Segment, segSize uint32) error {
	if len(history) == 0 {
		return nil
	}
	last, err := repository.LastWritten(ctx, b, followed, start)
	if err != nil {
		return err
	}
	for _, h := range history {
		from, err := wal.SegmentFromLSN(h.Timeline, h.SwitchPoint, segSize)
		if err != nil {
			return nil
		}
		parent, err := repository.LastWritten(ctx, b, h.Timeline, from)
		if err != nil {
			return err
		}
		if parent.After(last) {
			return fmt.Errorf("%w: recovery to the newest timeline follows timeline %d, but timeline %d, which it branched from at %s, received WAL until %s, after timeline %d's last (%s). If timeline %d is the live server's and timeline %d a restored copy's that archived here, give --target-timeline %d; if timeline %d is the live one (a failover whose old primary ran on for a while, or a point-in-time restore promoted while the old primary still ran), give --target-timeline latest",
				ErrTimelineUnclear, followed, h.Timeline, h.SwitchPoint, parent.UTC().Format(time.RFC3339), followed, last.UTC().Format(time.RFC3339), h.Timeline, followed, h.Timeline, followed)
		}
	}
	return nil
}

// olderDone is the newest DONE backup that ended before m did ("" when
// none).
func olderDone(backups []repository.BackupInfo, m repository.BackupManifest) string {
	for i := len(backups) - 1; i >= 0; i-- {
		bi := backups[i]
		if bi.Status == repository.StatusDone && bi.Manifest != nil && bi.ID != m.ID && bi.Manifest.StopTime.Before(m.StopTime) {
			return bi.ID
		}
	}
	return ""
}

// ErrNoTimeline: --target-timeline names a timeline the repository has no
// history file of.
var ErrNoTimeline = errors.New("the timeline to follow is not in the repository")

// timelineExists refuses a numbered --target-timeline (setting) other than
// 1 and backup m's own whose history file the repository lacks: PostgreSQL
// would stop at once with "recovery target timeline N does not exist",
// after the whole download (explore24b F5).
func timelineExists(ctx context.Context, b storage.Backend, m repository.BackupManifest, setting string) error {
	n, err := strconv.ParseUint(setting, 10, 32)
	if err != nil || n <= 1 {
		return nil // latest, current, or timeline 1, which has no history
	}
	if start, err := wal.ParseSegmentName(m.StartWAL); err == nil && start.Timeline == wal.TimelineID(n) {
		return nil
	}
	history := wal.FileName{Kind: wal.KindTimelineHistory, Timeline: wal.TimelineID(n)}
	_, err = repository.StatWAL(ctx, b, history, repository.None)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: --target-timeline %d: the repository holds no %s, so PostgreSQL would stop with \"recovery target timeline %d does not exist\"; walvault info lists the timelines it holds", ErrNoTimeline, n, history, n)
	}
	return err
}

// branchBefore is the first timeline switch a recovery to latest makes
// before an LSN target.
type branchBefore struct {
	parent, child wal.TimelineID
	at            wal.LSN
	// parentWentOn: the parent holds WAL archived past the branch
	// segment.
	parentWentOn bool
}

// lsnPastBranch looks at a recovery to the newest timeline with an LSN
// target: when the path switches timeline before the target, the LSN
// names a different point on the parent, so the parent going on after the
// followed timeline last did refuses the restore as it does a recovery to
// latest (liveElsewhere), and the switch is returned for the messages.
// nil: the target lies before every switch, the same point everywhere.
func lsnPastBranch(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest, target wal.LSN) (*branchBefore, error) {
	tli, history, known, err := FollowedPath(ctx, b, inv, m, "latest")
	if err != nil || !known {
		return nil, err
	}
	start, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil {
		return nil, nil
	}
	for i, h := range history {
		if h.Timeline < start.Timeline || h.SwitchPoint >= target {
			continue
		}
		if err := liveElsewhere(ctx, b, tli, history, start, m.WALSegmentSize); err != nil {
			return nil, err
		}
		child := tli
		if i+1 < len(history) {
			child = history[i+1].Timeline
		}
		br := &branchBefore{parent: h.Timeline, child: child, at: h.SwitchPoint}
		from, err := wal.SegmentFromLSN(h.Timeline, h.SwitchPoint, m.WALSegmentSize)
		if err != nil {
			return br, nil
		}
		if _, br.parentWentOn, err = inv.ArchivedAfter(ctx, b, from); err != nil {
			return nil, err
		}
		return br, nil
	}
	return nil, nil
}

// ErrTimelineWithoutWAL: the timeline recovery follows has its history
// file archived and none of its WAL, so PostgreSQL would replay its
// parent's WAL in its place (RecoveryEnd.FallsBack).
var ErrTimelineWithoutWAL = errors.New("the timeline recovery follows has none of its WAL archived")

// ErrTimelineUnclear: which timeline the live server's is cannot be told,
// and the choice decides what a restore to latest gives.
var ErrTimelineUnclear = errors.New("the timeline to restore must be given")

// ErrGap: recovery to the end of the archive would stop at a missing
// segment while later WAL is archived.
var ErrGap = errors.New("the archive has a gap on the way to its end")

// checkRecoveryEnd looks at the WAL a recovery without an LSN target
// replays. A segment missing while later ones are archived (a gap): with
// no target PostgreSQL would stop there and open, the later WAL silently
// left out, so the restore is refused unless accept (--accept-gap); with a
// time, xid or name target recovery itself fails if the target lies past
// the gap, so that is only said. A timeline recovery leaves for a child
// that went on past the branch point is said too: the child may be a
// restored copy's and the parent the live server. It returns what it
// found, for the output.
func checkRecoveryEnd(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest, t Target, accept bool, ids *crypt.Identities, log *slog.Logger) (notes []string, gap bool, err error) {
	start, tl, ok, err := recoveryStart(inv, m, t.TimelineSetting())
	if !ok || err != nil {
		return nil, false, err
	}
	end, ok, err := inv.LoadRecoveryEnd(ctx, b, start, tl)
	if err != nil || !ok {
		return nil, false, err
	}
	if t.Timeline == "" {
		history, _ := inv.WAL.KnownHistory(end.Timeline)
		if err := liveElsewhere(ctx, b, end.Timeline, history, start, m.WALSegmentSize); err != nil {
			return nil, false, err
		}
	}
	if f := end.FallsBack; f != nil {
		fallback := fmt.Sprintf("timeline %d's history file is archived, but not its first segment %s (it branched from timeline %d at %s): finding no WAL of timeline %d, PostgreSQL replays timeline %d's copy of that segment and its later WAL as timeline %d's, WAL timeline %d's server never had (what a point-in-time restore discarded, if that is how it began). Nothing of timeline %d past the branch point is archived: its server was lost, or its archiving failed, before its first segment",
			f.Child, end.End, f.Parent, f.SwitchPoint, f.Child, f.Parent, f.Child, f.Child, f.Child)
		ways := fmt.Sprintf("restore to the branch point, all timeline %d holds here, with --target-timeline %d --target-lsn %s --target-inclusive=false (inclusive, recovery would replay the first record of timeline %d past it); or timeline %d's WAL to its end with --target-timeline %d; if timeline %d's server still runs, archive its WAL first (SELECT pg_switch_wal() on it)",
			f.Child, f.Parent, f.SwitchPoint, f.Parent, f.Parent, f.Parent, f.Child)
		if t.IsLatest() {
			return nil, false, fmt.Errorf("%w: %s. %s", ErrTimelineWithoutWAL, fallback, strings.ToUpper(ways[:1])+ways[1:])
		}
		notes = append(notes, fallback+"; a target past the branch point is reached in that WAL: "+ways)
	}
	for _, o := range end.Overruns {
		if err := copiedBranch(ctx, b, o, m.WALSegmentSize, ids, log); err != nil {
			return nil, false, err
		}
		notes = append(notes, fmt.Sprintf("timeline %d holds WAL archived past the point where timeline %d branched off it (%s), from %s on: this restore follows timeline %d; if timeline %d is the live server's and %d a restored copy's, restore with --target-timeline %d",
			o.Parent, o.Child, o.SwitchPoint, o.Newest, end.Timeline, o.Parent, o.Child, o.Parent))
	}
	if !end.Gap {
		if t.Time != nil {
			note, err := targetAfterArchive(ctx, b, inv, end.End, *t.Time, m.WALSegmentSize)
			if err != nil {
				return nil, false, err
			}
			if note != "" {
				notes = append(notes, note)
			}
		}
		return notes, false, nil
	}
	at, _ := end.End.StartLSN(m.WALSegmentSize)
	missing := fmt.Sprintf("segment %s is missing from the archive though %s and later WAL are archived: recovery stops at %s", end.End, end.Later, at)
	switch {
	case !t.IsLatest():
		return append(notes, missing+" (PostgreSQL fails with \"recovery ended before configured recovery target was reached\" if the target lies past it)"), true, nil
	case accept:
		return append(notes, missing+" (--accept-gap: the WAL after it is not replayed)"), true, nil
	}
	return nil, true, fmt.Errorf("%w: %s, and with no target PostgreSQL would then open there, leaving out the WAL archived after it. wal-push the missing segment from the server's pg_wal if it is still there, restore a backup taken after the gap (see backup-list), or give --accept-gap to recover up to the gap", ErrGap, missing)
}
