//go:build !unix

// Package osuser answers questions about what an OS user may do with the
// file system, for the commands that hand files to the postgres user.
package osuser

import "io/fs"

// CanSearch cannot judge permissions here and trusts the caller.
func CanSearch(dir string, uid, gid int, name string) error { return nil }

// Check cannot judge permissions here and trusts the caller.
func Check(path string, uid, gid int, bit fs.FileMode) (*Denial, error) { return nil, nil }

// Owner cannot tell who owns a file here.
func Owner(fs.FileInfo) (uid int, ok bool) { return 0, false }

// OwnerGroup cannot tell who owns a file here.
func OwnerGroup(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// MatchOwner has no owners to match here.
func MatchOwner(path, like string) error { return nil }
