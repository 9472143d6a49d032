package s3

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// validSSE checks the storage-side encryption settings.
func validSSE(sse, kmsKeyID string) error {
	switch sse {
	case "", string(types.ServerSideEncryptionAes256):
		if kmsKeyID != "" {
			return fmt.Errorf("s3: a KMS key id needs server-side encryption aws:kms, not %q", sse)
		}
	case string(types.ServerSideEncryptionAwsKms):
	default:
		return fmt.Errorf("s3: server-side encryption %q: want AES256 or aws:kms", sse)
	}
	return nil
}

// serverSideEncryption is what every write asks the server for; zero
// values leave the bucket's default.
func (b *Backend) serverSideEncryption() (types.ServerSideEncryption, *string) {
	var key *string
	if b.sseKMSKeyID != "" {
		key = aws.String(b.sseKMSKeyID)
	}
	return types.ServerSideEncryption(b.sse), key
}
