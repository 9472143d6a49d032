package storage

import (
	"fmt"
	"strings"
)

// ValidateKey checks a key against the Backend contract, so every backend
// refuses the same malformed keys instead of mapping them onto odd paths.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid key %q: empty", key)
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("invalid key %q: leading or trailing slash", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid key %q: empty, . or .. element", key)
		}
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("invalid key %q: backslash or NUL", key)
	}
	return nil
}
