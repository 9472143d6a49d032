//go:build !unix

package main

// dieBySignalOnCrash does nothing where PostgreSQL's restore_command
// statuses are not those of Unix signals.
func dieBySignalOnCrash() {}
