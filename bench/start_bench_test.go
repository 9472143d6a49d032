package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// BenchmarkStart measures process start: the walvault binary running a
// command that does no work, against a minimal Go program built in the
// same run by the same toolchain. Each iteration runs every command once,
// one after the other, so they share the machine's load of the moment:
//
//	go-minimal      package main; func main() {}
//	aws-sdk-floor   a program that only imports the AWS SDK's s3 and config
//	                packages, as any S3 client in Go must: what their
//	                package initialisation alone costs a process
//	version         walvault --version
//	wal-push-help   walvault wal-push --help
//	wal-fetch-help  walvault wal-fetch --help
//	lean-wal-push-help  the same from the static build README's Install
//	                names (CGO_ENABLED=0 -tags urfave_cli_no_docs)
//	handed-off      walvault wal-fetch of a segment the archive lacks, in a
//	                data directory a wal-helper serves: the call hands its
//	                command line over from internal/handoff's ELF
//	                constructor, before the Go runtime starts (the default,
//	                cgo build)
//	lean-handed-off the same call from the static build, which hands over
//	                from internal/handoff's Go init, after the runtime's start
//
// What separates walvault from go-minimal is the Go runtime's work on a
// larger binary and the initialisation of every linked package, which
// every process pays whatever its command: the start-up cost of each
// archive_command and restore_command call. It reports, per command, the
// median wall time (NAME-ms) and user plus system CPU time (NAME-cpu-ms)
// of its runs, and the ratio of each median to go-minimal's (NAME-x,
// NAME-cpu-x). Medians, because other load on the machine makes single
// starts spread by several times. It needs no server; the target (issue
// 17) is at most 3 ms, 1.5x go-minimal.
func BenchmarkStart(b *testing.B) {
	minimal := buildMinimalGo(b)
	sdkFloor := buildSDKFloor(b)
	bin := testenv.BuildWalvault(b)
	lean := buildLeanWalvault(b)
	// A clean environment: no WALVAULT_* or AWS_* of the caller.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	// A helper serves only calls from its own binary: one per build.
	served, leanServed := handedOffSetup(b, bin, env), handedOffSetup(b, lean, env)
	variants := []struct {
		name string
		args []string
		dir  string   // the working directory, when it matters
		env  []string // the environment, when it is not the clean one
		code int      // the exit code of a run that works
	}{
		{name: "go-minimal", args: []string{minimal}},
		{name: "aws-sdk-floor", args: []string{sdkFloor}},
		{name: "version", args: []string{bin, "--version"}},
		{name: "wal-push-help", args: []string{bin, "wal-push", "--help"}},
		{name: "wal-fetch-help", args: []string{bin, "wal-fetch", "--help"}},
		{name: "lean-wal-push-help", args: []string{lean, "wal-push", "--help"}},
		// restore_command asking for a segment the archive lacks (exit 1),
		// answered by a wal-helper: the hand-off's cost, the helper's
		// one stat of a file:// repository aside.
		{name: "handed-off", args: []string{bin, "wal-fetch", "0000000100000000000000FF", "pg_wal/RECOVERYXLOG"}, dir: served.dir, env: served.env, code: 1},
		{name: "lean-handed-off", args: []string{lean, "wal-fetch", "0000000100000000000000FF", "pg_wal/RECOVERYXLOG"}, dir: leanServed.dir, env: leanServed.env, code: 1},
	}
	wall := make([][]time.Duration, len(variants))
	cpu := make([][]time.Duration, len(variants))
	b.ResetTimer()
	for range b.N {
		for i, v := range variants {
			cmd := exec.Command(v.args[0], v.args[1:]...)
			cmd.Env, cmd.Dir = env, v.dir
			if v.env != nil {
				cmd.Env = v.env
			}
			start := time.Now()
			if out, err := cmd.CombinedOutput(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != v.code {
				b.Fatalf("%v: %v, want exit %d\n%s", v.args, err, v.code, out)
			}
			wall[i] = append(wall[i], time.Since(start))
			cpu[i] = append(cpu[i], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
	}
	b.StopTimer()
	// Every handed-off call must have been run by its helper, not
	// declined into a process of its own (the exit code is the same).
	served.helper.checkRan(b, b.N)
	leanServed.helper.checkRan(b, b.N)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	baseWall, baseCPU := medianDuration(wall[0]), medianDuration(cpu[0])
	for i, v := range variants {
		w, c := medianDuration(wall[i]), medianDuration(cpu[i])
		b.ReportMetric(ms(w), v.name+"-ms")
		b.ReportMetric(ms(c), v.name+"-cpu-ms")
		if i > 0 {
			b.ReportMetric(float64(w)/float64(baseWall), v.name+"-x")
			if baseCPU > 0 {
				b.ReportMetric(float64(c)/float64(baseCPU), v.name+"-cpu-x")
			}
		}
	}
}

// handedOff is a data directory that a wal-helper serves.
type handedOff struct {
	dir    string
	env    []string // the environment its calls need
	helper *walHelper
}

// handedOffSetup makes a data directory served by a wal-helper of bin,
// with a file:// repository holding one segment.
func handedOffSetup(b *testing.B, bin string, env []string) handedOff {
	b.Helper()
	pgdata, repoDir := b.TempDir(), b.TempDir()
	env = append(slices.Clone(env), "WALVAULT_REPO=file://"+repoDir)
	seg := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	data := waltest.Cluster{SystemID: 7300000000000000001, SegmentSize: segBytes}.Segment(b, seg, 1)
	if err := os.Mkdir(filepath.Join(pgdata, "pg_wal"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgdata, "pg_wal", seg.String()), data, 0o600); err != nil {
		b.Fatal(err)
	}
	push := exec.Command(bin, "wal-push", "pg_wal/"+seg.String())
	push.Dir, push.Env = pgdata, env
	if out, err := push.CombinedOutput(); err != nil {
		b.Fatalf("wal-push of the real segment: %v\n%s", err, out)
	}
	return handedOff{dir: pgdata, env: env, helper: startWALHelper(b, bin, pgdata, env)}
}

// buildMinimalGo builds an empty Go program in a module of its own, with
// the toolchain that builds walvault.
func buildMinimalGo(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	files := map[string]string{
		"go.mod":  "module minimal\n",
		"main.go": "package main\n\nfunc main() {}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	out := filepath.Join(dir, "minimal")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build of a minimal program: %v\n%s", err, b)
	}
	return out
}

// buildSDKFloor builds a program whose only work is the initialisation of
// the AWS SDK packages walvault's S3 backend imports, with walvault's own
// module requirements (the same versions).
func buildSDKFloor(tb testing.TB) string {
	tb.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	dir := tb.TempDir()
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		tb.Fatalf("%v", err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		tb.Fatalf("%v", err)
	}
	modText := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(mod), "module sdkfloor")
	files := map[string]string{
		"go.mod": modText,
		"go.sum": string(sum),
		"main.go": "package main\n\nimport (\n" +
			"\t_ \"github.com/aws/aws-sdk-go-v2/config\"\n" +
			"\t_ \"github.com/aws/aws-sdk-go-v2/service/s3\"\n)\n\nfunc main() {}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	out := filepath.Join(dir, "sdkfloor")
	cmd := exec.Command("go", "build", "-mod=mod", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build of the AWS SDK floor program: %v\n%s", err, b)
	}
	return out
}

// buildLeanWalvault builds walvault the way the README's install section
// gives for a static binary: no C library to load, no ELF constructor,
// and without urfave/cli's documentation generator.
func buildLeanWalvault(tb testing.TB) string {
	tb.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	out := filepath.Join(tb.TempDir(), "walvault-lean")
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", out, "./cmd/walvault")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build of the lean walvault: %v\n%s", err, b)
	}
	return out
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
