package basebackup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
)

// TestCheckVersionMajors: PostgreSQL 15 to 18 are backed up; an older or
// newer major is refused in one line before anything is written.
func TestCheckVersionMajors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		num  int
		want []string // nil: accepted
	}{
		{140011, []string{"PostgreSQL 14.11 is too old"}},
		{150010, nil},
		{160014, nil},
		{170010, nil},
		{180004, nil},
		{190000, []string{"PostgreSQL 19.0 is not supported", "PostgreSQL 15 to 18"}},
	} {
		err := checkVersion(serverSettings{VersionNum: tc.num})
		if tc.want == nil {
			if err != nil {
				t.Errorf("PostgreSQL %d: got %v, want it accepted", tc.num, err)
			}
			continue
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("PostgreSQL %d: got %v, want a refusal", tc.num, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
				t.Errorf("PostgreSQL %d: got %q, want one line containing %q", tc.num, err, w)
			}
		}
	}
}

// TestCheckRepositoryUpgradedCluster: a cluster upgraded with pg_upgrade
// (a new system identifier, a new major) is told to start a new
// repository prefix.
func TestCheckRepositoryUpgradedCluster(t *testing.T) {
	t.Parallel()
	b := mem.New()
	old := repository.NewIdentity(42, 16<<20, 15, repository.LZ4, "db-1", time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	if _, err := repository.EnsureIdentity(t.Context(), b, old, nil); err != nil {
		t.Fatal(err)
	}
	_, err := checkRepository(t.Context(), b, pg.SystemInfo{SystemID: "7712050215942653825", Timeline: 1}, serverSettings{VersionNum: 180004, SegmentSize: 16 << 20})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, repository.ErrWrongCluster) {
		t.Fatalf("checkRepository: got %v, want a refusal matching ErrWrongCluster", err)
	}
	for _, w := range []string{"system identifier 42, but this server's is 7712050215942653825", "created by PostgreSQL 15, this server runs PostgreSQL 18", "pg_upgrade", "new repository prefix"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("checkRepository: %q lacks %q", err, w)
		}
	}
}
