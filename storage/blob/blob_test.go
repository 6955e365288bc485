package blob_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage/blob"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
)

func TestDir(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		d, err := blob.NewDir(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestS3(t *testing.T) {
	cfg := blobtest.S3(t)
	n := 0
	blobtest.Run(t, func(t *testing.T) blob.Store {
		c := cfg
		n++
		c.Bucket = cfg.Bucket + "-" + string(rune('a'+n))
		s, err := blob.NewS3(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestS3Down: an unreachable server is reported as ErrUnavailable, quickly.
func TestS3Down(t *testing.T) {
	m := blobtest.StartMinIO(t)
	s, err := blob.NewS3(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping while up: %v", err)
	}
	m.Stop()
	start := time.Now()
	err = s.Ping(t.Context())
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Ping while down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(t.Context(), "x", 0, -1); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Get while down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("reporting the outage took %v", d)
	}
}

func TestValidKey(t *testing.T) {
	for key, want := range map[string]bool{
		"a": true, "m/01ABC": true, "a.b": true, "a-b_c": true,
		"": false, "/a": false, "a/": false, "a//b": false, "..": false, "a/../b": false, "a b": false, "ä": false,
	} {
		if got := blob.ValidKey(key); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", key, got, want)
		}
	}
}
