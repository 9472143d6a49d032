//go:build !linux

package file

// linkNoReplace moves the file tmp to path only if path does not exist, in
// one atomic step: link(2), then removal of tmp. If path exists, the error
// satisfies errors.Is(err, os.ErrExist) and tmp is left for the caller.
func linkNoReplace(tmp, path string) error {
	return linkThenRemove(tmp, path)
}
