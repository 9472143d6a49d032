package s3_test

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// hide does what an attacker with walvault's own credentials can do to a
// locked object: a DELETE without a version id, which S3 answers with
// success and a delete marker.
func hide(t *testing.T, c *awss3.Client, bucket, okey string) {
	t.Helper()
	out, err := c.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(okey)})
	if err != nil {
		t.Fatalf("DeleteObject %s without a version id: got %v, want success (a delete marker)", okey, err)
	}
	if !aws.ToBool(out.DeleteMarker) {
		t.Fatalf("DeleteObject %s without a version id: no delete marker in the answer", okey)
	}
}

func listHidden(t *testing.T, v storage.Versioned, prefix string) []storage.HiddenObject {
	t.Helper()
	var got []storage.HiddenObject
	if err := v.ListHidden(t.Context(), prefix, func(h storage.HiddenObject) error {
		got = append(got, h)
		return nil
	}); err != nil {
		t.Fatalf("ListHidden(%q): got %v, want nil", prefix, err)
	}
	return got
}

func hiddenKeys(hs []storage.HiddenObject) []string {
	var keys []string
	for _, h := range hs {
		keys = append(keys, h.Key)
	}
	return keys
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// TestVersionedHideAndUnhide: on a lock-enabled (so versioned) bucket, an
// object hidden by a plain DELETE is listed, readable through GetHidden,
// not deletable by version id while locked, and visible again after Unhide.
func TestVersionedHideAndUnhide(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	bucket := newBucket(t, v, true)
	b := newBackend(t, v, s3.Config{Bucket: bucket, Prefix: "repo"})
	s3.SetVersionsPageSize(b, 2) // cross page boundaries: Versity repeats entries there
	c := v.Client(t)
	ctx := t.Context()
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	ret := &storage.Retention{Mode: storage.Governance, Until: until}
	bodies := map[string]string{
		"wal/00000001/a.lz4": "segment a",
		"wal/00000001/b.lz4": "segment b",
		"wal/00000001/c.lz4": "segment c",
		"wal/00000001/d.lz4": "segment d",
		"walvault.json":      `{"format_version":1}`,
	}
	for key, body := range bodies {
		if err := b.Put(ctx, key, strings.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: map[string]string{"sha256": "x" + key[len(key)-5:len(key)-4]}, Retention: ret}); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
	}
	before := time.Now().Add(-time.Minute)
	hide(t, c, bucket, "repo/wal/00000001/a.lz4")
	hide(t, c, bucket, "repo/wal/00000001/c.lz4")
	hide(t, c, bucket, "repo/wal/00000001/c.lz4") // two markers
	hide(t, c, bucket, "repo/walvault.json")

	vb, ok := storage.AsVersioned(storage.WithRetry(b, storage.DefaultRetryPolicy, nil))
	if !ok {
		t.Fatal("AsVersioned(retry(s3)): got false, want the S3 backend")
	}

	got := listHidden(t, vb, "")
	if want := []string{"wal/00000001/a.lz4", "wal/00000001/c.lz4", "walvault.json"}; !slices.Equal(hiddenKeys(got), want) {
		t.Fatalf("ListHidden(\"\"): got %v, want %v", hiddenKeys(got), want)
	}
	for _, h := range got {
		if h.VersionID == "" || h.Size != int64(len(bodies[h.Key])) || h.HiddenAt.Before(before) || !h.RetainUntil.Equal(until) {
			t.Errorf("ListHidden: got %+v; want a version id, size %d, HiddenAt after %v, RetainUntil %v", h, len(bodies[h.Key]), before, until)
		}
	}
	if got := hiddenKeys(listHidden(t, vb, "wal/")); !slices.Equal(got, []string{"wal/00000001/a.lz4", "wal/00000001/c.lz4"}) {
		t.Errorf("ListHidden(\"wal/\"): got %v", got)
	}
	stop := errors.New("stop")
	if err := vb.ListHidden(ctx, "", func(storage.HiddenObject) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ListHidden with fn failing: got %v, want fn's error", err)
	}

	// Hidden: Get says not found, GetHidden serves the newest data version.
	key := "wal/00000001/c.lz4"
	if _, _, err := b.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a hidden key: got %v, want storage.ErrNotFound", err)
	}
	rc, info, err := vb.GetHidden(ctx, key)
	if err != nil {
		t.Fatalf("GetHidden(%s): got %v, want nil", key, err)
	}
	if body := readAll(t, rc); body != bodies[key] || info.Size != int64(len(body)) || info.Metadata["sha256"] != "xc" || info.Key != key {
		t.Errorf("GetHidden(%s): got %q, %+v; want %q with its metadata", key, body, info, bodies[key])
	}
	for _, k := range []string{"wal/00000001/b.lz4", "wal/00000001/none.lz4", "wal/00000001"} {
		if _, _, err := vb.GetHidden(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetHidden(%s), not hidden: got %v, want storage.ErrNotFound", k, err)
		}
		if err := vb.Unhide(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Unhide(%s), not hidden: got %v, want storage.ErrNotFound", k, err)
		}
	}

	// The attacker cannot remove the locked data version itself.
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("repo/" + key), VersionId: aws.String(got[1].VersionID)})
	if err == nil {
		t.Fatalf("DeleteObject of a locked version by its id: got nil, want a refusal")
	}
	t.Logf("DeleteObject of a locked version by its id: %v", err)

	// Unhide makes each visible again, as it was.
	for _, h := range got {
		if err := vb.Unhide(ctx, h.Key); err != nil {
			t.Fatalf("Unhide(%s): got %v, want nil", h.Key, err)
		}
		rc, _, err := b.Get(ctx, h.Key)
		if err != nil {
			t.Fatalf("Get(%s) after Unhide: got %v, want nil", h.Key, err)
		}
		if body := readAll(t, rc); body != bodies[h.Key] {
			t.Errorf("Get(%s) after Unhide: got %q, want %q", h.Key, body, bodies[h.Key])
		}
		if st, err := b.Stat(ctx, h.Key); err != nil || !st.RetainUntil.Equal(until) {
			t.Errorf("Stat(%s) after Unhide: got %+v, %v; want RetainUntil %v", h.Key, st, err, until)
		}
	}
	if got := listHidden(t, vb, ""); len(got) != 0 {
		t.Errorf("ListHidden after Unhide: got %v, want none", hiddenKeys(got))
	}
	if err := vb.Unhide(ctx, "wal/00000001/a.lz4"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Unhide: got %v, want storage.ErrNotFound", err)
	}
}

// TestVersionedPlainBucket: a bucket without versioning has nothing
// hidden: a DELETE there really deletes.
func TestVersionedPlainBucket(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	b := newBackend(t, v, s3.Config{Bucket: bucket})
	ctx := t.Context()
	if err := b.Put(ctx, "k", strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Client(t).DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if got := listHidden(t, b, ""); len(got) != 0 {
		t.Errorf("ListHidden on a bucket without versioning: got %v, want none", hiddenKeys(got))
	}
	if _, _, err := b.GetHidden(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetHidden of a deleted key: got %v, want storage.ErrNotFound", err)
	}

	missing := newBackend(t, v, s3.Config{Bucket: "no-such-bucket"})
	err := missing.ListHidden(ctx, "", func(storage.HiddenObject) error { return nil })
	checkHardError(t, "ListHidden of a missing bucket", err, `bucket "no-such-bucket" does not exist`)
	_, _, err = missing.GetHidden(ctx, "k")
	checkHardError(t, "GetHidden in a missing bucket", err, `bucket "no-such-bucket" does not exist`)
}
