package broker

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/msgrhq/msgr/storage/blob"
)

// MediaConfig configures media uploads (see package media).
type MediaConfig struct {
	Dir         string // local blob directory; <data-dir>/media when empty
	S3Endpoint  string // host:port of an S3 server (MinIO); empty uses Dir
	S3Bucket    string
	S3AccessKey string
	S3SecretKey string
	S3TLS       bool
	MaxBytes    int64         // largest upload
	DailyBytes  int64         // bytes a user may upload per UTC day; 0: no quota
	MaxPixels   int64         // largest image area thumbnailed
	GCAfter     time.Duration // unsent uploads are deleted after this
	GCInterval  time.Duration // how often the collector runs
}

func defaultMediaConfig() MediaConfig {
	return MediaConfig{
		S3Bucket:   "msgr-media",
		MaxBytes:   25 << 20,
		DailyBytes: 1 << 30,
		MaxPixels:  40_000_000,
		GCAfter:    24 * time.Hour,
		GCInterval: time.Hour,
	}
}

func (m *MediaConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&m.Dir, "media-dir", m.Dir, "directory for encrypted media objects when no S3 endpoint is set; default DATA-DIR/media (MSGR_MEDIA_DIR)")
	fs.StringVar(&m.S3Endpoint, "s3-endpoint", m.S3Endpoint, "S3/MinIO `host:port` for media objects; empty stores them in media-dir (MSGR_S3_ENDPOINT)")
	fs.StringVar(&m.S3Bucket, "s3-bucket", m.S3Bucket, "S3 bucket for media objects, created if missing (MSGR_S3_BUCKET)")
	fs.StringVar(&m.S3AccessKey, "s3-access-key", m.S3AccessKey, "S3 access key (MSGR_S3_ACCESS_KEY)")
	fs.StringVar(&m.S3SecretKey, "s3-secret-key", m.S3SecretKey, "S3 secret key; prefer the environment variable (MSGR_S3_SECRET_KEY)")
	fs.BoolVar(&m.S3TLS, "s3-tls", m.S3TLS, "use HTTPS to reach the S3 endpoint (MSGR_S3_TLS)")
	fs.Int64Var(&m.MaxBytes, "media-max-bytes", m.MaxBytes, "largest media upload in bytes (MSGR_MEDIA_MAX_BYTES)")
	fs.Int64Var(&m.DailyBytes, "media-daily-bytes", m.DailyBytes, "bytes each user may upload per UTC day, 0 for no quota (MSGR_MEDIA_DAILY_BYTES)")
	fs.Int64Var(&m.MaxPixels, "media-max-pixels", m.MaxPixels, "largest image area in pixels that gets a thumbnail; larger images are refused (MSGR_MEDIA_MAX_PIXELS)")
	fs.DurationVar(&m.GCAfter, "media-gc-after", m.GCAfter, "delete uploads no message references after this long (MSGR_MEDIA_GC_AFTER)")
	fs.DurationVar(&m.GCInterval, "media-gc-interval", m.GCInterval, "how often to look for such uploads (MSGR_MEDIA_GC_INTERVAL)")
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func (m *MediaConfig) validate(dataDir string) []error {
	var errs []error
	if m.S3Endpoint != "" {
		if !bucketName.MatchString(m.S3Bucket) {
			errs = append(errs, fmt.Errorf("s3-bucket: %q is not a valid bucket name (3-63 of a-z 0-9 . -)", m.S3Bucket))
		}
		if m.S3AccessKey == "" || m.S3SecretKey == "" {
			errs = append(errs, errors.New("s3-access-key and s3-secret-key: required with s3-endpoint"))
		}
	}
	if m.MaxBytes < 1 || m.MaxBytes > 4<<30 {
		errs = append(errs, fmt.Errorf("media-max-bytes: %d is outside 1..%d", m.MaxBytes, int64(4<<30)))
	}
	if m.DailyBytes != 0 && m.DailyBytes < m.MaxBytes {
		errs = append(errs, fmt.Errorf("media-daily-bytes: %d is below media-max-bytes (%d); 0 turns the quota off", m.DailyBytes, m.MaxBytes))
	}
	if m.MaxPixels < 1 || m.MaxPixels > 1_000_000_000 {
		errs = append(errs, fmt.Errorf("media-max-pixels: %d is outside 1..1000000000", m.MaxPixels))
	}
	if m.GCAfter < time.Second {
		errs = append(errs, fmt.Errorf("media-gc-after: %v is shorter than 1s", m.GCAfter))
	}
	if m.GCInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("media-gc-interval: %v is shorter than 100ms", m.GCInterval))
	}
	return errs
}

// blobStore opens the configured blob store; nil (media disabled) when
// there is neither an S3 endpoint nor a directory to use.
func (m *MediaConfig) blobStore(dataDir string) (blob.Store, error) {
	if m.S3Endpoint != "" {
		return blob.NewS3(blob.S3Config{
			Endpoint: m.S3Endpoint, Bucket: m.S3Bucket,
			AccessKey: m.S3AccessKey, SecretKey: m.S3SecretKey, TLS: m.S3TLS,
		})
	}
	dir := m.Dir
	if dir == "" && dataDir == "" {
		return nil, nil
	}
	if dir == "" {
		dir = filepath.Join(dataDir, "media")
	}
	return blob.NewDir(dir)
}
