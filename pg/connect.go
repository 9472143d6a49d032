package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultConnectTimeout bounds a connection attempt when the connection
// settings set none (connect_timeout).
const DefaultConnectTimeout = 30 * time.Second

// closeTimeout bounds the goodbye to the server; the socket closes anyway.
const closeTimeout = 5 * time.Second

// ParseConfig reads the connection settings as libpq would (PG*
// environment, .pgpass, service files). appName names the connection
// unless the settings already name it.
func ParseConfig(connString, appName string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL connection settings: %w", withoutConnString(err))
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" && appName != "" {
		cfg.RuntimeParams["application_name"] = appName
	}
	return cfg, nil
}

// parseError is a connection string's parse error told without the
// string: pgconn quotes it with its passwords masked as best it can
// ("password= X" keeps X), and the reason alone says what is wrong.
type parseError struct {
	reason string
	err    error
}

func (e *parseError) Error() string { return "cannot parse them: " + e.reason }
func (e *parseError) Unwrap() error { return e.err }

// withoutConnString drops the quoted connection string from a pgconn
// *ParseConfigError, keeping what follows it (the reason).
func withoutConnString(err error) error {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return err
	}
	msg := pce.Error()
	i := strings.LastIndex(msg, "`: ")
	if i < 0 {
		return &parseError{reason: "see the pg-conn setting", err: err}
	}
	return &parseError{reason: msg[i+3:], err: err}
}

// withConnectTimeout bounds ctx by DefaultConnectTimeout when cfg sets no
// connect_timeout of its own.
func withConnectTimeout(ctx context.Context, cfg *pgconn.Config) (context.Context, context.CancelFunc) {
	if cfg.ConnectTimeout != 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultConnectTimeout)
}

// Connect opens an SQL connection (pgx, extended protocol). Its errors
// say what to do about a refusal (ConnectError).
func Connect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	ctx, cancel := withConnectTimeout(ctx, &cfg.Config)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ConnectError(err, cfg.User, cfg.Database, false)
	}
	return conn, nil
}

// CloseSQL says goodbye on an SQL connection, even when the caller's
// context is already cancelled.
func CloseSQL(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// Open opens a message-level connection (Conn); replication makes it a
// physical replication (walsender) connection, which accepts
// IDENTIFY_SYSTEM, BASE_BACKUP and START_REPLICATION.
func Open(ctx context.Context, base *pgx.ConnConfig, replication bool) (*Conn, error) {
	cfg := base.Config.Copy()
	delete(cfg.RuntimeParams, "replication")
	if replication {
		cfg.RuntimeParams["replication"] = "true"
	}
	ctx, cancel := withConnectTimeout(ctx, cfg)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ConnectError(err, cfg.User, cfg.Database, replication)
	}
	return &Conn{pc: pc}, nil
}

// ConnectError adds to a failed connection what to do about it: the
// server's refusals (ConnectHint) and an unreachable server.
func ConnectError(err error, user, database string, replication bool) error {
	kind := "connect to PostgreSQL"
	if replication {
		kind = "open a replication connection to PostgreSQL"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s: %w%s", kind, err, connectHint(pgErr, user, database, replication))
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &netErr) || errors.As(err, &opErr) {
		return fmt.Errorf("%s: %w: check the host and port (--pg-conn, PGHOST, PGPORT or the connection setting) and that the server is running and listens there (listen_addresses)", kind, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return fmt.Errorf("%s: %w: check --pg-conn (or PGHOST, PGPORT, PGUSER) and that the server is running", kind, err)
}

// connectHint explains a server's refusal to let us in.
func connectHint(e *pgconn.PgError, user, database string, replication bool) string {
	switch e.Code {
	case "28P01": // invalid_password
		return fmt.Sprintf(": the password for role %q was refused: check PGPASSWORD, the password in the connection setting or ~/.pgpass (a line host:port:*:%s:password, mode 0600)", user, user)
	case "28000": // invalid_authorization_specification, e.g. no pg_hba.conf entry
		if replication {
			return fmt.Sprintf(": pg_hba.conf must allow role %q to make replication connections from this host: add a line for the special database 'replication', such as \"host replication %s <this host's address>/32 scram-sha-256\", then reload PostgreSQL (SELECT pg_reload_conf())", user, user)
		}
		return fmt.Sprintf(": pg_hba.conf must allow role %q to connect to database %q from this host, then reload PostgreSQL (SELECT pg_reload_conf())", user, database)
	case "42501": // insufficient_privilege: "must be superuser or replication role to start walsender"
		if replication {
			return fmt.Sprintf(": role %q needs the REPLICATION attribute to take base backups or stream WAL: ALTER ROLE %s REPLICATION (or connect as a role that has it)", user, QuoteIdent(user))
		}
	case "53300": // too_many_connections
		if replication {
			return ": every WAL sender slot is taken: raise max_wal_senders (needs a restart) or stop another replication client"
		}
		return ": the server has no free connection slot: retry later or raise max_connections"
	case "3D000": // invalid_catalog_name
		return fmt.Sprintf(": database %q does not exist: set dbname (or PGDATABASE) to an existing database, such as postgres", database)
	case "57P03": // cannot_connect_now
		return ": the server is starting up or shutting down: retry when it accepts connections"
	}
	return ""
}

// Refused reports whether err is a server's refusal that retrying cannot
// cure: a wrong password, no pg_hba.conf line, a missing privilege or
// database.
func Refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "28P01", "28000", "42501", "3D000":
		return true
	}
	return false
}

// QuoteIdent quotes a role or slot name as SQL quotes an identifier, for
// a command or a message.
func QuoteIdent(s string) string {
	return pgx.Identifier{s}.Sanitize()
}
