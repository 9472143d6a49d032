package s3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/storage"
)

// List walks the keys under prefix with ListObjectsV2, page by page (1000
// keys each), so memory does not grow with the bucket. S3 lists in UTF-8
// byte order, which is the lexical order the contract asks for. Metadata and
// RetainUntil are not in listings: they stay empty.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return b.ListAfter(ctx, prefix, "", fn)
}

// ListAfter is List from the first key after after (StartAfter, part of
// ListObjectsV2 since its first version; storage.ListAfter filters what a
// server that ignored it would return).
func (b *Backend) ListAfter(ctx context.Context, prefix, after string, fn func(storage.ObjectInfo) error) error {
	what := strconv.Quote(prefix) // "" reads better than nothing in a message
	if err := ctx.Err(); err != nil {
		return storage.OpError("list", what, err)
	}
	in := &s3.ListObjectsV2Input{
		Bucket: &b.bucket,
		Prefix: aws.String(b.prefix + prefix),
	}
	if after != "" {
		in.StartAfter = aws.String(b.prefix + after)
	}
	var prevLast string
	for {
		page, err := b.client.ListObjectsV2(ctx, in)
		if err != nil {
			return storage.OpError("list", what, b.translate(err))
		}
		if n := len(page.Contents); n > 0 {
			first, last := aws.ToString(page.Contents[0].Key), aws.ToString(page.Contents[n-1].Key)
			if prevLast != "" && first <= prevLast {
				return storage.OpError("list", what, fmt.Errorf("the server returned keys it had listed already (%q after %q): it does not page as ListObjectsV2 says; refusing to loop", first, prevLast))
			}
			prevLast = last
		}
		for _, obj := range page.Contents {
			if err := ctx.Err(); err != nil {
				return storage.OpError("list", what, err)
			}
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), b.prefix)
			if !ok || key == "" || strings.HasSuffix(key, "/") {
				continue // a "directory" marker some tools create
			}
			info := storage.ObjectInfo{Key: key, Size: aws.ToInt64(obj.Size)}
			if obj.LastModified != nil {
				info.ModTime = *obj.LastModified
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		// A page that says more follow must say where: a listing cut
		// short would show WAL missing that is there, and a page asked
		// for again and again would never end.
		next := aws.ToString(page.NextContinuationToken)
		switch {
		case next != "" && next == aws.ToString(in.ContinuationToken):
			return storage.OpError("list", what, fmt.Errorf("the server returned the same continuation token again (%q): refusing to loop", next))
		case next != "":
			in.ContinuationToken = aws.String(next)
		case len(page.Contents) > 0:
			// No token (a server without continuation tokens): go on
			// after the page's last key.
			in.ContinuationToken, in.StartAfter = nil, aws.String(prevLast)
		default:
			return storage.OpError("list", what, errors.New("the server says the listing goes on but gave neither a continuation token nor a key: refusing a listing cut short"))
		}
	}
}
