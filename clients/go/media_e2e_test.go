package msgr_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
)

func withHTTP(b *brokertest.Broker) func(*msgr.Config) {
	return func(c *msgr.Config) { c.HTTPURL = "http://" + b.HTTPAddr }
}

// photo is a w x h JPEG of noise (hundreds of KB, like a real photo).
func photo(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	noise := make([]byte, w*h)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := noise[y*w+x] / 4
			img.SetRGBA(x, y, color.RGBA{uint8(x/8*16) + n, uint8(y/8*16) + n, 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mediaBackends runs fn with media on a local directory and on MinIO.
func mediaBackends(t *testing.T, fn func(t *testing.T, opts ...brokertest.Option)) {
	t.Run("dir", func(t *testing.T) { fn(t) })
	t.Run("s3", func(t *testing.T) { fn(t, brokertest.WithS3(t)) })
}

// TestE2EMediaRoundTrip: alice uploads a photo and sends it; bob gets the
// thumbnail inline and fetches the original; carol, not a member, cannot.
func TestE2EMediaRoundTrip(t *testing.T) {
	mediaBackends(t, func(t *testing.T, opts ...brokertest.Option) {
		b := brokertest.Start(t, opts...)
		for _, u := range []string{"alice", "bob", "carol"} {
			b.AddUser(t, u, password)
		}
		ctx := testCtx(t)
		alice, _ := dial(t, b, "alice", "phone", withHTTP(b))
		bob, bobIn := dial(t, b, "bob", "phone", withHTTP(b))
		carol, _ := dial(t, b, "carol", "phone", withHTTP(b))

		orig := photo(t, 1024, 768)
		path := filepath.Join(t.TempDir(), "holiday.jpg")
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		up, sent, err := alice.SendFile(ctx, "", "bob", path, "look at this")
		if err != nil {
			t.Fatalf("SendFile: %v", err)
		}
		if up.Type != "image/jpeg" || up.Name != "holiday.jpg" || up.Size != int64(len(orig)) || up.Width != 1024 || up.Height != 768 {
			t.Fatalf("upload = %+v", up)
		}
		msgs := bobIn.wait(t, "bob receives the media message", func(ms []protocol.Message) bool { return len(ms) > 0 })
		m, caption, err := msgr.ParseMedia(msgs[0])
		if err != nil || m == nil {
			t.Fatalf("ParseMedia(%s): %v, %v", msgs[0].Body, m, err)
		}
		if msgs[0].Seq != sent.Seq || caption != "look at this" || m.ID != up.ID || m.Type != "image/jpeg" || m.Width != 1024 || m.Size != int64(len(orig)) {
			t.Fatalf("received %+v caption %q", m, caption)
		}
		if len(m.Thumb) == 0 || len(m.Thumb) > 5*1024 {
			t.Fatalf("inline thumbnail is %d bytes", len(m.Thumb))
		}
		if cfg, format, err := image.DecodeConfig(bytes.NewReader(m.Thumb)); err != nil || format != "jpeg" || cfg.Width != 128 || cfg.Height != 96 {
			t.Fatalf("inline thumbnail: %v %s %v", cfg, format, err)
		}
		if thumb, err := bob.Thumbnail(ctx, m.ID); err != nil || !bytes.Equal(thumb, m.Thumb) {
			t.Fatalf("GET thumbnail: %d bytes, %v", len(thumb), err)
		}

		saved := filepath.Join(t.TempDir(), "saved.jpg")
		if n, err := bob.SaveAttachment(ctx, m.ID, saved); err != nil || n != int64(len(orig)) {
			t.Fatalf("SaveAttachment: %d, %v", n, err)
		}
		if got, _ := os.ReadFile(saved); !bytes.Equal(got, orig) {
			t.Fatal("saved attachment differs from the original")
		}
		var part bytes.Buffer
		if _, err := bob.DownloadRange(ctx, m.ID, 65_000, 2000, &part); err != nil || !bytes.Equal(part.Bytes(), orig[65_000:67_000]) {
			t.Fatalf("DownloadRange: %d bytes, %v", part.Len(), err)
		}

		// A signed link works without credentials.
		link, err := bob.Link(ctx, m.ID, time.Minute)
		if err != nil {
			t.Fatalf("Link: %v", err)
		}
		if status, err := httpGet(link); err != nil || status != 200 {
			t.Fatalf("GET %s: %d, %v", link, status, err)
		}

		// carol is in no conversation with the media.
		var he *msgr.HTTPError
		if _, err := carol.Download(ctx, m.ID, io.Discard); !errors.As(err, &he) || he.Status != 403 {
			t.Fatalf("non-member download: %v, want HTTP 403", err)
		}
		// Only the uploader may send it.
		if _, err := bob.SendMessage(ctx, msgr.Outgoing{To: "carol", Media: m.ID}); !isCode(err, protocol.CodeForbidden) {
			t.Fatalf("bob forwards alice's upload: %v, want forbidden", err)
		}
		if _, err := alice.SendMessage(ctx, msgr.Outgoing{To: "bob", Media: "01HZZZZZZZZZZZZZZZZZZZZZZZ"}); !isCode(err, protocol.CodeNotFound) {
			t.Fatalf("unknown media: %v, want not_found", err)
		}

		// Restart: everything stays readable.
		b.RestartNewPorts(t)
		bob2, _ := dial(t, b, "bob", "laptop", withHTTP(b))
		var again bytes.Buffer
		if _, err := bob2.Download(ctx, m.ID, &again); err != nil || !bytes.Equal(again.Bytes(), orig) {
			t.Fatalf("download after restart: %d bytes, %v", again.Len(), err)
		}
		hist, _, err := bob2.History(ctx, sent.Conv, 0, 10)
		if err != nil || len(hist) != 1 {
			t.Fatalf("history after restart: %v, %v", hist, err)
		}
		if hm, _, _ := msgr.ParseMedia(hist[0]); hm == nil || !bytes.Equal(hm.Thumb, m.Thumb) {
			t.Fatal("history after restart lost the inline thumbnail")
		}

		// The uploader deletes it: gone for everyone.
		alice2, _ := dial(t, b, "alice", "laptop", withHTTP(b))
		if err := alice2.DeleteMedia(ctx, m.ID); err != nil {
			t.Fatalf("DeleteMedia: %v", err)
		}
		if _, err := bob2.Download(ctx, m.ID, io.Discard); !errors.As(err, &he) || he.Status != 404 {
			t.Fatalf("download after delete: %v, want HTTP 404", err)
		}
	})
}

func isCode(err error, code protocol.Code) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == code
}

// TestE2EMediaMinIODown: with MinIO gone, media requests fail with a clear
// 503 while text chat goes on; once it is back, media works again.
func TestE2EMediaMinIODown(t *testing.T) {
	m := blobtest.StartMinIO(t)
	b := brokertest.Start(t, brokertest.WithS3Config(m.Config))
	b.AddUser(t, "alice", password)
	b.AddUser(t, "bob", password)
	ctx := testCtx(t)
	alice, _ := dial(t, b, "alice", "phone", withHTTP(b))
	_, bobIn := dial(t, b, "bob", "phone", withHTTP(b))
	up, err := alice.Upload(ctx, "a.bin", bytes.NewReader([]byte("before the outage")), -1)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()

	start := time.Now()
	var he *msgr.HTTPError
	if _, err := alice.Upload(ctx, "b.bin", bytes.NewReader([]byte("during")), -1); !errors.As(err, &he) || he.Status != 503 || he.Err.Code != protocol.CodeUnavailable {
		t.Fatalf("upload while MinIO is down: %v, want HTTP 503 unavailable", err)
	}
	if _, err := alice.Download(ctx, up.ID, io.Discard); !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("download while MinIO is down: %v, want HTTP 503", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing took %v", d)
	}
	if _, err := alice.SendTo(ctx, "bob", "text still works"); err != nil {
		t.Fatalf("text while MinIO is down: %v", err)
	}
	bobIn.wait(t, "bob receives text during the outage", func(ms []protocol.Message) bool { return len(ms) == 1 })
	resp, err := httpGet("http://" + b.HTTPAddr + "/readyz")
	if err != nil || resp != 503 {
		t.Fatalf("readyz while MinIO is down: %d, %v; want 503", resp, err)
	}
}

func httpGet(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestE2EMediaUploadErrors: oversize, fake-type and bomb uploads are refused
// with clear errors and leave nothing behind.
func TestE2EMediaUploadErrors(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.Media.MaxBytes = 200_000 }))
	b.AddUser(t, "alice", password)
	ctx := testCtx(t)
	alice, _ := dial(t, b, "alice", "phone", withHTTP(b))
	big := make([]byte, 200_001)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		data   []byte
		size   int64
		status int
		code   protocol.Code
	}{
		{"oversize with length", big, int64(len(big)), 413, protocol.CodeTooLarge},
		{"oversize streamed", big, -1, 413, protocol.CodeTooLarge},
		{"broken jpeg.jpg", append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, 600)...), -1, 415, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		_, err := alice.Upload(ctx, tt.name, bytes.NewReader(tt.data), tt.size)
		var he *msgr.HTTPError
		if !errors.As(err, &he) || he.Status != tt.status || he.Err.Code != tt.code {
			t.Errorf("%s: %v, want HTTP %d %s", tt.name, err, tt.status, tt.code)
		}
	}
	var n int
	_ = filepath.WalkDir(b.MediaDir(), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Errorf("%d objects stored by refused uploads", n)
	}
}
