package storage

import (
	"errors"
	"fmt"
	"sort"
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

// ValidateMetadata applies the Backend contract to metadata: keys are
// lower-case ASCII letters, digits and '-'; values are printable ASCII.
func ValidateMetadata(md map[string]string) error {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same offender every time
	for _, k := range keys {
		if k == "" {
			return errors.New("invalid metadata: empty key")
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("invalid metadata key %q: use lower-case letters, digits and '-'", k)
			}
		}
		v := md[k]
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("invalid metadata value for %q: byte %#02x at %d is not printable ASCII", k, c, i)
			}
		}
	}
	return nil
}
