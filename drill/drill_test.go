package drill

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/wal"
)

// fakeBinDir makes a directory whose postgres prints version.
func fakeBinDir(t *testing.T, version string, withAmcheck bool) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + " (Debian " + version + "-1)'\n"
	if err := os.WriteFile(filepath.Join(dir, "postgres"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if withAmcheck {
		if err := os.WriteFile(filepath.Join(dir, "pg_amcheck"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindBinaries(t *testing.T) {
	ctx := context.Background()
	v15 := fakeBinDir(t, "15.10", true)
	v16 := fakeBinDir(t, "16.4", false)
	noExec := t.TempDir()
	if err := os.WriteFile(filepath.Join(noExec, "postgres"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		major   int
		want    string // Version
		amcheck bool
		wantErr string
	}{
		{"matching", v15, 15, "15.10", true, ""},
		{"any version when the backup has none", v16, 0, "16.4", false, ""},
		{"wrong major", v16, 15, "", false, "version 16.4, but the backup was taken from PostgreSQL 15"},
		{"missing", "/nonexistent", 15, "", false, "no postgres program"},
		{"not executable", noExec, 15, "", false, "not an executable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bins, err := findBinaries(ctx, tc.dir, tc.major)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", bins, err, tc.wantErr)
				}
				return
			}
			if err != nil || bins.Version != tc.want || (bins.Amcheck != "") != tc.amcheck || bins.Postgres != filepath.Join(tc.dir, "postgres") {
				t.Fatalf("got %+v, %v; want version %s, amcheck %v", bins, err, tc.want, tc.amcheck)
			}
		})
	}
	// Without --pg-bin: /usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin, then pg_config;
	// a major nobody has installed is an error that says what was tried.
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(ctx, "", 99)
	if err == nil || !strings.Contains(err.Error(), "/usr/lib/postgresql/99/bin") || !strings.Contains(err.Error(), "/usr/pgsql-99/bin") || !strings.Contains(err.Error(), "pg_config") || !strings.Contains(err.Error(), "--pg-bin") {
		t.Fatalf("no PostgreSQL 99: got %v", err)
	}
}

func TestNewDrillOptions(t *testing.T) {
	rc := func(string) string { return "walvault wal-fetch %f %p" }
	name := "point"
	tests := []struct {
		name       string
		opts       Options
		wantAction string
		wantPause  bool
		wantErr    string
	}{
		{"latest", Options{RestoreCommand: rc}, "", false, ""},
		{"target promotes by default", Options{RestoreCommand: rc, Target: restore.Target{Name: name}}, "promote", false, ""},
		{"pause", Options{RestoreCommand: rc, Target: restore.Target{Name: name, Action: "pause"}}, "pause", true, ""},
		{"shutdown", Options{RestoreCommand: rc, Target: restore.Target{Name: name, Action: "shutdown"}}, "", false, "shutdown"},
		{"archiving back on", Options{RestoreCommand: rc, ServerSettings: []string{"Archive_Mode=on"}}, "", false, "archive_mode"},
		{"listening elsewhere", Options{RestoreCommand: rc, ServerSettings: []string{"listen_addresses=*"}}, "", false, "listen_addresses"},
		{"malformed setting", Options{RestoreCommand: rc, ServerSettings: []string{"shared_buffers"}}, "", false, "name=value"},
		{"bad amcheck mode", Options{RestoreCommand: rc, Amcheck: "sometimes"}, "", false, "amcheck"},
		{"no restore_command", Options{}, "", false, "restore_command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newDrill(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || d.target.Action != tc.wantAction || d.wantPause != tc.wantPause || d.opts.Amcheck != AmcheckOn || d.opts.DBName != "postgres" {
				t.Fatalf("got %+v, %v", d, err)
			}
		})
	}
}

