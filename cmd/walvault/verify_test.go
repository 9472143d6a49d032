package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runVerifyOrCheck(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"walvault"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestVerifyAndCheckCommands(t *testing.T) {
	repo := "file://" + t.TempDir()
	for _, args := range [][]string{
		{"verify", "--repo", repo, "extra"},
		{"check", "--repo", repo, "extra"},
		{"verify", "--repo", "ftp://x"},
	} {
		if _, stderr, code := runVerifyOrCheck(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (usage)\n%s", args, code, exitUsage, stderr)
		}
	}
	// An empty repository: nothing was archived, which verify calls a
	// problem (exit 1), in text and in JSON.
	stdout, stderr, code := runVerifyOrCheck(t, "verify", "--repo", repo)
	if code != exitFailed || !strings.Contains(stdout, "PROBLEM: ") || !strings.Contains(stdout, "summary: repository has problems") || !strings.Contains(stderr, "verify found problems") {
		t.Fatalf("verify of an empty repository: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = runVerifyOrCheck(t, "verify", "--json", "--repo", repo)
	var doc map[string]any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != exitFailed || doc["ok"] != false {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, stdout)
	}
	stdout, _, code = runVerifyOrCheck(t, "check", "--json", "--repo", repo, "--pg-conn", "host=127.0.0.1 port=1 connect_timeout=1")
	var lines []map[string]any
	if err := json.Unmarshal([]byte(stdout), &lines); err != nil || code != exitFailed || len(lines) < 10 {
		t.Fatalf("check --json without PostgreSQL: exit %d, %v\n%s", code, err, stdout)
	}
}

func TestSecretValues(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
	t.Setenv("PGPASSWORD", "pg-env-password")
	t.Setenv("HARMLESS", "visible")
	got := strings.Join(secretValues("host=db password=conn-password"), ",")
	for _, want := range []string{"aws-secret-value", "pg-env-password", "conn-password"} {
		if !strings.Contains(got, want) {
			t.Errorf("secretValues lacks %q: %s", want, got)
		}
	}
	if strings.Contains(got, "visible") {
		t.Errorf("secretValues took a harmless variable: %s", got)
	}
}
