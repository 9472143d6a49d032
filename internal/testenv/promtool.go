package testenv

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// PromtoolInstall says how to get promtool, Prometheus' checker of rules
// and metrics, where the tests look for it (scripts/install-deps.sh does
// this).
const PromtoolInstall = "./scripts/install-deps.sh   (it extracts promtool from Debian's prometheus package into $(go env GOPATH)/bin)"

// Promtool finds promtool in PATH or a Go bin directory. It fails the test,
// saying how to install it, when there is none.
func Promtool(t testing.TB) string {
	t.Helper()
	p, searched := findTool("promtool")
	if p == "" {
		t.Fatalf("testenv: promtool is not installed: not in PATH, %s.\nInstall it with:\n\t%s", strings.Join(searched, ", "), PromtoolInstall)
	}
	return p
}

// findTool looks for the program name in PATH, then in the bin directory of
// every GOPATH entry and /root/go/bin (where go install puts it, often not
// in PATH). It returns "" and the directories it searched beyond PATH when
// there is none.
func findTool(name string) (path string, searched []string) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			searched = append(searched, filepath.Join(d, "bin"))
		}
	}
	if !slices.Contains(searched, "/root/go/bin") {
		searched = append(searched, "/root/go/bin")
	}
	for _, d := range searched {
		if p := filepath.Join(d, name); isExecutable(p) == nil {
			return p, searched
		}
	}
	return "", searched
}
