package media_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/media"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/blob"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// newTestKeys is a keyring under a fresh random master key.
func newTestKeys(t testing.TB) media.Keys {
	t.Helper()
	k, err := keyring.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return media.KeyringKeys(ring)
}

type env struct {
	svc   *media.Service
	store storage.Store
	blobs blob.Store
	now   *time.Time
}

// backends runs fn against the directory store and, when available, MinIO.
func backends(t *testing.T, cfg media.Config, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, name := range []string{"dir", "s3"} {
		t.Run(name, func(t *testing.T) {
			var blobs blob.Store
			var err error
			if name == "dir" {
				blobs, err = blob.NewDir(filepath.Join(t.TempDir(), "media"))
			} else {
				blobs, err = blob.NewS3(blobtest.S3(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			fn(t, newEnv(t, blobs, cfg))
		})
	}
}

func newEnv(t *testing.T, blobs blob.Store, cfg media.Config) *env {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "msgr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := store.CreateUser(t.Context(), storage.User{ID: u, PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	e := &env{store: store, blobs: blobs, now: &now}
	cfg.Now = func() time.Time { return *e.now }
	cfg.TempDir = t.TempDir()
	e.svc = media.New(store, blobs, newTestKeys(t), cfg)
	return e
}

func (e *env) upload(t *testing.T, name, declared string, data []byte) (storage.Media, error) {
	t.Helper()
	return e.svc.Upload(t.Context(), media.Upload{Owner: "alice", Name: name, DeclaredType: declared, Body: bytes.NewReader(data)})
}

func (e *env) mustUpload(t *testing.T, name, declared string, data []byte) storage.Media {
	t.Helper()
	m, err := e.upload(t, name, declared, data)
	if err != nil {
		t.Fatalf("Upload %s: %v", name, err)
	}
	return m
}

func (e *env) read(t *testing.T, m storage.Media, off, length int64) ([]byte, error) {
	t.Helper()
	rc, err := e.svc.Open(t.Context(), m, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTripAndRanges(t *testing.T) {
	backends(t, media.Config{}, func(t *testing.T, e *env) {
		const pkg = 64 << 10
		data := randomBytes(t, 3*pkg+1234)
		m := e.mustUpload(t, "../../etc/data.bin", "", data)
		if m.Name != "data.bin" || m.ContentType != "application/octet-stream" || m.Size != int64(len(data)) || len(m.Thumbnail) != 0 {
			t.Fatalf("uploaded %+v", m)
		}
		got, err := e.read(t, m, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("full read: %d bytes, %v", len(got), err)
		}
		for _, r := range []struct{ off, length int64 }{
			{0, 1}, {0, pkg}, {pkg - 1, 2}, {pkg, pkg}, {1, 3*pkg + 1233}, {3 * pkg, 1234},
			{3*pkg + 1233, 1}, {100, 200}, {2*pkg + 5, -1}, {pkg + 7, 2 * pkg},
		} {
			want := data[r.off:]
			if r.length >= 0 {
				want = want[:r.length]
			}
			got, err := e.read(t, m, r.off, r.length)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("range %d+%d: %d bytes (want %d), %v", r.off, r.length, len(got), len(want), err)
			}
		}
		if _, err := e.read(t, m, int64(len(data)), 1); !errors.Is(err, media.ErrBadRange) {
			t.Errorf("range past the end: %v, want ErrBadRange", err)
		}
		empty := e.mustUpload(t, "empty.txt", "text/plain", nil)
		if got, err := e.read(t, empty, 0, -1); err != nil || len(got) != 0 {
			t.Errorf("empty file: %q, %v", got, err)
		}
		// Exactly one package, and a multiple of it.
		for _, n := range []int{pkg, 2 * pkg} {
			d := randomBytes(t, n)
			m := e.mustUpload(t, "p", "", d)
			if got, err := e.read(t, m, 0, -1); err != nil || !bytes.Equal(got, d) {
				t.Errorf("%d bytes: read %d, %v", n, len(got), err)
			}
		}
	})
}

// rawObject returns the stored (encrypted) object of m.
func (e *env) rawObject(t *testing.T, m storage.Media) []byte {
	t.Helper()
	rc, err := e.blobs.Get(t.Context(), "m/"+m.ID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoredObjectsAreEncrypted(t *testing.T) {
	backends(t, media.Config{}, func(t *testing.T, e *env) {
		marker := "SECRET-PLAINTEXT-MARKER"
		data := []byte(strings.Repeat(marker+" lorem ipsum ", 20_000))
		m := e.mustUpload(t, "notes.txt", "text/plain", data)
		raw := e.rawObject(t, m)
		if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, []byte("lorem")) {
			t.Fatal("stored object contains plaintext")
		}
		if len(raw) <= len(data) {
			t.Fatalf("stored object has %d bytes for %d of plaintext: no authentication tags?", len(raw), len(data))
		}
		img := e.mustUpload(t, "p.png", "image/png", pngBytes(t, 300, 200))
		got, err := e.store.GetMedia(t.Context(), img.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Thumbnail) == 0 || bytes.HasPrefix(got.Thumbnail, []byte{0xFF, 0xD8}) || bytes.Contains(got.Thumbnail, []byte("JFIF")) {
			t.Fatal("stored thumbnail is missing or a plaintext JPEG")
		}
	})
}

func TestTamperedObjectDetected(t *testing.T) {
	backends(t, media.Config{}, func(t *testing.T, e *env) {
		data := randomBytes(t, 200_000)
		for _, pos := range []int{0, 20, 70_000, 199_000} {
			m := e.mustUpload(t, "f", "", data)
			raw := e.rawObject(t, m)
			raw[pos] ^= 0x01
			if err := e.blobs.Put(t.Context(), "m/"+m.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
				t.Fatal(err)
			}
			got, err := e.read(t, m, 0, -1)
			if !errors.Is(err, media.ErrCorrupt) {
				t.Errorf("flipped byte %d: read %d bytes, err %v; want ErrCorrupt", pos, len(got), err)
			}
		}
		// Truncated by a whole package: the final package is missing.
		m := e.mustUpload(t, "f", "", data)
		raw := e.rawObject(t, m)
		raw = raw[:len(raw)-(len(raw)%(64<<10+32))]
		if err := e.blobs.Put(t.Context(), "m/"+m.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.read(t, m, 0, -1); !errors.Is(err, media.ErrCorrupt) {
			t.Errorf("truncated object: %v, want ErrCorrupt", err)
		}
		// Another media's key (a swapped row, or the wrong master key's
		// data key) does not decrypt it.
		a, b := e.mustUpload(t, "a", "", data), e.mustUpload(t, "b", "", data)
		a.WrappedKey = b.WrappedKey
		if _, err := e.read(t, a, 0, -1); !errors.Is(err, media.ErrCorrupt) {
			t.Errorf("wrong data key: %v, want ErrCorrupt", err)
		}
		// An object copied under another id fails too (key bound to the id).
		raw = e.rawObject(t, b)
		c := e.mustUpload(t, "c", "", data)
		if err := e.blobs.Put(t.Context(), "m/"+c.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.read(t, c, 0, -1); !errors.Is(err, media.ErrCorrupt) {
			t.Errorf("object moved to another id: %v, want ErrCorrupt", err)
		}
	})
}

func TestWrongMasterKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	blobs, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, blobs, media.Config{})
	m := e.mustUpload(t, "f", "", randomBytes(t, 1000))
	other := media.New(e.store, blobs, newTestKeys(t), media.Config{})
	if _, err := other.Open(t.Context(), m, 0, -1); !errors.Is(err, keyring.ErrUnknownMasterKey) {
		t.Fatalf("Open under another master key: %v, want keyring.ErrUnknownMasterKey", err)
	}
}

func TestUploadLimits(t *testing.T) {
	backends(t, media.Config{MaxBytes: 100_000, MaxPixels: 1_000_000}, func(t *testing.T, e *env) {
		if _, err := e.upload(t, "big", "", randomBytes(t, 100_001)); !errors.Is(err, media.ErrTooLarge) {
			t.Errorf("oversize: %v, want ErrTooLarge", err)
		}
		if _, err := e.upload(t, "max", "", randomBytes(t, 100_000)); err != nil {
			t.Errorf("upload at the limit: %v", err)
		}
		tests := []struct {
			name, declared string
			data           []byte
			want           error
		}{
			{"text as png", "image/png", []byte("hello, I am not a picture"), media.ErrTypeMismatch},
			{"png as jpeg", "image/jpeg", pngBytes(t, 10, 10), media.ErrTypeMismatch},
			{"png as pdf", "application/pdf", pngBytes(t, 10, 10), media.ErrTypeMismatch},
			{"broken png", "", append([]byte("\x89PNG\r\n\x1a\n"), randomBytes(t, 100)...), media.ErrBadImage},
			{"bomb", "image/png", pngBomb(t, 100_000, 100_000), media.ErrImageTooLarge},
			{"wide", "", pngBomb(t, 30_000, 1), media.ErrImageTooLarge},
			{"over pixel limit", "", pngBomb(t, 1001, 1000), media.ErrImageTooLarge},
		}
		for _, tt := range tests {
			if _, err := e.upload(t, tt.name, tt.declared, tt.data); !errors.Is(err, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
		// Nothing of the refused uploads was kept.
		n := 0
		if err := e.blobs.Walk(t.Context(), func(blob.Info) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d objects stored, want 1 (the upload at the limit)", n)
		}
	})
}

func TestThumbnails(t *testing.T) {
	e := newEnv(t, mustDir(t), media.Config{})
	var gifBuf bytes.Buffer
	pal := image.NewPaletted(image.Rect(0, 0, 90, 300), []color.Color{color.White, color.Black})
	if err := gif.Encode(&gifBuf, pal, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, typ string
		data      []byte
		w, h      int // upright dimensions
	}{
		{"photo.jpg", "image/jpeg", jpegBytes(t, 1600, 1200, 0), 1600, 1200},
		{"rotated.jpg", "image/jpeg", jpegBytes(t, 1600, 1200, 6), 1200, 1600},
		{"upside.jpg", "image/jpeg", jpegBytes(t, 1600, 1200, 3), 1600, 1200},
		{"alpha.png", "image/png", pngBytes(t, 500, 250), 500, 250},
		{"small.png", "image/png", pngBytes(t, 20, 10), 20, 10},
		{"metadata.png", "image/png", media.MetadataPNG(t), 40, 30},  // text, EXIF GPS, time: stripped
		{"metadata.webp", "image/webp", media.MetadataWebP(t), 1, 1}, // EXIF GPS, XMP: stripped
		{"metadata.gif", "image/gif", media.MetadataGIF(t), 20, 10},  // comments, XMP: stripped
		{"anim.gif", "image/gif", gifBuf.Bytes(), 90, 300},
		// A 1x1 lossless WebP (Go has no WebP encoder to make a bigger one).
		{"tiny.webp", "image/webp", []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := e.mustUpload(t, tt.name, "", tt.data)
			if m.ContentType != tt.typ || m.Width != tt.w || m.Height != tt.h {
				t.Fatalf("uploaded %s %dx%d, want %s %dx%d", m.ContentType, m.Width, m.Height, tt.typ, tt.w, tt.h)
			}
			if stored, err := e.read(t, m, 0, -1); err != nil || bytes.Contains(stored, []byte("SECRET")) {
				t.Fatalf("stored original: %v, or it kept metadata (EXIF GPS, text)", err)
			}
			thumb, err := e.svc.Thumbnail(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(thumb) > 5*1024 {
				t.Errorf("thumbnail is %d bytes", len(thumb))
			}
			if bytes.Contains(thumb, []byte("Exif")) {
				t.Error("thumbnail kept EXIF metadata")
			}
			img, format, err := image.Decode(bytes.NewReader(thumb))
			if err != nil || format != "jpeg" {
				t.Fatalf("thumbnail: %s, %v", format, err)
			}
			b := img.Bounds()
			wantW, wantH := tt.w, tt.h
			if max(wantW, wantH) > 128 {
				if wantW >= wantH {
					wantW, wantH = 128, tt.h*128/tt.w
				} else {
					wantW, wantH = tt.w*128/tt.h, 128
				}
			}
			if b.Dx() != wantW || b.Dy() != wantH {
				t.Errorf("thumbnail %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
			}
		})
	}
	// Orientation 6: the source's top-left corner is red; upright, it is
	// at the top-right.
	m := e.mustUpload(t, "corner.jpg", "", jpegBytes(t, 1600, 1200, 6))
	thumb, err := e.svc.Thumbnail(m)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if r, g, _, _ := img.At(b.Max.X-3, b.Min.Y+3).RGBA(); r < 0xa000 || g > 0x6000 {
		t.Errorf("top-right of the upright thumbnail is not red: r=%x g=%x", r, g)
	}
	if r, g, _, _ := img.At(b.Min.X+3, b.Min.Y+3).RGBA(); r > 0x6000 || g < 0xa000 {
		t.Errorf("top-left of the upright thumbnail is not green: r=%x g=%x", r, g)
	}
}

func TestGarbageCollection(t *testing.T) {
	backends(t, media.Config{GCAfter: time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		conv, _, err := e.store.DirectConversation(ctx, "alice", "bob", "c1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		start := *e.now
		old := e.mustUpload(t, "old", "", []byte("old"))
		sent := e.mustUpload(t, "sent", "", []byte("sent"))
		if err := e.svc.Reference(ctx, sent.ID, conv.ID, 1); err != nil {
			t.Fatal(err)
		}
		// An object without metadata (a crash between storing and recording).
		if err := e.blobs.Put(ctx, "m/01ORPHAN0000000000000000000", bytes.NewReader([]byte("x")), 1); err != nil {
			t.Fatal(err)
		}
		*e.now = start.Add(50 * time.Minute)
		young := e.mustUpload(t, "young", "", []byte("young"))

		// Before the deadline nothing goes.
		*e.now = start.Add(59*time.Minute + 30*time.Second)
		if n, err := e.svc.CollectGarbage(ctx); err != nil || n != 0 {
			t.Fatalf("CollectGarbage early: %d, %v", n, err)
		}
		// Sending is refused shortly before collection, allowed for sent ones.
		if _, err := e.svc.Attach(ctx, "alice", old.ID); !errors.Is(err, media.ErrExpired) {
			t.Errorf("Attach near expiry: %v, want ErrExpired", err)
		}
		if _, err := e.svc.Attach(ctx, "alice", sent.ID); err != nil {
			t.Errorf("Attach of a sent media: %v", err)
		}

		// Past the deadline of both unsent uploads. The orphan's age comes
		// from the blob store's clock (real time).
		*e.now = start.Add(2 * time.Hour)
		n, err := e.svc.CollectGarbage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 { // old, young (both unsent, now older than an hour) and the orphan
			t.Errorf("CollectGarbage deleted %d, want 3", n)
		}
		for _, m := range []storage.Media{old, young} {
			if _, err := e.store.GetMedia(ctx, m.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: metadata survived: %v", m.Name, err)
			}
			if _, err := e.blobs.Stat(ctx, "m/"+m.ID); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s: object survived: %v", m.Name, err)
			}
		}
		if got, err := e.read(t, sent, 0, -1); err != nil || string(got) != "sent" {
			t.Errorf("referenced media after GC: %q, %v", got, err)
		}
		if _, err := e.blobs.Stat(ctx, "m/01ORPHAN0000000000000000000"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("orphan object survived: %v", err)
		}
	})
}

func TestAccess(t *testing.T) {
	e := newEnv(t, mustDir(t), media.Config{})
	ctx := t.Context()
	m := e.mustUpload(t, "f", "", []byte("data"))
	if _, err := e.svc.Get(ctx, "alice", m.ID); err != nil {
		t.Errorf("owner: %v", err)
	}
	if _, err := e.svc.Get(ctx, "bob", m.ID); !errors.Is(err, media.ErrForbidden) {
		t.Errorf("stranger: %v, want ErrForbidden", err)
	}
	if _, err := e.svc.Get(ctx, "alice", "01HZZZZZZZZZZZZZZZZZZZZZZZ"); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("missing: %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Get(ctx, "alice", "../etc"); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("bad id: %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Attach(ctx, "bob", m.ID); !errors.Is(err, media.ErrForbidden) {
		t.Errorf("Attach by another user: %v, want ErrForbidden", err)
	}
	if err := e.svc.Delete(ctx, "bob", m.ID); !errors.Is(err, media.ErrForbidden) {
		t.Errorf("Delete by a stranger: %v, want ErrForbidden", err)
	}
	if err := e.svc.Delete(ctx, "alice", m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, "alice", m.ID); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("after Delete: %v, want ErrNotFound", err)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":              "photo.jpg",
		"../../etc/passwd":       "passwd",
		`C:\Users\me\cat.png`:    "cat.png",
		"a\x00b\nc\u202Ed.txt":   "ab cd.txt",
		"":                       "file",
		"...":                    "file",
		".bashrc":                "bashrc",
		"  spaced\tname  ":       "spaced name",
		`quo"te.txt`:             "quote.txt",
		strings.Repeat("é", 200): strings.Repeat("é", 100),
		"bad\xffutf8":            "badutf8",
	} {
		if got := media.SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustDir(t *testing.T) blob.Store {
	t.Helper()
	d, err := blob.NewDir(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pngBytes is a PNG with a transparent gradient.
func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 128, uint8(x + y)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngBomb is a small PNG whose header declares w x h pixels.
func pngBomb(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := pngBytes(t, 1, 1)
	// IHDR data starts at 16: width, height; its CRC covers type and data.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// jpegBytes is a w x h JPEG, red in the top-left quarter, green in the
// bottom-left, with an EXIF orientation tag when orientation > 0.
func jpegBytes(t testing.TB, w, h, orientation int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{200, 200, 255, 255}
			switch {
			case x < w/2 && y < h/2:
				c = color.RGBA{255, 0, 0, 255}
			case x < w/2:
				c = color.RGBA{0, 255, 0, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if orientation == 0 {
		return b
	}
	// APP1 Exif, big-endian TIFF, IFD0 with one entry: orientation.
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00")
	binary.BigEndian.PutUint16(tiff[18:], uint16(orientation))
	seg := append(append([]byte("Exif\x00\x00"), tiff...), "GPS SECRET-GPS-POSITION"...)
	app1 := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{0xFF, 0xD8}, app1...)
	out = append(out, seg...)
	return append(out, b[2:]...)
}

// The daily quota counts what was stored, is not given back by deleting,
// and starts again the next UTC day.
func TestDailyQuota(t *testing.T) {
	e := newEnv(t, mustDir(t), media.Config{MaxBytes: 1000, DailyBytes: 1000})
	*e.now = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	first := e.mustUpload(t, "a.bin", "", bytes.Repeat([]byte("a"), 600))
	if _, err := e.upload(t, "b.bin", "", bytes.Repeat([]byte("b"), 401)); !errors.Is(err, media.ErrQuota) {
		t.Fatalf("upload past the quota: %v, want ErrQuota", err)
	}
	e.mustUpload(t, "c.bin", "", bytes.Repeat([]byte("c"), 400)) // exactly 1000
	if err := e.svc.Delete(t.Context(), "alice", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.upload(t, "d.bin", "", []byte("d")); !errors.Is(err, media.ErrQuota) {
		t.Fatalf("upload after deleting: %v, want ErrQuota (deleting gives nothing back)", err)
	}
	// Other users have their own quota; the next UTC day starts from zero.
	if _, err := e.svc.Upload(t.Context(), media.Upload{Owner: "bob", Name: "e.bin", Body: bytes.NewReader(bytes.Repeat([]byte("e"), 1000))}); err != nil {
		t.Fatalf("bob's upload: %v", err)
	}
	*e.now = time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC)
	e.mustUpload(t, "f.bin", "", bytes.Repeat([]byte("f"), 1000))
}
