package basebackup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connectTimeout bounds a connection attempt when the connection settings
// set none (connect_timeout).
const connectTimeout = 30 * time.Second

// closeTimeout bounds the goodbye to the server; the socket closes anyway.
const closeTimeout = 5 * time.Second

// parseConfig reads the connection settings as libpq would (PG*
// environment, .pgpass, service files) and names the connections.
func parseConfig(connString string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		// pgconn redacts the password in its message.
		return nil, fmt.Errorf("PostgreSQL connection settings: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walvault"
	}
	return cfg, nil
}

// connect opens a connection; replication makes it a physical replication
// (walsender) connection, which accepts IDENTIFY_SYSTEM and BASE_BACKUP.
func connect(ctx context.Context, base *pgconn.Config, replication bool) (*pgconn.PgConn, error) {
	cfg := base.Copy()
	delete(cfg.RuntimeParams, "replication")
	if replication {
		cfg.RuntimeParams["replication"] = "true"
	}
	if cfg.ConnectTimeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(err, cfg, replication)
	}
	return conn, nil
}

// closeConn says goodbye and closes the socket, even when the caller's
// context is already cancelled. Closing mid-COPY makes the server abort the
// backup on its side.
func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// connectError adds to a failed connection what to do about it.
func connectError(err error, cfg *pgconn.Config, replication bool) error {
	kind := "connect to PostgreSQL"
	if replication {
		kind = "open a replication connection to PostgreSQL"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s: %w%s", kind, err, connectHint(pgErr, cfg.User, cfg.Database, replication))
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &netErr) || errors.As(err, &opErr) {
		return fmt.Errorf("%s: %w: check the host and port (PGHOST, PGPORT or the connection setting) and that the server is running and listens there (listen_addresses)", kind, err)
	}
	return fmt.Errorf("%s: %w", kind, err)
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
			return fmt.Sprintf(": role %q needs the REPLICATION attribute to take base backups: ALTER ROLE %s REPLICATION (or connect as a role that has it)", user, pgx.Identifier{user}.Sanitize())
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

// serverHint explains an error the server sent in answer to a command.
func serverHint(e *pgconn.PgError) string {
	var s string
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}
