package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/units"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Options are the drill's settings, resolved by cmd.
type Options struct {
	// BackupRef is a backup id, or "" / "LATEST" for the newest DONE
	// backup that ends before Target (as for restore).
	BackupRef string
	// Target is where recovery stops; none means all archived WAL. Its
	// Action defaults to promote (PostgreSQL's default, pause, would leave
	// nothing to check read-write); pause stops at the target and the
	// drill checks it paused there; shutdown is refused.
	Target restore.Target
	// ScratchDir is the directory the scratch directory is made in
	// ("" means os.TempDir()). It needs room for the restored cluster.
	ScratchDir string
	// Keep leaves the scratch directory (with the server stopped) instead
	// of removing it, to look at.
	Keep bool
	// PGBinDir holds the PostgreSQL programs; "" finds them by the
	// backup's major version (pg.PackagedBinDirs, then pg_config
	// --bindir).
	PGBinDir string
	// Identities decrypt an encrypted repository (nil: none configured).
	Identities *crypt.Identities
	// Owner is the OS user the server runs as when walvault runs as root
	// ("" means postgres). Not as root, the server runs as the caller.
	Owner string
	// DBUser is the database role the checks connect as ("" means the
	// server's OS user name, initdb's default superuser); DBName the
	// database (default postgres).
	DBUser string
	DBName string
	// CheckSQL, when set, must return at least one row.
	CheckSQL string
	// Amcheck is AmcheckOn (the default), AmcheckFull or AmcheckOff.
	Amcheck string
	// Port is the server's TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// ServerSettings are more "name=value" settings for the server's
	// command line (say shared_buffers=128MB on a smaller drill host).
	// They cannot turn archiving back on.
	ServerSettings []string
	// RecoveryTimeout bounds the wait for recovery (default 12h).
	RecoveryTimeout time.Duration
	// RestoreCommand builds restore_command for the restored data
	// directory (cmd: this walvault's wal-fetch with a settings file in
	// the data directory); ConfigFile and ConfigYAML are that file, as
	// restore.BackupOptions has them.
	RestoreCommand func(dataDir string) string
	ConfigFile     string
	ConfigYAML     []byte
	// Env is the server's environment, which restore_command inherits
	// (repository credentials); nil means os.Environ(). When the server
	// runs as another user (the drill as root), HOME, USER and LOGNAME
	// are set to that user's.
	Env []string
	// NoRecord skips storing the record in the repository.
	NoRecord bool
	Host     string // recorded
	Version  string // walvault version, recorded
	Log      *slog.Logger
	// Progress shows the restore's download and the wait for recovery
	// (nil: nothing).
	Progress *progress.Output
	Now      func() time.Time
}

// Amcheck modes.
const (
	AmcheckOn   = "on"   // pg_amcheck --all --install-missing
	AmcheckFull = "full" // and --heapallindexed
	AmcheckOff  = "off"
)

// DefaultRecoveryTimeout is how long a drill waits for recovery.
const DefaultRecoveryTimeout = 12 * time.Hour

// logTailLines is how much of the server log a failure shows.
const logTailLines = 25

// ErrFailed marks a drill that ran and found the restore wanting (a
// check failed, recovery failed), as opposed to one that could not start.
var ErrFailed = errors.New("restore drill failed")

// Run restores a backup into a scratch directory, recovers it with a
// temporary server and checks it; see the package documentation. It
// returns the record (also on failure, with OK false and Error set) and an
// error when the drill failed. The record is stored in the repository once
// a backup was chosen, unless ctx was cancelled or opts.NoRecord.
//
// Whatever happens (a check failing, ctx cancelled by Ctrl-C, a panic),
// the server is stopped and the scratch directory removed (kept, with
// opts.Keep) before Run returns.
func Run(ctx context.Context, b storage.Backend, opts Options) (rec *Record, err error) {
	d, err := newDrill(opts)
	if err != nil {
		return nil, err
	}
	return d.run(ctx, b)
}

// drill is one Run's state.
type drill struct {
	opts      Options
	log       *slog.Logger
	now       func() time.Time
	target    restore.Target
	wantPause bool
	rec       *Record
}

