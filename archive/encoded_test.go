package archive_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestPushEncoded: a body encoded by the caller is stored at the segment's
// key with the checksum metadata Push records, so a later Push of the same
// file finds it already archived; bodies that do not fit are refused.
func TestPushEncoded(t *testing.T) {
	b := mem.New()
	dir := t.TempDir()
	s := seg(1, 0, 3)
	path, sum := writeSegment(t, dir, s.String(), header(t, s), 7)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	zw, _ := repository.LZ4.NewWriter(&body)
	zw.Write(raw)
	zw.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}
	ctx := context.Background()

	// A body that does not hold the whole segment is refused.
	short := archive.Encoded{Body: body.Bytes(), Compression: repository.LZ4, SHA256: sum, RawSize: int64(len(raw)) - 1}
	if _, err := archive.PushEncoded(ctx, b, f, file, short, opts(repository.LZ4)); err == nil {
		t.Fatal("PushEncoded with a short raw size: got nil, want an error")
	}
	assertAbsent(t, b, walKey(t, s.String(), repository.LZ4))

	enc := archive.Encoded{Body: body.Bytes(), Compression: repository.LZ4, SHA256: sum, RawSize: int64(len(raw))}
	res, err := archive.PushEncoded(ctx, b, f, file, enc, opts(repository.LZ4))
	if err != nil {
		t.Fatalf("PushEncoded: %v", err)
	}
	if res.Key != walKey(t, s.String(), repository.LZ4) || res.SHA256 != sum || res.AlreadyArchived {
		t.Fatalf("PushEncoded: got %+v", res)
	}
	stored, info := object(t, b, res.Key)
	if !bytes.Equal(stored, body.Bytes()) || info.Metadata[repository.MetaSHA256] != sum || info.Metadata[repository.MetaSystemID] == "" {
		t.Fatalf("stored object: %d bytes, metadata %v", len(stored), info.Metadata)
	}
	if again := mustPush(t, b, path, opts(repository.LZ4)); !again.AlreadyArchived {
		t.Errorf("Push after PushEncoded: got %+v, want already archived", again)
	}

	// An uncompressed body goes into the lz4 repository under its own key
	// (each object records its codec), and wal-push's lz4 copy of the same
	// file then settles against it.
	s2 := seg(1, 0, 4)
	path2, sum2 := writeSegment(t, dir, s2.String(), header(t, s2), 8)
	raw2, _ := os.ReadFile(path2)
	f2, err := os.Open(path2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	res2, err := archive.PushEncoded(ctx, b, f2, wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s2},
		archive.Encoded{Body: raw2, Compression: repository.None, SHA256: sum2, RawSize: int64(len(raw2))}, opts(repository.None))
	if err != nil || res2.Key != walKey(t, s2.String(), repository.None) {
		t.Fatalf("PushEncoded in another compression than the repository's: got %+v, %v; want it stored under %s", res2, err, walKey(t, s2.String(), repository.None))
	}
	if again := mustPush(t, b, path2, opts(repository.LZ4)); !again.AlreadyArchived || again.Key != res2.Key {
		t.Errorf("lz4 Push after an uncompressed PushEncoded: got %+v, want already archived under %s", again, res2.Key)
	}
	assertAbsent(t, b, walKey(t, s2.String(), repository.LZ4))

	// PushEncoded settles against another codec's copy just the same.
	again, err := archive.PushEncoded(ctx, b, f, wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s},
		archive.Encoded{Body: raw, Compression: repository.None, SHA256: sum, RawSize: int64(len(raw))}, opts(repository.None))
	if err != nil || !again.AlreadyArchived || again.Key != res.Key {
		t.Errorf("uncompressed PushEncoded of an lz4-archived segment: got %+v, %v; want already archived under %s", again, err, res.Key)
	}
	assertAbsent(t, b, walKey(t, s.String(), repository.None))
}
