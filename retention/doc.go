// Package retention decides which backups and WAL a repository no longer
// needs, and deletes them safely: the `delete` command.
//
// Read plan.go first. The work is split in three steps so the decision can
// be tested without storage and shown before anything is removed:
//
//	policy.go     ParsePolicy: "REDUNDANCY n", "RECOVERY WINDOW OF n DAYS"
//	inventory.go  Load: the backup catalog, keep marks and WAL, from one listing
//	mark.go       SetKeep: backup-mark's rules for writing a keep mark
//	plan.go       PlanPolicy / PlanBackup: pure; what is kept, what goes, why
//	walplan.go    the WAL cutoff: only WAL wholly before the oldest kept backup
//	partials.go   wal-receive's partials: superseded ones, and those before the cutoff
//	apply.go      Apply: crash-safe order, Object Lock answers reported, not errors
//
// Its promises: a backup the policy keeps, the newest DONE backup, a backup
// marked keep (repository.WriteMark) and a backup that may still become
// DONE are never deleted; nor is any WAL a kept backup needs, nor any
// timeline history file, nor a wal-receive partial of a segment that is not
// archived from the cutoff on (it may hold the cluster's last WAL). A
// backup's manifest goes before its parts, so an interrupted delete leaves
// a consistent repository.
//
// It must not read configuration or talk to PostgreSQL; cmd/walvault
// parses flags and prints the plan and the report.
package retention
