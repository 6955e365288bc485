// Package blob stores opaque objects (encrypted media) by key. Two
// implementations: a local directory (the embedded default) and an S3
// bucket (MinIO in production). Callers encrypt before Put: a blob store
// never sees plaintext.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound means no object has the key.
var ErrNotFound = errors.New("blob: object not found")

// ErrUnavailable wraps failures to reach the backing service, so that
// callers can answer "retry later" rather than "broken".
var ErrUnavailable = errors.New("blob: storage unavailable")

// Info describes a stored object.
type Info struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Store is a flat key/object store. Keys are 1-200 characters of
// [A-Za-z0-9._-/] without "..", chosen by the caller.
type Store interface {
	// Put stores exactly size bytes read from r under key, replacing any
	// object with that key. Readers see the old object or the whole new
	// one, never a part.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get streams length bytes of the object starting at off; length < 0
	// means to the end. ErrNotFound if absent.
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat describes an object; ErrNotFound if absent.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; deleting a missing object is no error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every object, in no particular order, until fn
	// returns an error (which Walk returns).
	Walk(ctx context.Context, fn func(Info) error) error
	// Ping checks that the store can serve requests.
	Ping(ctx context.Context) error
}

// ValidKey reports whether key is acceptable to every Store.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > 200 || key[0] == '/' || key[len(key)-1] == '/' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if i > 0 && key[i-1] == '.' {
				return false
			}
		case c == '/':
			if key[i-1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
