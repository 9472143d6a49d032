package testenv

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestVersity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *S3Server
	}{
		{"HTTP", StartVersity},
		{"TLS", StartVersityTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.start(t)
			v.CreateBucket(t, "walvault-test", false)
			v.CreateBucket(t, "walvault-lock", true)

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c := v.Client(t)
			body := []byte("hello, gateway")
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("walvault-test"), Key: aws.String("a/b"), Body: bytes.NewReader(body),
			}); err != nil {
				t.Fatalf("PutObject: got %v, want nil\n%s", err, v.Output())
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("walvault-test"), Key: aws.String("a/b")})
			if err != nil {
				t.Fatalf("GetObject: got %v, want nil", err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("GetObject body: got %q, %v; want %q, nil", got, err, body)
			}

			v.Stop(t)
			if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("walvault-test")}); err == nil {
				t.Errorf("HeadBucket after Stop: got nil, want an error")
			}
		})
	}
}
