// Package pgtest is a scripted PostgreSQL server behind pg.Wire and
// pg.ReplicationWire, and builders for the protocol messages it sends:
// the tests of basebackup and receive drive the real protocol code with
// it, without a server.
package pgtest