func newDrill(opts Options) (*drill, error) {
	d := &drill{opts: opts, log: opts.Log, now: opts.Now, target: opts.Target}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.opts.RecoveryTimeout <= 0 {
		d.opts.RecoveryTimeout = DefaultRecoveryTimeout
	}
	if d.opts.DBName == "" {
		d.opts.DBName = "postgres"
	}
	switch d.opts.Amcheck {
	case "":
		d.opts.Amcheck = AmcheckOn
	case AmcheckOn, AmcheckFull, AmcheckOff:
	default:
		return nil, fmt.Errorf("unknown amcheck mode %q: want on, full or off", d.opts.Amcheck)
	}
	if err := d.target.Validate(); err != nil {
		return nil, err
	}
	switch d.target.Action {
	case "":
		if !d.target.IsLatest() {
			d.target.Action = "promote"
		}
	case "promote":
	case "pause":
		d.wantPause = true
	case "shutdown":
		return nil, errors.New("target action shutdown stops the server at the target, leaving nothing to check: use promote (the drill's default) or pause")
	}
	for _, kv := range d.opts.ServerSettings {
		name, _, ok := strings.Cut(kv, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("server setting %q: want name=value", kv)
		}
		for _, forbidden := range []string{"archive_mode", "archive_command", "archive_library", "primary_conninfo", "primary_slot_name", "listen_addresses", "port", "unix_socket_directories", "hba_file"} {
			if name == forbidden {
				return nil, fmt.Errorf("server setting %s is the drill's own: it keeps the temporary server from archiving into the repository or being reached by others", name)
			}
		}
	}
	if d.opts.RestoreCommand == nil {
		return nil, errors.New("no restore_command given to the drill")
	}
	return d, nil
}

