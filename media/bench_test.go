package media_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/media"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/blob"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// benchService is a media service on SQLite and the given blob store.
func benchService(b *testing.B, blobs blob.Store) *media.Service {
	b.Helper()
	store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "msgr.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := store.CreateUser(b.Context(), storage.User{ID: "alice", PasswordHash: "x"}); err != nil {
		b.Fatal(err)
	}
	k, _ := keyring.NewDataKey()
	ring, err := keyring.New(k)
	if err != nil {
		b.Fatal(err)
	}
	return media.New(store, blobs, media.KeyringKeys(ring), media.Config{TempDir: b.TempDir()})
}

func benchBlobs(b *testing.B, name string) blob.Store {
	b.Helper()
	if name == "s3" {
		s, err := blob.NewS3(blobtest.S3(b))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	d, err := blob.NewDir(filepath.Join(b.TempDir(), "media"))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkUpload stores a 5 MB file that is no image: receive, encrypt,
// spool, put, record. MB/s is plaintext throughput.
func BenchmarkUpload(b *testing.B) {
	for _, backend := range []string{"dir", "s3"} {
		b.Run(backend, func(b *testing.B) {
			svc := benchService(b, benchBlobs(b, backend))
			data := make([]byte, 5<<20)
			for i := range data {
				data[i] = byte(rand.Uint32())
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.Upload(b.Context(), media.Upload{Owner: "alice", Name: "f", Body: bytes.NewReader(data)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDownload reads a 5 MB media back, decrypting while streaming,
// and a 64 KB range of it.
func BenchmarkDownload(b *testing.B) {
	for _, backend := range []string{"dir", "s3"} {
		svc := benchService(b, benchBlobs(b, backend))
		data := make([]byte, 5<<20)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		m, err := svc.Upload(b.Context(), media.Upload{Owner: "alice", Name: "f", Body: bytes.NewReader(data)})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range []struct {
			name        string
			off, length int64
		}{{"full", 0, -1}, {"range64k", 3_000_000, 64 << 10}} {
			b.Run(backend+"/"+r.name, func(b *testing.B) {
				n := r.length
				if n < 0 {
					n = m.Size
				}
				b.SetBytes(n)
				for b.Loop() {
					rc, err := svc.Open(b.Context(), m, r.off, r.length)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkImageUpload uploads a 12-megapixel (4000x3000) JPEG photo to a
// directory: everything Upload does plus the header check, the full decode
// and the thumbnail; compare with BenchmarkUpload for the image work alone.
func BenchmarkImageUpload(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	for y := 0; y < 3000; y++ {
		for x := 0; x < 4000; x++ {
			n := uint8(rand.Uint32() >> 27)
			img.SetRGBA(x, y, color.RGBA{uint8(x/16) + n, uint8(y/12) + n, 100 + n, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	svc := benchService(b, benchBlobs(b, "dir"))
	for b.Loop() {
		if _, err := svc.Upload(b.Context(), media.Upload{Owner: "alice", Name: "p.jpg", Body: bytes.NewReader(buf.Bytes())}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/(1<<20), "MB/photo")
}
