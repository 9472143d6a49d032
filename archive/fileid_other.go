//go:build !linux

package archive

import "os"

// fileIdentity: see fileid_linux.go. Elsewhere records are always checked
// by hashing the file.
type fileIdentity struct {
	Dev, Inode uint64
	CTime      int64
}

func identityOf(os.FileInfo) (fileIdentity, bool) { return fileIdentity{}, false }