func TestServerSettingsNeverArchive(t *testing.T) {
	s := &scratch{sockDir: "/tmp/x/sock", hbaFile: "/tmp/x/pg_hba.conf"}
	set := serverSettings(s, 5433, 15, []string{"shared_buffers=64MB"})
	want := []string{"archive_mode=off", "archive_command=", "archive_library=", "primary_conninfo=", "synchronous_standby_names=",
		"listen_addresses=127.0.0.1", "port=5433", "unix_socket_directories=/tmp/x/sock", "hba_file=/tmp/x/pg_hba.conf", "shared_buffers=64MB"}
	for _, w := range want {
		found := false
		for _, kv := range set {
			found = found || kv == w
		}
		if !found {
			t.Errorf("server settings lack %q: %v", w, set)
		}
	}
	for _, kv := range serverSettings(s, 5433, 14, nil) {
		if strings.HasPrefix(kv, "archive_library") {
			t.Errorf("PostgreSQL 14 has no archive_library, which would stop it starting: %v", kv)
		}
	}
}

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "postgresql.auto.conf"), []byte("restore_command = 'x'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := appendSafetySettings(dir, 15); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	for _, want := range []string{"restore_command = 'x'\n", "archive_mode = 'off'\n", "archive_command = ''\n", "primary_conninfo = ''\n"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("postgresql.auto.conf lacks %q:\n%s", want, got)
		}
	}
	u := serverUser{name: "me"}
	if err := ensureConfigFile(dir, u); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgresql.conf")); err != nil {
		t.Errorf("no postgresql.conf written for a backup without one: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ensureConfigFile(dir, u); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "postgresql.conf")); string(b) != "mine" {
		t.Errorf("an existing postgresql.conf was replaced: %q", b)
	}
}

func TestScratch(t *testing.T) {
	parent := t.TempDir()
	s, err := newScratch(parent, serverUser{name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(s.root) != parent || !strings.HasPrefix(filepath.Base(s.root), "walvault-drill-") || filepath.Dir(s.dataDir) != s.root {
		t.Fatalf("scratch layout: %+v", s)
	}
	fi, err := os.Stat(s.root)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("scratch directory: %v, %v; want mode 0700", fi, err)
	}
	hba, _ := os.ReadFile(s.hbaFile)
	if strings.Contains(string(hba), "host") || !strings.Contains(string(hba), "local all all trust") {
		t.Errorf("pg_hba.conf must allow unix socket connections only:\n%s", hba)
	}
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.root); !os.IsNotExist(err) {
		t.Fatalf("scratch directory still there after remove: %v", err)
	}

	// A parent whose path is too long for a unix socket gets a socket
	// directory of its own, removed with the rest.
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err = newScratch(long, serverUser{name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ownSock == "" || strings.HasPrefix(s.sockDir, s.root) {
		t.Fatalf("socket directory %s for a long scratch path %s", s.sockDir, s.root)
	}
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.ownSock); !os.IsNotExist(err) {
		t.Errorf("the socket directory %s was left behind", s.ownSock)
	}

	for _, bad := range []string{"/nonexistent/scratch", filepath.Join(parent, "file")} {
		os.WriteFile(filepath.Join(parent, "file"), nil, 0o600)
		if _, err := newScratch(bad, serverUser{name: "me"}); err == nil || !strings.Contains(err.Error(), "cannot create the scratch directory") {
			t.Errorf("scratch under %s: got %v", bad, err)
		}
	}
}

// TestScratchTablespaces: every tablespace of the backup goes into the
// scratch directory, by the location restore's mapping is keyed on.
func TestScratchTablespaces(t *testing.T) {
	m := repository.BackupManifest{Archives: []repository.BackupArchive{
		{Name: "base.tar"},
		{Name: "16385.tar", TablespaceOID: 16385, TablespaceLocation: "/srv/ts one/"},
		{Name: "16390.tar", TablespaceOID: 16390, TablespaceLocation: "/srv/ts2"},
		// Malformed: left for restore to refuse as damaged.
		{Name: "extra.tar", TablespaceLocation: "/srv/extra"},
		{Name: "16400.tar", TablespaceOID: 16400, TablespaceLocation: "relative"},
	}}
	got := scratchTablespaces(m, "/scratch/walvault-drill-1/tablespaces")
	want := map[string]string{
		"/srv/ts one": "/scratch/walvault-drill-1/tablespaces/16385",
		"/srv/ts2":    "/scratch/walvault-drill-1/tablespaces/16390",
	}
	if !maps.Equal(got, want) {
		t.Errorf("scratchTablespaces: got %v, want %v", got, want)
	}
}

func TestTailFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString(strings.Repeat("x", 10) + "\n")
	}
	b.WriteString("last\n")
	os.WriteFile(p, []byte(b.String()), 0o600)
	got := tailFile(p, 3, 1<<10)
	if lines := strings.Split(got, "\n"); len(lines) != 3 || lines[2] != "last" {
		t.Errorf("tail: %q", got)
	}
	if got := tailFile(p, 1000, 50); len(got) > 50 {
		t.Errorf("tail read more than its limit: %d bytes", len(got))
	}
	if tailFile(filepath.Join(t.TempDir(), "none"), 3, 100) != "" {
		t.Error("tail of a missing file")
	}
}

