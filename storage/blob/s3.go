package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config locates a bucket on an S3-compatible server (MinIO).
type S3Config struct {
	Endpoint  string // host:port
	Bucket    string
	AccessKey string
	SecretKey string
	TLS       bool
	Region    string // optional
}

// S3 stores objects in one bucket. The bucket is created on first use if
// missing, so that msgrd starts (and text chat works) while the server is
// still down.
type S3 struct {
	cfg    S3Config
	client *minio.Client

	mu         sync.Mutex
	haveBucket bool
}

var _ Store = (*S3)(nil)

// NewS3 returns a store for cfg; it does not contact the server.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("blob: s3 needs an endpoint and a bucket")
	}
	// Fail fast when the server is down: minio-go retries 10 times with
	// backoff by default, which turns an outage into minute-long requests.
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.TLS,
		Region:     cfg.Region,
		Transport:  transport,
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3 client: %w", err)
	}
	return &S3{cfg: cfg, client: client}, nil
}

// ensureBucket creates the bucket once; failures are retried on the next call.
func (s *S3) ensureBucket(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.haveBucket {
		return nil
	}
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.wrap("check bucket", s.cfg.Bucket, err)
	}
	if !ok {
		err := s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
		if err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return s.wrap("create bucket", s.cfg.Bucket, err)
			}
		}
	}
	s.haveBucket = true
	return nil
}

// wrap classifies a minio-go error: missing objects become ErrNotFound,
// transport failures and server errors ErrUnavailable.
func (s *S3) wrap(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		return fmt.Errorf("blob: s3 %s %s: %w", op, key, ErrNotFound)
	case resp.Code == "NoSuchBucket":
		s.mu.Lock()
		s.haveBucket = false
		s.mu.Unlock()
		return fmt.Errorf("blob: s3 %s %s: bucket %s missing: %w", op, key, s.cfg.Bucket, errors.Join(ErrUnavailable, err))
	case resp.StatusCode == 0 || resp.StatusCode >= 500:
		return fmt.Errorf("blob: s3 %s %s at %s: %w", op, key, s.cfg.Endpoint, errors.Join(ErrUnavailable, err))
	}
	return fmt.Errorf("blob: s3 %s %s: %w", op, key, err)
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if !ValidKey(key) {
		return fmt.Errorf("blob: invalid key %q", key)
	}
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// One request when the size is known (up to the 5 GiB part limit);
		// msgr's objects are far smaller.
		DisableMultipart: size <= 512<<20,
	})
	if err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("blob: invalid key %q", key)
	}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	if off < 0 || length == 0 {
		return nil, fmt.Errorf("blob: get %s: bad range %d+%d", key, off, length)
	}
	opts := minio.GetObjectOptions{}
	switch {
	case length > 0:
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, fmt.Errorf("blob: get %s: %w", key, err)
		}
	case off > 0:
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("blob: get %s: %w", key, err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	// GetObject is lazy; Stat sends the request, so that a missing object
	// or an unreachable server is reported here rather than on first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.wrap("get", key, err)
	}
	return obj, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if !ValidKey(key) {
		return Info{}, fmt.Errorf("blob: invalid key %q", key)
	}
	if err := s.ensureBucket(ctx); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap("stat", key, err)
	}
	return Info{Key: key, Size: oi.Size, Modified: oi.LastModified}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("blob: invalid key %q", key)
	}
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.wrap("delete", key, err), ErrNotFound) {
			return nil
		}
		return s.wrap("delete", key, err)
	}
	return nil
}

// Walk implements Store.
func (s *S3) Walk(ctx context.Context, fn func(Info) error) error {
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for oi := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			return s.wrap("list", s.cfg.Bucket, oi.Err)
		}
		if strings.HasSuffix(oi.Key, "/") {
			continue
		}
		if err := fn(Info{Key: oi.Key, Size: oi.Size, Modified: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Ping checks the server answers and the bucket exists (creating it).
func (s *S3) Ping(ctx context.Context) error {
	s.mu.Lock()
	have := s.haveBucket
	s.mu.Unlock()
	if !have {
		return s.ensureBucket(ctx)
	}
	if _, err := s.client.BucketExists(ctx, s.cfg.Bucket); err != nil {
		return s.wrap("ping", s.cfg.Bucket, err)
	}
	return nil
}
