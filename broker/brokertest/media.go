package brokertest

import (
	"testing"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/storage/blob"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
)

// WithS3 stores media in a fresh bucket on the MinIO server named by
// MSGR_TEST_S3_* (skipping the test when unset; scripts/test.sh sets it).
func WithS3(t testing.TB) Option {
	t.Helper()
	return WithS3Config(blobtest.S3(t))
}

// WithS3Config stores media in the given bucket.
func WithS3Config(s3 blob.S3Config) Option {
	return func(c *broker.Config) {
		c.Media.S3Endpoint, c.Media.S3Bucket = s3.Endpoint, s3.Bucket
		c.Media.S3AccessKey, c.Media.S3SecretKey = s3.AccessKey, s3.SecretKey
	}
}

// MediaDir is where the broker keeps media objects without S3.
func (tb *Broker) MediaDir() string {
	if tb.cfg.Media.Dir != "" {
		return tb.cfg.Media.Dir
	}
	return tb.DataDir + "/media"
}