// fail marks the record failed with err and returns err wrapped in
// ErrFailed (unless it is a cancellation).
func (d *drill) fail(err error) error {
	d.rec.OK = false
	if d.rec.Error == "" {
		d.rec.Error = err.Error()
	}
	if errors.Is(err, ErrFailed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
}

func (d *drill) addCheck(name, status, detail string) {
	d.rec.Checks = append(d.rec.Checks, Check{Name: name, Status: status, Detail: detail})
	level := slog.LevelInfo
	switch status {
	case StatusFailed:
		level = slog.LevelError
	case StatusWarning:
		level = slog.LevelWarn
	}
	d.log.Log(context.Background(), level, "drill check", "check", name, "status", status, "detail", detail)
}

func (d *drill) run(ctx context.Context, b storage.Backend) (rec *Record, err error) {
	started := d.now()
	d.rec = &Record{StartedAt: started.UTC(), Host: d.opts.Host, Walvault: d.opts.Version, Target: d.target.String(), TargetAction: d.target.Action, Checks: []Check{}}
	if d.target.IsLatest() {
		d.rec.TargetAction = "promote" // what PostgreSQL does at the end of the archive
	}
	rec = d.rec

	// Choose the backup and the programs before anything is written.
	// One listing serves the choice of backup and the WAL check below.
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{Histories: true, Identities: d.opts.Identities})
	if err != nil {
		return rec, d.fail(err)
	}
	backups, err := inv.Catalog()
	if err != nil {
		return rec, d.fail(err)
	}
	bi, passed, err := restore.ChooseBackupFollowing(ctx, b, inv, backups, d.opts.BackupRef, d.target, d.log)
	if err != nil {
		return rec, d.fail(err)
	}
	for _, w := range passed {
		d.addCheck("backup choice", StatusWarning, w)
	}
	m := *bi.Manifest
	stop := m.StopTime.UTC()
	rec.BackupID, rec.BackupStopTime, rec.PGVersion = m.ID, &stop, m.PGVersion
	// Catalog refuses a manifest without an identity, so a chosen backup
	// implies one.
	id := *inv.Identity
	// Without the backup's major's server programs no drill can start:
	// that is a setup error, refused before anything is written.
	major := m.PGVersion / 10000
	if major == 0 {
		major = id.PGMajor
	}
	bins, err := findBinaries(ctx, d.opts.PGBinDir, major)
	if err != nil {
		return rec, d.fail(err)
	}
	rec.PGBinDir = bins.Dir
	// From here on the outcome is worth recording.
	defer func() {
		rec.FinishedAt = d.now().UTC()
		if d.opts.NoRecord || ctx.Err() != nil {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if werr := WriteRecord(wctx, b, rec, id.Lock().Retention(d.now())); werr != nil {
			d.log.Error("could not store the drill record", "error", werr)
			if rec.OK {
				rec.OK = false
				rec.Error = werr.Error()
				err = werr
			}
		}
	}()

	u, err := lookupServerUser(d.opts.Owner)
	if err != nil {
		return rec, d.fail(err)
	}
	segSize := m.WALSegmentSize
	if segSize == 0 {
		segSize = id.WALSegmentSize
	}
	newest, err := d.checkArchive(ctx, b, inv, m, id, segSize)
	if err != nil {
		return rec, d.fail(err)
	}
	port, err := freePort(d.opts.Port)
	if err != nil {
		return rec, d.fail(err)
	}
	s, err := newScratch(d.opts.ScratchDir, u)
	if err != nil {
		return rec, d.fail(err)
	}
	d.checkSpace(s.root, restoredSize(backups, m))
	var srv *server
	defer func() {
		// The one cleanup, on every path: stop the server, keep the log
		// tail for a failure, remove (or keep) the scratch directory.
		if p := recover(); p != nil {
			d.cleanup(s, srv, nil)
			panic(p)
		}
		err = d.cleanup(s, srv, err)
	}()

	tablespaces := scratchTablespaces(m, s.tablespaces)
	for oldLoc, newLoc := range tablespaces {
		d.log.Info("restoring a tablespace into the scratch directory", "location", oldLoc, "restored_to", newLoc)
	}
	restoreStart := d.now()
	res, err := restore.RestoreBackup(ctx, b, restore.BackupOptions{
		DataDir:           s.dataDir,
		BackupRef:         m.ID,
		Target:            d.target,
		TablespaceMapping: tablespaces,
		Owner:             u.name,
		RestoreCommand:    d.opts.RestoreCommand(s.dataDir),
		Identities:        d.opts.Identities,
		ConfigFile:        d.opts.ConfigFile,
		ConfigYAML:        d.opts.ConfigYAML,
		PGBinDir:          bins.Dir,
		Log:               d.log,
		Progress:          d.opts.Progress,
		Now:               d.now,
	})
	if err != nil {
		return rec, d.fail(fmt.Errorf("restore backup %s: %w", m.ID, err))
	}
	rec.RestoredBytes = res.Bytes
	rec.RestoreSeconds = d.now().Sub(restoreStart).Seconds()
	d.addCheck("restore", StatusOK, fmt.Sprintf("backup %s restored and verified (%s) in %s", m.ID, res.Verified, d.now().Sub(restoreStart).Round(time.Millisecond)))
	// What the restore found on recovery's way (a timeline it leaves that
	// went on past the branch point: the drill may prove a restored copy's
	// timeline, not the live server's) belongs in the record, not only the log.
	for _, w := range res.Warnings {
		if w == restore.NoConfigFileWarning {
			// The drill starts its server with an empty one; a real
			// restore must be given the cluster's.
			d.addCheck("configuration", StatusWarning, w)
			continue
		}
		d.addCheck("recovery path", StatusWarning, w)
	}

	if err := ensureConfigFile(s.dataDir, u); err != nil {
		return rec, d.fail(err)
	}
	if err := appendSafetySettings(s.dataDir, bins.Major); err != nil {
		return rec, d.fail(err)
	}
	serverStart := d.now()
	srv, err = startServer(bins, s, u, port, serverSettings(s, port, bins.Major, d.opts.ServerSettings), d.serverEnv(u), d.log)
	if err != nil {
		return rec, d.fail(err)
	}
	c := &client{sockDir: s.sockDir, port: port, user: d.opts.DBUser, db: d.opts.DBName, major: bins.Major}
	if c.user == "" {
		c.user = u.name
	}
	defer c.close()
	if err := d.showReplay(m.ID, func() error { return d.waitRecovered(ctx, srv, c) }); err != nil {
		return rec, d.fail(err)
	}
	ready := d.now()
	rec.ReplaySeconds = ready.Sub(serverStart).Seconds()
	rec.RTOSeconds = ready.Sub(restoreStart).Seconds()
	d.log.Info("recovery finished", "rto", ready.Sub(restoreStart).Round(time.Millisecond), "replay", ready.Sub(serverStart).Round(time.Millisecond))

	d.runChecks(ctx, c, bins, newest, segSize)
	d.rpo(started)
	if err := ctx.Err(); err != nil {
		return rec, d.fail(err)
	}
	var failed []string
	for _, ch := range rec.Checks {
		if ch.Status == StatusFailed {
			failed = append(failed, ch.Name+": "+ch.Detail)
		}
	}
	if len(failed) > 0 {
		return rec, d.fail(fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, "; ")))
	}
	rec.OK = true
	return rec, nil
}

