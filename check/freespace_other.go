//go:build !unix

package check

import "errors"

func freeSpace(string) (uint64, uint64, error) {
	return 0, 0, errors.New("free space is only checked on Unix")
}
