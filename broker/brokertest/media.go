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

// RestartNewPorts is Restart on fresh random ports, for tests that need
// the data, not the addresses, to survive: a port freed by the stop can be
// taken meanwhile by another process on a busy machine.
func (tb *Broker) RestartNewPorts(t testing.TB) {
	t.Helper()
	tb.stop(t)
	tb.cfg.MQTTAddr, tb.cfg.WSAddr, tb.cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if tb.cfg.TLS.MQTTAddr != "" {
		tb.cfg.TLS.MQTTAddr = "127.0.0.1:0"
	}
	tb.start(t)
}