// fakeServerEnv makes the test binary act as a server (see TestMain):
// "obey" exits on SIGINT; "ignore" ignores SIGINT and SIGQUIT, starts a
// child and writes its pid to WALVAULT_FAKE_CHILD_PID.
const fakeServerEnv = "WALVAULT_DRILL_FAKE_SERVER"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeServerEnv) {
	case "obey":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT)
		<-ch
		os.Exit(0)
	case "ignore":
		signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
		child := exec.Command("sleep", "300")
		if err := child.Start(); err != nil {
			os.Exit(3)
		}
		os.WriteFile(os.Getenv("WALVAULT_FAKE_CHILD_PID"), []byte(strconv.Itoa(child.Process.Pid)), 0o600)
		child.Wait()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startFakeServer(t *testing.T, mode string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, fakeServerEnv+"="+mode)...)
	cmd.SysProcAttr = serverUser{}.procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return watch(cmd, discard())
}

// TestStopEscalates: a server that ignores fast and immediate shutdown is
// killed with its whole process group.
func TestStopEscalates(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "child.pid")
	srv := startFakeServer(t, "ignore", "WALVAULT_FAKE_CHILD_PID="+marker)
	srv.waits = [3]time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var child []byte
	for len(child) == 0 && time.Now().Before(deadline) {
		child, _ = os.ReadFile(marker)
		time.Sleep(10 * time.Millisecond)
	}
	if len(child) == 0 {
		srv.stop()
		t.Fatal("the fake server started no child")
	}
	began := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if !srv.exited() || time.Since(began) > 4*time.Second {
		t.Fatalf("stop returned after %v, exited %v", time.Since(began), srv.exited())
	}
	pid := strings.TrimSpace(string(child))
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if os.IsNotExist(err) || strings.Contains(string(b), ") Z ") { // gone, or a zombie waiting for init
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-srv.cmd.Process.Pid, syscall.SIGKILL)
	t.Fatalf("the server's child %s survived stop", pid)
}

func TestStopFast(t *testing.T) {
	srv := startFakeServer(t, "obey")
	srv.waits = [3]time.Duration{5 * time.Second, time.Second, time.Second}
	time.Sleep(200 * time.Millisecond) // let it install its handler
	began := time.Now()
	if err := srv.stop(); err != nil || time.Since(began) > 4*time.Second {
		t.Fatalf("stop of a server that obeys SIGINT: %v after %v", err, time.Since(began))
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("a second stop: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestReplayEndProblem(t *testing.T) {
	const seg = 16 << 20
	newest := wal.Segment{Timeline: 1, Seg: 7}
	tests := []struct {
		end  wal.LSN
		want string
	}{
		{wal.LSN(7<<24 + 0x60), ""},                           // inside the newest segment
		{wal.LSN(8 << 24), ""},                                // ended by a switch: the start of the next
		{wal.LSN(5<<24 + 0x1000), "000000010000000000000005"}, // stopped two segments early
	}
	for _, tc := range tests {
		got := replayEndProblem(tc.end, newest, seg)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("replay end %s: %q, want %q", tc.end, got, tc.want)
		}
	}
}

// TestServerEnvKeepsOwnHome: a temporary server run as the drill's own
// user keeps its HOME (the credential chain reads ~/.aws there, as it did
// for the drill); one run as another user gets that user's HOME, USER and
// LOGNAME. PGDATA, PGPORT and PGHOST never reach it (explore22c F4).
func TestServerEnvKeepsOwnHome(t *testing.T) {
	d := &drill{opts: Options{Env: []string{"HOME=/home/dba", "USER=dba", "AWS_PROFILE=walvault", "PGDATA=/var/lib/pg", "PGPORT=5432"}}}
	has := func(env []string, kv string) bool { return slices.Contains(env, kv) }
	same := d.serverEnv(serverUser{name: "dba", home: "/home/dba-passwd"})
	if !has(same, "HOME=/home/dba") || !has(same, "AWS_PROFILE=walvault") || has(same, "PGDATA=/var/lib/pg") || has(same, "PGPORT=5432") {
		t.Errorf("server as the drill's own user: env %q; want its HOME kept, PG variables dropped", same)
	}
	other := d.serverEnv(serverUser{name: "postgres", home: "/var/lib/postgresql", switched: true})
	if !has(other, "HOME=/var/lib/postgresql") || has(other, "HOME=/home/dba") || !has(other, "USER=postgres") || !has(other, "AWS_PROFILE=walvault") {
		t.Errorf("server as another user: env %q; want that user's HOME and USER", other)
	}
}
