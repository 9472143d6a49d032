package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/wal"
)

// client is the drill's connection to the temporary server, over its
// private unix socket.
type client struct {
	sockDir string
	port    int
	user    string
	db      string
	major   int
	conn    *pgx.Conn
}

func (c *client) config() (*pgx.ConnConfig, error) {
	// Parsed from nothing, so no PG* variable of walvault's environment
	// points the checks at another server.
	cfg, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database, cfg.Password = c.sockDir, uint16(c.port), c.user, c.db, ""
	cfg.Fallbacks = nil
	cfg.TLSConfig = nil
	cfg.ConnectTimeout = 5 * time.Second
	cfg.RuntimeParams = map[string]string{"application_name": "walvault drill"}
	return cfg, nil
}

// connect opens the connection once; it is kept until close.
func (c *client) connect(ctx context.Context) (*pgx.Conn, error) {
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	conn, err := pg.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

func (c *client) close() {
	if c.conn != nil {
		pg.CloseSQL(c.conn)
		c.conn = nil
	}
}

// fatalConnectError reports errors that waiting will not cure: a role or
// database that does not exist, a refused login.
func fatalConnectError(err error, c *client) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch pgErr.Code {
	case "28000", "28P01":
		return fmt.Errorf("the restored cluster refused role %q: %s; name an existing superuser with --db-user", c.user, pgErr.Message)
	case "3D000":
		return fmt.Errorf("the restored cluster has no database %q: name one with --check-db", c.db)
	}
	return nil
}

// pollInterval is how often the drill looks whether recovery finished.
const pollInterval = 100 * time.Millisecond

// waitRecovered waits until the server is read-write (or, with target
// action pause, paused at the target), failing at once when the server
// exits, and when ctx ends or the recovery timeout passes.
func (d *drill) waitRecovered(ctx context.Context, srv *server, c *client) error {
	deadline := time.Now().Add(d.opts.RecoveryTimeout)
	pauseQuery := "pg_get_wal_replay_pause_state()"
	if c.major < 14 {
		pauseQuery = "CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
	}
	query := "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN " + pauseQuery + " ELSE '' END"
	var lastErr error
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-srv.done:
			return d.exitedEarly(srv)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recovery did not finish within %v (last: %v); raise --recovery-timeout for a big archive", d.opts.RecoveryTimeout, lastErr)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := c.connect(cctx)
		if err == nil {
			var inRecovery bool
			var pause string
			err = conn.QueryRow(cctx, query).Scan(&inRecovery, &pause)
			if err != nil {
				c.close()
			}
			cancel()
			switch {
			case err != nil:
			case !inRecovery && d.wantPause:
				return errors.New("the server ended recovery and opened read-write, but target action pause asked it to pause at the target")
			case !inRecovery:
				return nil
			case d.wantPause && pause == "paused":
				return nil
			default:
				err = errors.New("still in recovery")
			}
		} else {
			cancel()
			if ferr := fatalConnectError(err, c); ferr != nil {
				return ferr
			}
		}
		lastErr = err
		if time.Since(lastLog) > 30*time.Second {
			d.log.Info("waiting for recovery", "state", lastErr)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-srv.done:
			return d.exitedEarly(srv)
		case <-time.After(pollInterval):
		}
	}
}

// runChecks checks the recovered server: read-write (or paused), the
// replay end, --check-sql, pg_amcheck. Each adds a Check.
func (d *drill) runChecks(ctx context.Context, c *client, bins binaries, newest newestWAL, segSize uint32) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	conn, err := c.connect(cctx)
	if err != nil {
		d.addCheck("connect", StatusFailed, err.Error())
		return
	}
	if d.wantPause {
		d.addCheck("paused at target", StatusOK, "recovery paused at "+d.target.String()+" (pg_get_wal_replay_pause_state() = paused)")
	} else {
		var xid string
		err := pgx.BeginFunc(cctx, conn, func(tx pgx.Tx) error {
			return tx.QueryRow(cctx, "SELECT txid_current()::text").Scan(&xid)
		})
		if err != nil {
			d.addCheck("read-write", StatusFailed, "a write transaction failed: "+err.Error())
		} else {
			d.addCheck("read-write", StatusOK, "recovery ended, the server is read-write (transaction "+xid+" committed)")
		}
	}
	d.checkReplayEnd(cctx, conn, newest, segSize)
	if d.opts.CheckSQL != "" {
		d.checkSQL(cctx, conn)
	}
	d.checkAmcheck(ctx, c, bins)
}

