// Package info answers `walvault info`: what a restore can reach and what
// one backup is, from one listing of the repository
// (repository.LoadInventory).
//
// Read summary.go first (Summarize: per timeline, the recovery window
// from the oldest DONE backup's end to the newest archived WAL, with the
// gaps that break it; the WAL archived and its rate; the newest backup and
// drill), then window.go (how the window is walked along a timeline's
// ancestry, segment by segment, as recovery would read it) and backup.go
// (Describe: one backup in full). text.go prints both for people; the
// JSON field names are a stable, documented schema (README, "info"):
// fields are only ever added.
package info
