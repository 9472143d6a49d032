// Package exporter serves Prometheus metrics about a walvault repository
// and, when a connection is configured, about the PostgreSQL server that
// archives into it: how old the newest archived segment is, how far
// archiving lags (.ready files), archive failures, the newest backup's age,
// size and duration, backups by status, WAL continuity, the newest
// successful restore drill and its RTO, and repository size.
//
// Read exporter.go first (Exporter: a registry of its own, never the global
// one; Run refreshes the repository snapshot on an interval), then scan.go
// (one repository.Inventory per refresh, folded into a snapshot;
// immutable objects such as manifests and drill records are read once and
// cached), collect.go (the metrics, built from the snapshot at scrape time)
// and postgres.go (pg_stat_archiver and the archive status directory, read
// at scrape time).
//
// What it must not do: list the repository during a scrape (a scrape only
// reads the cached snapshot and, with a connection, asks PostgreSQL), write
// anything anywhere, or read configuration: cmd resolves Options.
package exporter
