package integration

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// TestWalFetchOverwritten: "the attacker", with the credentials walvault
// uses, PUTs garbage over an archived segment in an Object Lock bucket. The
// locked original stays in the version history, and wal-fetch restores it,
// with a warning, rather than exiting 200 and stopping recovery.
func TestWalFetchOverwritten(t *testing.T) {
	const bucket, prefix = "walvault-overwritten", "cluster1"
	gw := testenv.StartVersity(t)
	r := lockedRepo(t, gw, bucket, prefix)
	ctx := t.Context()

	seg := wal.Segment{Timeline: 1, Log: 0, Seg: 5}
	data := waltest.Cluster{SystemID: 7300000000000000005, SegmentSize: wal.MinSegmentSize}.Segment(t, seg, 1)
	path, _ := waltest.WriteFile(t, t.TempDir(), seg.String(), data)
	if res := walvault(t, r.env, "wal-push", path); res.code != 0 {
		t.Fatalf("wal-push %s: %v", seg, res)
	}
	key := repository.WALKey(waltest.FileName(t, seg.String()), repository.LZ4)

	garbage := []byte("not a WAL segment")
	if _, err := gw.Client(t).PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + key), Body: bytes.NewReader(garbage),
	}); err != nil {
		t.Fatalf("attacker's PUT over %s: %v", key, err)
	}
	if got, _ := getObject(t, r.backend, key); !bytes.Equal(got, garbage) {
		t.Fatalf("%s after the attacker's PUT: got %d bytes, want the garbage as its current version", key, len(got))
	}

	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	res := walvault(t, r.env, "wal-fetch", seg.String(), dest)
	if res.code != 0 {
		t.Fatalf("wal-fetch of the overwritten %s: %v\nwant exit 0", seg, res)
	}
	if !bytes.Equal(readFile(t, dest), data) {
		t.Errorf("wal-fetch of the overwritten %s wrote other bytes than the archived segment", seg)
	}
	for _, want := range []string{"level=WARN", "object overwritten", "key=" + key, "version="} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("wal-fetch's stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}