// scratchTablespaces maps the location of every tablespace of backup m
// (as restore.BackupOptions.TablespaceMapping takes it) to dir/<oid>.
// Restored at their own locations, the tablespaces would clash with the
// source cluster's on its host and, elsewhere, outlive the scratch
// directory. m's tablespaces are all an incremental chain needs: restore
// puts an older backup's tablespace where the newest backup's of that oid
// goes, and leaves out those the newest no longer has. An archive that is
// not a well-formed tablespace is left unmapped for restore to refuse.
func scratchTablespaces(m repository.BackupManifest, dir string) map[string]string {
	out := map[string]string{}
	for _, a := range m.Archives {
		oid, ok := strings.CutSuffix(a.Name, ".tar")
		if _, err := strconv.ParseUint(oid, 10, 32); !ok || err != nil || !filepath.IsAbs(a.TablespaceLocation) {
			continue
		}
		out[filepath.Clean(a.TablespaceLocation)] = filepath.Join(dir, oid)
	}
	return out
}

// cleanup stops the server and removes (or keeps) the scratch directory,
// adding the server log's last lines to a failure.
func (d *drill) cleanup(s *scratch, srv *server, err error) error {
	if srv != nil {
		if serr := srv.stop(); serr != nil {
			d.log.Error("could not stop the temporary server", "error", serr)
			err = errors.Join(err, serr)
		} else {
			d.log.Info("stopped the temporary server", "pid", srv.cmd.Process.Pid)
		}
		// A restore_command's detached helpers (the WAL prefetcher) are
		// in no process group of the server's; they name the scratch
		// directory on their command line.
		if pids := killStragglers(s.root, 10*time.Second); len(pids) > 0 {
			d.log.Info("stopped what the temporary server's restore_command left running", "pids", pids)
		}
		if err != nil {
			if tail := s.logTail(logTailLines); tail != "" {
				err = fmt.Errorf("%w\nserver log (last lines):\n%s", err, tail)
			}
		}
	}
	if d.opts.Keep {
		d.log.Info("kept the scratch directory (the server is stopped)", "dir", s.root, "data_dir", s.dataDir, "log", s.logFile)
		return err
	}
	if rerr := s.remove(); rerr != nil {
		d.log.Error("could not remove the scratch directory", "error", rerr)
		err = errors.Join(err, rerr)
	}
	if err != nil {
		d.rec.OK, d.rec.Error = false, err.Error()
	}
	return err
}

// serverEnv is the server's environment: restore_command inherits it, so
// it carries the repository credentials as for archive_command. A server
// run as the drill's own user keeps its HOME (the credential chain reads
// ~/.aws there, as it did for the drill); one run as another user gets
// that user's.
func (d *drill) serverEnv(u serverUser) []string {
	env := d.opts.Env
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PGDATA", "PGPORT", "PGHOST":
			continue
		case "HOME", "USER", "LOGNAME":
			if u.switched {
				continue
			}
		}
		out = append(out, kv)
	}
	if !u.switched {
		return out
	}
	if u.home != "" {
		out = append(out, "HOME="+u.home)
	}
	return append(out, "USER="+u.name, "LOGNAME="+u.name)
}

// checkSpace warns when the scratch filesystem looks too small for the
// restored cluster.
// restoredSize is about what the restore of m takes on disk: for an
// incremental backup, what its chain's backups hold together (an upper
// bound: the incrementals mostly replace blocks of the full backup).
func restoredSize(backups []repository.BackupInfo, m repository.BackupManifest) int64 {
	chain, err := repository.Chain(backups, m.ID)
	if err != nil {
		return m.RawBytes
	}
	var n int64
	for _, bi := range chain {
		n += bi.Manifest.RawBytes
	}
	return n
}

