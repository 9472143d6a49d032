package pg

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ControlSystemID reads the cluster's system identifier from
// DATADIR/global/pg_control: ControlFileData begins with it, 8 bytes in
// the host's byte order, on every major.
func ControlSystemID(dataDir string) (string, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return "", err
	}
	return strconv.FormatUint(binary.NativeEndian.Uint64(b[:]), 10), nil
}

// DataDirMajor reads the major version from DATADIR/PG_VERSION (0 when it
// cannot be read).
func DataDirMajor(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
