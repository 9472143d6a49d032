package redact

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	in := "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG walvault wal-push %p; password=hunter2 PGPASSWORD='x y' postgres://u:pw@h/db token=abc host=db password = spaced sslmode=bogus" +
		` archive_command is "PGPASSWORD=\"first second\" walvault wal-push %p" postgres://u:p@ss@h2/db password= after`
	got := String(in)
	for _, leak := range []string{"wJalrXUtnFEMI", "hunter2", "'x y'", ":pw@", "abc", "spaced", "first", "second", "ss@", "after"} {
		if strings.Contains(got, leak) {
			t.Errorf("String left %q in %q", leak, got)
		}
	}
	for _, kept := range []string{"walvault wal-push %p", "host=db", "sslmode=bogus", "postgres://u:", "h2/db"} {
		if !strings.Contains(got, kept) {
			t.Errorf("String removed %q, which is no secret: %q", kept, got)
		}
	}
	if s := "archived segment 000000010000000000000003 in 33ms"; String(s) != s {
		t.Errorf("String changed a line without secrets: %q", String(s))
	}
}