// checkReplayEnd records where replay ended and, for a drill to the end of
// the archive, checks that it reached the newest archived segment: a
// segment recovery could not fetch ends it early, and PostgreSQL then
// opens at that point rather than failing.
func (d *drill) checkReplayEnd(ctx context.Context, conn *pgx.Conn, newest newestWAL, segSize uint32) {
	var lsn *string
	var at *time.Time
	if err := conn.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()").Scan(&lsn, &at); err != nil {
		d.addCheck("replay end", StatusFailed, "could not ask where replay ended: "+err.Error())
		return
	}
	if lsn != nil {
		d.rec.ReplayEndLSN = *lsn
	}
	if at != nil {
		t := at.UTC()
		d.rec.RecoveredTo = &t
	}
	if !d.target.IsLatest() || !newest.ok || lsn == nil {
		return
	}
	end, err := wal.ParseLSN(*lsn)
	if err != nil {
		d.addCheck("replay end", StatusFailed, fmt.Sprintf("pg_last_wal_replay_lsn() = %q: %v", *lsn, err))
		return
	}
	if problem := replayEndProblem(end, newest.seg, segSize); problem != "" {
		d.addCheck("replay end", StatusFailed, problem)
		return
	}
	d.addCheck("replay end", StatusOK, fmt.Sprintf("replayed all archived WAL, to %s (newest archived segment %s)", end, newest.seg.String()))
}

// replayEndProblem says what is wrong when replay ended at end, before the
// newest archived segment: a segment after end could not be restored, and
// PostgreSQL opened there rather than failing. "" when replay reached it.
func replayEndProblem(end wal.LSN, newest wal.Segment, segSize uint32) string {
	start, err := newest.StartLSN(segSize)
	if err != nil || end >= start {
		return ""
	}
	got, _ := wal.SegmentFromLSN(newest.Timeline, end, segSize)
	return fmt.Sprintf("replay ended at %s (segment %s), before the newest archived segment %s: a segment after it could not be restored (see the server log) and the WAL after it would be lost", end, got.String(), newest.String())
}

// checkSQL runs --check-sql, which must return at least one row.
func (d *drill) checkSQL(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, d.opts.CheckSQL, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		d.addCheck("check-sql", StatusFailed, err.Error())
		return
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	switch {
	case rows.Err() != nil:
		d.addCheck("check-sql", StatusFailed, rows.Err().Error())
	case n == 0:
		d.addCheck("check-sql", StatusFailed, fmt.Sprintf("%q returned no rows in database %s; it must return at least one", d.opts.CheckSQL, d.opts.DBName))
	default:
		d.addCheck("check-sql", StatusOK, fmt.Sprintf("%d rows in database %s", n, d.opts.DBName))
	}
}

// checkAmcheck runs pg_amcheck on every database when it and the amcheck
// extension are installed.
func (d *drill) checkAmcheck(ctx context.Context, c *client, bins binaries) {
	switch {
	case d.opts.Amcheck == AmcheckOff:
		d.addCheck("pg_amcheck", StatusSkipped, "turned off (--amcheck off)")
		return
	case bins.Amcheck == "":
		d.addCheck("pg_amcheck", StatusSkipped, "pg_amcheck is not installed in "+bins.Dir)
		return
	case d.wantPause:
		d.addCheck("pg_amcheck", StatusSkipped, "the server is paused read-only at the target, and pg_amcheck --install-missing needs to write")
		return
	}
	var available bool
	if err := c.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck')").Scan(&available); err != nil {
		d.addCheck("pg_amcheck", StatusFailed, "could not ask for the amcheck extension: "+err.Error())
		return
	}
	if !available {
		d.addCheck("pg_amcheck", StatusSkipped, "the amcheck extension is not installed (PostgreSQL's contrib modules)")
		return
	}
	args := []string{"-h", c.sockDir, "-p", strconv.Itoa(c.port), "-U", c.user, "--maintenance-db=" + c.db, "--all", "--install-missing", "--no-password"}
	if d.opts.Amcheck == AmcheckFull {
		args = append(args, "--heapallindexed")
	}
	cmd := exec.CommandContext(ctx, bins.Amcheck, args...)
	cmd.Env = []string{"PGAPPNAME=walvault drill", "PGCONNECT_TIMEOUT=10"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if len(text) > 4000 {
		text = text[:4000] + "..."
	}
	if err != nil {
		d.addCheck("pg_amcheck", StatusFailed, fmt.Sprintf("%s %s: %v: %s", bins.Amcheck, strings.Join(args[7:], " "), err, text))
		return
	}
	d.addCheck("pg_amcheck", StatusOK, fmt.Sprintf("clean: %s %s found no corruption in %s", bins.Amcheck, strings.Join(args[7:], " "), time.Since(began).Round(time.Millisecond)))
}
