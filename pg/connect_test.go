package pg

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestConnectHints(t *testing.T) {
	t.Parallel()
	cfg, err := pgconn.ParseConfig("host=db1 port=5432 user=backup dbname=app password=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		err         error
		replication bool
		want        []string
	}{
		{"wrong password", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "backup"`}, true,
			[]string{"PGPASSWORD", ".pgpass", "backup"}},
		{"no pg_hba.conf line for replication", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `no pg_hba.conf entry for replication connection from host "10.0.0.5", user "backup"`}, true,
			[]string{"pg_hba.conf", "'replication'", "host replication backup", "pg_reload_conf()"}},
		{"no pg_hba.conf line for the database", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `no pg_hba.conf entry for host "10.0.0.5"`}, false,
			[]string{"pg_hba.conf", `database "app"`}},
		{"no REPLICATION attribute", &pgconn.PgError{Severity: "FATAL", Code: "42501", Message: "must be superuser or replication role to start walsender"}, true,
			[]string{"REPLICATION", `ALTER ROLE "backup" REPLICATION`}},
		{"no WAL sender slot", &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "number of requested standby connections exceeds max_wal_senders (currently 0)"}, true,
			[]string{"max_wal_senders"}},
		{"no such database", &pgconn.PgError{Severity: "FATAL", Code: "3D000", Message: `database "app" does not exist`}, false,
			[]string{`database "app" does not exist`, "PGDATABASE"}},
		{"server unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true,
			[]string{"connection refused", "PGHOST", "listen_addresses"}},
		// The hints check and wal-receive gave before they shared this one.
		{"wrong password, plain connection", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "backup"`}, false,
			[]string{"connect to PostgreSQL", "PGPASSWORD", "~/.pgpass", `role "backup"`}},
		{"no pg_hba.conf line, wal-receive", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `no pg_hba.conf entry for replication connection`}, true,
			[]string{"open a replication connection", "special database 'replication'", `role "backup"`}},
		{"no such database, check", &pgconn.PgError{Severity: "FATAL", Code: "3D000", Message: `database "app" does not exist`}, false,
			[]string{"set dbname (or PGDATABASE) to an existing database, such as postgres"}},
		{"server unreachable, check", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false,
			[]string{"--pg-conn", "PGPORT", "the server is running"}},
		{"other failure", errors.New("tls: handshake failure"), false,
			[]string{"tls: handshake failure", "check --pg-conn (or PGHOST, PGPORT, PGUSER)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ConnectError(tc.err, cfg.User, cfg.Database, tc.replication)
			if !errors.Is(err, tc.err) {
				t.Errorf("connectError: got %v, want it to wrap %v", err, tc.err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("connectError: got %q, want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("connectError leaks the password: %q", err)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	t.Setenv("PGHOST", "envhost")
	t.Setenv("PGUSER", "envuser")
	cfg, err := ParseConfig("", "walvault")
	if err != nil {
		t.Fatalf("ParseConfig(\"\"): %v", err)
	}
	if cfg.Host != "envhost" || cfg.User != "envuser" || cfg.RuntimeParams["application_name"] != "walvault" {
		t.Errorf("ParseConfig from the environment: got host %q user %q application_name %q, want envhost envuser walvault",
			cfg.Host, cfg.User, cfg.RuntimeParams["application_name"])
	}
	cfg, err = ParseConfig("postgres://u@h/db?application_name=nightly", "walvault")
	if err != nil || cfg.RuntimeParams["application_name"] != "nightly" {
		t.Errorf("ParseConfig keeps a given application_name: got %v, %v", cfg.RuntimeParams, err)
	}
	if _, err := ParseConfig("host=h port=notaport password=s3cret", "walvault"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("ParseConfig of a bad port: got %v, want an error without the password", err)
	}
}

// TestParseConfigErrorHasNoSecret: a connection string that cannot be
// parsed is not quoted back: pgconn's masking misses "password= X"
// (explore24f F4); the reason stays.
func TestParseConfigErrorHasNoSecret(t *testing.T) {
	for _, conn := range []string{
		"host=127.0.0.1 user=wv password= SECRET_A sslmode=bogus",
		"host=127.0.0.1 user=wv password = SECRET_A sslmode=bogus",
		"postgres://wv:SECRET_A@127.0.0.1/db?sslmode=bogus",
	} {
		_, err := ParseConfig(conn, "")
		if err == nil || strings.Contains(err.Error(), "SECRET_A") || !strings.Contains(err.Error(), "sslmode") {
			t.Errorf("ParseConfig(%q): %v; want the reason without the password", conn, err)
		}
	}
}
