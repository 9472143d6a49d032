package s3

import (
	"context"
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
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return storage.OpError("list", what, b.translate(err))
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
	}
	return nil
}
