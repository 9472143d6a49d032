// Package filetest opens file backends for tests: the one helper the
// tests that need a repository on disk share (those that check the files
// themselves, or hand the directory to another process). Other tests use
// storage/mem.
package filetest