func (d *drill) checkSpace(dir string, raw int64) {
	avail, err := freeSpace(dir)
	if err != nil || raw <= 0 {
		return
	}
	if avail < uint64(raw) {
		d.addCheck("scratch space", StatusWarning, fmt.Sprintf("%s has %s free, the backup needs about %s before any WAL is replayed: the restore will likely fail (choose another --scratch-dir)", dir, units.Bytes(int64(avail)), units.Bytes(raw)))
	}
}

// newestWAL is the newest archived segment and when it was pushed.
type newestWAL struct {
	seg      wal.Segment
	ok       bool
	pushedAt time.Time
}

// checkArchive checks WAL continuity from the backup's start to the newest
// archived segment on the timelines recovery follows (Continuity.Along),
// before anything is downloaded: for a drill to the
// end of the archive a gap is fatal (recovery would stop there and open
// with the later WAL silently lost); for an earlier target it is a warning
// (recovery itself says whether the target lies beyond the gap). It also
// finds the newest segment and its push time, for the RPO.
func (d *drill) checkArchive(ctx context.Context, b storage.Backend, inv *repository.Inventory, m repository.BackupManifest, id repository.Identity, segSize uint32) (newestWAL, error) {
	var nw newestWAL
	start, err := wal.ParseSegmentName(m.StartWAL)
	if err != nil {
		return nw, fmt.Errorf("backup %s: start_wal: %w", m.ID, err)
	}
	cont, err := inv.WALContinuity(segSize, []wal.Segment{start})
	if err != nil {
		return nw, err
	}
	// Only the timelines recovery reads: another's gaps or newer segments
	// (a restored copy's, promoted and archiving here) are not this
	// drill's to fail on or to measure against.
	tli, history, known, err := restore.FollowedPath(ctx, b, inv, m, d.target.TimelineSetting())
	if err != nil {
		return nw, err
	}
	if known {
		cont = cont.Along(tli, history, segSize)
	}
	for _, tl := range cont.Timelines {
		if tl.HasSegments && (!nw.ok || tl.Timeline > nw.seg.Timeline) {
			nw.seg, nw.ok = tl.Newest, true
		}
	}
	if nw.ok {
		file := wal.FileName{Kind: wal.KindSegment, Timeline: nw.seg.Timeline, Segment: nw.seg}
		key := repository.WALKey(file, id.Compression)
		if info, err := repository.StatWAL(ctx, b, file, id.Compression); err == nil {
			nw.pushedAt = repository.PushedAt(info)
		} else {
			d.log.Warn("could not read the newest archived segment's metadata; the RPO stays unknown", "key", key, "error", err)
		}
		d.rec.NewestWAL = nw.seg.String()
		if !nw.pushedAt.IsZero() {
			t := nw.pushedAt.UTC()
			d.rec.NewestWALPushedAt = &t
		}
	}
	summary := cont.Summary(segSize)
	switch {
	case summary == "" && cont.Unchecked() != "":
		// Not a gap, but not known to be none either: recovery finds out.
		d.addCheck("WAL continuity", StatusWarning, cont.Unchecked())
	case summary == "":
		detail := "no gap from the backup's start segment " + start.String()
		if nw.ok {
			detail += " to the newest archived segment " + nw.seg.String()
		}
		d.addCheck("WAL continuity", StatusOK, detail)
	case d.target.IsLatest():
		d.addCheck("WAL continuity", StatusFailed, summary)
		return nw, fmt.Errorf("%w: WAL continuity: %s: recovery to the end of the archive would stop at the first gap and open without the WAL after it; run walvault verify, and take a new backup (backup-push) so the gap no longer matters", ErrFailed, summary)
	default:
		d.addCheck("WAL continuity", StatusWarning, summary+" (recovery fails if the target lies beyond a gap)")
	}
	return nw, nil
}

// rpo sets the record's RPO: how old the newest archived WAL was at the
// target time (or, for other targets, at the drill's start).
func (d *drill) rpo(started time.Time) {
	if d.rec.NewestWALPushedAt == nil {
		return
	}
	ref := started.UTC()
	if d.target.Time != nil {
		ref = d.target.Time.UTC()
	}
	v := ref.Sub(*d.rec.NewestWALPushedAt).Seconds()
	if v < 0 {
		v = 0
	}
	d.rec.RPOSeconds, d.rec.RPOReference = &v, &ref
}
