package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/retention"
	"github.com/walvault/walvault/storage/open"
	"github.com/walvault/walvault/storage/s3"
	"github.com/walvault/walvault/verify"
)

// backupFaultRig is a Versity gateway behind an HTTP fault proxy, and
// PostgreSQL 15 whose archive_command reaches the gateway through that
// same proxy, as backup-push does: one outage hits both.
type backupFaultRig struct {
	gw     *testenv.S3Server
	tcp    *testenv.FaultProxy     // walvault's endpoint: stalls, resets, slows
	proxy  *testenv.HTTPFaultProxy // behind tcp: fails chosen requests
	bucket string
	r      *repo    // env through the proxy; backend straight to the gateway
	direct []string // env straight to the gateway, for looking
	pg     *testenv.Postgres
	copies string // what PostgreSQL archived, as it archived it
}

func startBackupFaultRig(t *testing.T) *backupFaultRig {
	t.Helper()
	gw := testenv.StartVersity(t)
	gw.UseAsAWSChain(t) // the test's own backend reads the AWS chain
	bucket := "walvault-faults"
	gw.CreateBucket(t, bucket, false)
	url := "s3://" + bucket + "/cluster1"
	loc, err := open.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.New(t.Context(), s3.Config{Bucket: loc.Bucket, Prefix: loc.Prefix, Endpoint: gw.Endpoint, PathStyle: true, Region: gw.Region})
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartHTTPFaultProxy(t, gw.Endpoint)
	tcp := testenv.StartFaultProxy(t, proxy.Endpoint)
	rig := &backupFaultRig{
		gw: gw, tcp: tcp, proxy: proxy, bucket: bucket,
		// 5 MiB S3 parts: the backup's 8 MiB parts go as multipart uploads.
		r:      &repo{name: "s3", url: url, env: append(gw.EnvThrough(tcp.Endpoint()), "WALVAULT_REPO="+url, "WALVAULT_S3_PART_SIZE=5MiB"), backend: b},
		direct: append(gw.Env(), "WALVAULT_REPO="+url),
	}
	rig.pg, rig.copies = archivingServer(t, rig.r)
	// About 13 MB that lz4 hardly compresses, so parts are several S3
	// parts each.
	rig.pg.SQL(t, "CREATE TABLE junk AS SELECT md5(g::text) || md5((-g)::text) AS x FROM generate_series(1, 120000) g")
	rig.pg.WaitArchived(t, rig.pg.SwitchWAL(t), 60*time.Second)
	return rig
}

// blockArchiving makes every upload of WAL fail: archive_command fails,
// and backup-push waits for it at the end of each backup.
func (rig *backupFaultRig) blockArchiving() {
	rig.proxy.Add(testenv.HTTPFault{Method: "PUT", Path: "/wal/", Status: 500, Code: "InternalError"})
}

// archiverWaitQuery is what backup-push asks PostgreSQL while it waits for
// the archiver to store the backup's last segment (basebackup's
// archivedQuery).
const archiverWaitQuery = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"

// waitSentAll waits until PostgreSQL has sent the whole backup while
// backup-push still runs. On a primary PostgreSQL no longer waits for
// archiving at the end of a backup (backup-push waits itself), so it ends
// the backup at once: its progress row shows the last phase ("waiting for
// wal archiving to finish", which PostgreSQL 15 shows while it stops the
// backup and sends the manifest, waiting or not) or, once seen, is gone.
// With inArchiveWait it waits until backup-push, the backup sent, waits
// for the archiver.
func (rig *backupFaultRig) waitSentAll(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, inArchiveWait bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	seen := false
	for {
		phase := rig.pg.SQL(t, "SELECT coalesce(max(phase), '') FROM pg_stat_progress_basebackup")
		seen = seen || phase != ""
		sent := phase == "waiting for wal archiving to finish" || (seen && phase == "")
		if inArchiveWait {
			sent = seen && phase == "" &&
				rig.pg.SQL(t, "SELECT count(*) FROM pg_stat_activity WHERE query = '"+strings.ReplaceAll(archiverWaitQuery, "'", "''")+"'") == "1"
		}
		if sent {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("PostgreSQL never sent the whole backup (last phase %q), or backup-push never waited for the archiver; backup-push: %s", phase, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNoUploads fails if a multipart upload is left in the bucket.
func (rig *backupFaultRig) checkNoUploads(t *testing.T) {
	t.Helper()
	out, err := rig.gw.Client(t).ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(rig.bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload left behind: %s (started %v)", aws.ToString(u.Key), aws.ToTime(u.Initiated))
	}
}

// checkServerEndedBackup waits (a few seconds at most) until PostgreSQL
// runs no base backup any more: the walsender ended it.
func (rig *backupFaultRig) checkServerEndedBackup(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := rig.pg.SQL(t, "SELECT count(*) FROM pg_stat_progress_basebackup")
		if n == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("PostgreSQL still runs %s base backup(s) 5s after backup-push exited: the walsender did not end it", n)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newIncomplete returns the one backup backup-list shows that is not in
// before, and fails unless it is INCOMPLETE.
func (rig *backupFaultRig) newIncomplete(t *testing.T, before map[string]bool) string {
	t.Helper()
	var fresh []backupListing
	for _, b := range listBackups(t, rig.direct) {
		if !before[b.ID] {
			fresh = append(fresh, b)
		}
	}
	if len(fresh) != 1 || fresh[0].Status != string(repository.StatusIncomplete) {
		t.Fatalf("backups left by the failed backup-push: %+v, want one INCOMPLETE", fresh)
	}
	return fresh[0].ID
}

func listedBackupIDs(t *testing.T, env []string) map[string]bool {
	ids := map[string]bool{}
	for _, b := range listBackups(t, env) {
		ids[b.ID] = true
	}
	return ids
}

// walvaultCommand is the built binary with env on a clean environment, as
// walvault() runs it, for a test that starts, signals or times it.
func walvaultCommand(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(testenv.BuildWalvault(t), args...)
	cmd.Env = append(append(cleanEnv(), "WALVAULT_PREFETCH=0"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// waitExit waits up to limit for cmd to end, killing it after that (a hang
// is a failure, not a stuck test run).
func waitExit(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer, start time.Time, limit time.Duration) result {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %v: killed\nstderr: %s", cmd.Args[1:], limit, stderr)
	}
	res := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run walvault: %v", err)
	}
	return res
}

// lastStderrLine is the last line a command printed: the error walvault
// ends with.
func lastStderrLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// checkArchiveFetchable fetches every file PostgreSQL archived and
// compares it with the copy archive_command made.
func (rig *backupFaultRig) checkArchiveFetchable(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(rig.copies)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, e := range entries {
		dest := filepath.Join(out, e.Name())
		if res := walvault(t, rig.direct, "wal-fetch", e.Name(), dest); res.code != 0 {
			t.Fatalf("wal-fetch %s: %v", e.Name(), res)
		}
		if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(rig.copies, e.Name()))) {
			t.Fatalf("%s fetched back differs from what PostgreSQL archived", e.Name())
		}
	}
	if len(entries) < 3 {
		t.Fatalf("only %d files archived, want at least 3", len(entries))
	}
}

// TestBackupPushStopsUnderFaults: an upload cut by a short outage once
// PostgreSQL has sent the whole backup (archive_command failing, so that
// backup-push waits for its last segment) is sent again and the backup
// completes once archiving works; on SIGTERM backup-push stops within
// seconds: exit non-zero, no multipart upload left, the backup INCOMPLETE,
// the server's backup ended. Once the storage is back, backup-push works
// and no WAL was lost.
func TestBackupPushStopsUnderFaults(t *testing.T) {
	rig := startBackupFaultRig(t)
	pg, r := rig.pg, rig.r

	t.Run("upload cut once PostgreSQL has sent the whole backup", func(t *testing.T) {
		before := listedBackupIDs(t, rig.direct)
		rig.blockArchiving()
		// Slow uploads keep a part's upload in flight once PostgreSQL has
		// sent everything.
		rig.tcp.Bandwidth(t, 1024)
		cmd, stdout, stderr := walvaultCommand(t, r.env, "backup-push", "--pg-conn", pg.ConnString(), "--part-size", "8MiB")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rig.waitSentAll(t, cmd, stderr, false)
		// The outage: connections are cut and refused for 3 seconds,
		// longer than the SDK's own three attempts at a part last.
		cut := time.Now()
		rig.tcp.Refuse(t)
		time.Sleep(3 * time.Second)
		rig.tcp.Heal(t)
		rig.proxy.Clear() // archiving works again
		res := waitExit(t, cmd, stdout, stderr, cut, 90*time.Second)
		t.Logf("backup-push with its upload cut: exit %d %v after the cut: %s", res.code, res.elapsed.Round(time.Millisecond), lastStderrLine(res.stderr))
		if res.code != 0 {
			t.Fatalf("backup-push through a 3s outage: %v\nwant the cut part sent again and the backup done", res)
		}
		rig.checkNoUploads(t)
		var fresh []string
		for _, b := range listBackups(t, rig.direct) {
			if !before[b.ID] {
				fresh = append(fresh, b.ID)
			}
		}
		if len(fresh) != 1 {
			t.Fatalf("backups after backup-push through an outage: new %q, want one", fresh)
		}
		waitDone(t, r, fresh[0])
	})

	t.Run("healed", func(t *testing.T) {
		rig.proxy.Clear()
		backupPush(t, r, pg, "--part-size", "8MiB")
		rig.checkNoUploads(t)
	})

	t.Run("SIGTERM while backup-push waits for archiving", func(t *testing.T) {
		before := listedBackupIDs(t, rig.direct)
		// Everything the last backup left is archived before archiving is
		// blocked: an archiver failure after the last archived segment
		// would make backup-push prove archiving first (switch WAL and
		// wait), and it would never reach the state this step tests.
		pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
		rig.blockArchiving()
		cmd, stdout, stderr := walvaultCommand(t, r.env, "backup-push", "--pg-conn", pg.ConnString(), "--part-size", "8MiB")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rig.waitSentAll(t, cmd, stderr, true)
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		res := waitExit(t, cmd, stdout, stderr, start, 60*time.Second)
		t.Logf("backup-push after SIGTERM: exit %d after %v: %s", res.code, res.elapsed.Round(time.Millisecond), lastStderrLine(res.stderr))
		if res.code == 0 || res.elapsed > 10*time.Second {
			t.Fatalf("backup-push after SIGTERM: %v\nwant a non-zero exit within seconds", res)
		}
		if line := lastStderrLine(res.stderr); !strings.Contains(line, "was interrupted and not recorded") {
			t.Errorf("last line %q: want it to say the backup was interrupted", line)
		}
		rig.checkNoUploads(t)
		rig.newIncomplete(t, before)
		rig.checkServerEndedBackup(t)
	})

	t.Run("healed again, nothing lost", func(t *testing.T) {
		rig.proxy.Clear()
		id := backupPush(t, r, pg, "--part-size", "8MiB")
		waitDone(t, r, id)
		pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
		rig.checkNoUploads(t)
		rig.checkArchiveFetchable(t)
	})
}

// TestOrphanUploadsReportedAndAborted: a multipart upload nobody completed
// or aborted (a killed push) under the repository's prefix is a warning in
// verify and is aborted by delete; uploads outside the prefix, or of keys
// walvault never writes, are not walvault's and stay. The CLI waits an hour; the library takes the age.
func TestOrphanUploadsReportedAndAborted(t *testing.T) {
	gw := testenv.StartVersity(t)
	gw.UseAsAWSChain(t)
	bucket := "walvault-orphans"
	gw.CreateBucket(t, bucket, false)
	url := "s3://" + bucket + "/cluster1"
	env := append(gw.Env(), "WALVAULT_REPO="+url)
	b, err := open.Stacked(t.Context(), url, open.Options{S3: open.S3Options{Endpoint: gw.Endpoint, PathStyle: true, Region: gw.Region}})
	if err != nil {
		t.Fatal(err)
	}
	repotest.Init(t, b, repository.NewIdentity(7312345678901234567, 16<<20, 15, repository.LZ4, "test", time.Now()))
	client := gw.Client(t)
	orphan := "cluster1/backups/20261125T103000Z/base.tar.00003.lz4"
	// Another writer's upload under the prefix (the repository could be at
	// a bucket's root) is not walvault's either.
	foreign := "cluster1/exports/dump.bin"
	for _, key := range []string{orphan, "elsewhere/x", foreign} {
		if _, err := client.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}

	// The CLI leaves an upload younger than an hour alone.
	if res := walvault(t, env, "verify"); res.code != 0 || strings.Contains(res.stdout, "incomplete multipart upload") {
		t.Errorf("verify with an upload a minute old: %v\nwant exit 0 and no incomplete upload reported", res)
	}
	if res := walvault(t, env, "delete", "--retain", "REDUNDANCY 1", "--confirm"); strings.Contains(res.stdout, "incomplete upload") {
		t.Errorf("delete with an upload a minute old: %v\nwant it left alone", res)
	}

	report, err := verify.Run(t.Context(), b, verify.Options{UploadAge: 0})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range report.Warnings {
		if f.Kind == verify.KindIncompleteUpload {
			found = append(found, f.Key)
		}
	}
	if strings.Join(found, " ") != "backups/20261125T103000Z/base.tar.00003.lz4" {
		t.Fatalf("verify's incomplete_upload warnings: got %q, want the orphan under the repository", found)
	}

	plan := retention.Plan{Now: time.Now()}
	if err := retention.PlanUploads(t.Context(), b, &plan, 0, retention.Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := retention.Apply(t.Context(), b, plan, retention.Options{CallTimeout: 30 * time.Second})
	if err != nil || rep.Aborted != 1 {
		t.Fatalf("Apply: aborted %d, %v; want the orphan aborted", rep.Aborted, err)
	}
	out, err := client.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, u := range out.Uploads {
		left = append(left, aws.ToString(u.Key))
	}
	sort.Strings(left)
	if strings.Join(left, " ") != foreign+" elsewhere/x" {
		t.Errorf("uploads after delete: %q, want the one outside the repository and the foreign one inside it", left)
	}
}
