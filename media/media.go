// Package media stores users' files: uploads are sniffed, checked,
// thumbnailed (images) and encrypted with a fresh data key per object
// before the blob store sees a byte; the data key is kept only wrapped by
// the master key. Downloads stream and decrypt on the fly, ranges included.
// Who may fetch a media is decided by the messages that carried it (see
// storage.MediaStore.CanReadMedia).
package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/minio/sio"
	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/blob"
)

// Sentinel errors callers map to HTTP statuses and protocol error codes.
var (
	ErrNotFound      = errors.New("media not found")
	ErrForbidden     = errors.New("media not accessible")
	ErrTooLarge      = errors.New("file too large")
	ErrTypeMismatch  = errors.New("content does not match the declared type")
	ErrBadImage      = errors.New("not a valid image")
	ErrImageTooLarge = errors.New("image dimensions too large")
	ErrExpired       = errors.New("upload expired")
	ErrUnavailable   = errors.New("media storage unavailable")
	ErrCorrupt       = errors.New("media object failed authentication (altered, truncated or wrong key)")
	ErrBadRange      = errors.New("range not satisfiable")
	ErrQuota         = errors.New("daily upload quota exceeded")
)

// Keys wraps data keys under the master key (keyring.Keyring behind an
// adapter); wrapped keys are opaque text stored with the media.
type Keys interface {
	Wrap(dataKey []byte) (string, error)
	Unwrap(wrapped string) ([]byte, error)
}

// Store is the part of storage.Store media uses.
type Store interface {
	storage.MediaStore
}

// Config holds limits and tuning; zero values take defaults.
type Config struct {
	MaxBytes   int64         // largest upload (plaintext)
	DailyBytes int64         // bytes a user may upload per UTC day; 0 for no quota
	MaxPixels  int64         // largest image area decoded for a thumbnail
	MaxSide    int           // largest image width or height
	GCAfter    time.Duration // unreferenced uploads older than this are deleted
	GCInterval time.Duration // how often the collector runs
	TempDir    string        // where uploads are spooled (encrypted); os.TempDir() if empty
	Decoders   int           // images decoded at once
	Now        func() time.Time
	Logger     *slog.Logger
	KeyPrefix  string // blob key prefix, "m/" by default
	// LinkKey signs links (SignLink); random when empty, so that links
	// die with the process. Nodes sharing links must share the key (msgrd
	// derives it from the master key).
	LinkKey      []byte
	sendMarginGC time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 25 << 20
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = 40_000_000
	}
	if c.MaxSide <= 0 {
		c.MaxSide = 20_000
	}
	if c.GCAfter <= 0 {
		c.GCAfter = 24 * time.Hour
	}
	if c.GCInterval <= 0 {
		c.GCInterval = min(time.Hour, c.GCAfter/2)
	}
	if c.Decoders <= 0 {
		c.Decoders = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "m/"
	}
	if len(c.LinkKey) == 0 {
		c.LinkKey = make([]byte, 32)
		_, _ = rand.Read(c.LinkKey) // never fails (crypto/rand panics instead)
	}
	// An upload about to be collected is refused for sending rather than
	// racing the collector; the margin dwarfs the time a send takes.
	c.sendMarginGC = min(time.Minute, c.GCAfter/10)
}

// Service uploads, serves and collects media.
type Service struct {
	cfg      Config
	store    Store
	blobs    blob.Store
	keys     Keys
	log      *slog.Logger
	decoders chan struct{}
}

// New returns a Service; Run starts its garbage collector.
func New(store Store, blobs blob.Store, keys Keys, cfg Config) *Service {
	cfg.setDefaults()
	return &Service{cfg: cfg, store: store, blobs: blobs, keys: keys, log: cfg.Logger, decoders: make(chan struct{}, cfg.Decoders)}
}

// MaxBytes is the upload limit.
func (s *Service) MaxBytes() int64 { return s.cfg.MaxBytes }

// Ping checks the blob store.
func (s *Service) Ping(ctx context.Context) error { return s.blobs.Ping(ctx) }

func (s *Service) key(id string) string { return s.cfg.KeyPrefix + id }

// blobError classifies blob store failures.
func blobError(err error) error {
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return fmt.Errorf("%w: object missing: %v", ErrNotFound, err)
	case errors.Is(err, blob.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// Upload is a file to store.
type Upload struct {
	Owner        string
	Name         string    // client's file name; sanitised
	DeclaredType string    // client's content type; checked, never trusted
	Body         io.Reader // read to EOF or MaxBytes+1
}

// headKeep is how much plaintext Upload keeps in memory for sniffing and
// the EXIF orientation (which sits in the first segments of a JPEG).
const headKeep = 128 << 10

// Upload stores a file: it spools the body encrypted to a temporary file
// (never holding it in memory; JPEG metadata other than the orientation is
// dropped on the way, see jpegStripper), sniffs its type, checks and
// thumbnails images, then stores the object and its metadata.
func (s *Service) Upload(ctx context.Context, up Upload) (storage.Media, error) {
	id := ulid.Make().String()
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return storage.Media{}, fmt.Errorf("media: data key: %w", err)
	}
	objKey, err := deriveKey(dataKey, objectKeyInfo, id)
	if err != nil {
		return storage.Media{}, err
	}
	spool, err := os.CreateTemp(s.cfg.TempDir, "msgr-upload-*")
	if err != nil {
		return storage.Media{}, fmt.Errorf("media: spool: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	// Encrypt while receiving.
	// sio closes its destination on Close; the spool must stay open.
	enc, err := sio.EncryptWriter(struct{ io.Writer }{spool}, sioConfig(objKey, 0))
	if err != nil {
		return storage.Media{}, fmt.Errorf("media: encrypt: %w", err)
	}
	// What is stored (and sniffed) is the file without its image metadata.
	head := &headWriter{max: headKeep}
	stored := &countingWriter{w: io.MultiWriter(enc, head)}
	strip := newMetadataStripper(stored)
	received, err := io.Copy(strip, io.LimitReader(up.Body, s.cfg.MaxBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return storage.Media{}, fmt.Errorf("%w: the limit is %d bytes", ErrTooLarge, s.cfg.MaxBytes)
		}
		return storage.Media{}, fmt.Errorf("media: receive upload: %w", err)
	}
	if received > s.cfg.MaxBytes {
		return storage.Media{}, fmt.Errorf("%w: the limit is %d bytes", ErrTooLarge, s.cfg.MaxBytes)
	}
	if err := strip.Close(); err != nil {
		return storage.Media{}, fmt.Errorf("media: encrypt: %w", err)
	}
	size := stored.n
	if err := enc.Close(); err != nil {
		return storage.Media{}, fmt.Errorf("media: encrypt: %w", err)
	}
	encSize, err := encryptedSize(size)
	if err != nil {
		return storage.Media{}, err
	}
	if fi, err := spool.Stat(); err != nil {
		return storage.Media{}, fmt.Errorf("media: spool: %w", err)
	} else if fi.Size() != encSize {
		return storage.Media{}, fmt.Errorf("media: spool holds %d bytes, want %d", fi.Size(), encSize)
	}

	m := storage.Media{
		ID:          id,
		OwnerID:     up.Owner,
		ContentType: sniff(head.buf),
		Name:        SanitizeName(up.Name),
		Size:        size,
		CreatedAt:   s.cfg.Now(),
	}
	if err := checkDeclared(up.DeclaredType, m.ContentType); err != nil {
		return storage.Media{}, err
	}
	if format, ok := imageTypes[m.ContentType]; ok {
		plain := func() (io.Reader, error) {
			r, err := decryptReader(io.NewSectionReader(spool, 0, encSize), objKey, 0, 0, size)
			return bufio.NewReaderSize(r, 64<<10), err
		}
		thumb, w, h, err := s.thumbnail(ctx, plain, format, head.buf)
		if err != nil {
			return storage.Media{}, err
		}
		if m.Thumbnail, err = sealThumbnail(dataKey, id, thumb); err != nil {
			return storage.Media{}, err
		}
		m.Width, m.Height = w, h
	}
	if m.WrappedKey, err = s.keys.Wrap(dataKey); err != nil {
		return storage.Media{}, fmt.Errorf("media: wrap data key: %w", err)
	}

	if err := s.chargeQuota(ctx, up.Owner, size); err != nil {
		return storage.Media{}, err
	}
	if err := s.blobs.Put(ctx, s.key(id), io.NewSectionReader(spool, 0, encSize), encSize); err != nil {
		return storage.Media{}, blobError(err)
	}
	if err := s.store.CreateMedia(ctx, m); err != nil {
		// The object has no row: remove it (the collector would, later).
		if derr := s.blobs.Delete(context.WithoutCancel(ctx), s.key(id)); derr != nil {
			s.log.Warn("media: cannot remove object of failed upload", "media", id, "error", derr)
		}
		return storage.Media{}, fmt.Errorf("media: record upload: %w", err)
	}
	return m, nil
}

// chargeQuota counts size against owner's daily upload quota, or refuses
// with ErrQuota. It runs once the upload has passed every check, so that
// only what is stored counts; bytes counted for an upload that then fails
// to be stored stay counted (rare, and on the safe side).
func (s *Service) chargeQuota(ctx context.Context, owner string, size int64) error {
	if s.cfg.DailyBytes <= 0 {
		return nil
	}
	ok, err := s.store.AddMediaUsage(ctx, owner, s.cfg.Now(), size, s.cfg.DailyBytes)
	if err != nil {
		return fmt.Errorf("%w: upload quota: %w", ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("%w: %d bytes would take you past %d bytes today (UTC); try again tomorrow", ErrQuota, size, s.cfg.DailyBytes)
	}
	return nil
}

// thumbnail checks an image's header, then decodes it (bounded
// concurrency: a decoded image can take hundreds of megabytes) and
// returns the thumbnail and the upright dimensions.
func (s *Service) thumbnail(ctx context.Context, plain func() (io.Reader, error), format string, head []byte) ([]byte, int, int, error) {
	r, err := plain()
	if err != nil {
		return nil, 0, 0, err
	}
	cfg, err := checkImage(r, format, s.cfg.MaxPixels, s.cfg.MaxSide)
	if err != nil {
		return nil, 0, 0, err
	}
	orientation := 1
	if format == "jpeg" {
		orientation = jpegOrientation(head)
	}
	select {
	case s.decoders <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, 0, ctx.Err()
	}
	defer func() { <-s.decoders }()
	if r, err = plain(); err != nil {
		return nil, 0, 0, err
	}
	thumb, err := makeThumbnail(r, orientation)
	if err != nil {
		return nil, 0, 0, err
	}
	w, h := cfg.Width, cfg.Height
	if orientation >= 5 {
		w, h = h, w
	}
	return thumb, w, h, nil
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	buf []byte
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// sniff names the content type of a file from its first bytes.
func sniff(head []byte) string {
	t := http.DetectContentType(head[:min(len(head), 512)])
	if base, _, err := mime.ParseMediaType(t); err == nil && !strings.HasPrefix(base, "text/") {
		return base
	}
	return t
}

// checkDeclared refuses an upload whose declared type contradicts the
// sniffed one where it matters: for images, which clients render inline.
// Other declared types are ignored; the sniffed type is what is stored.
func checkDeclared(declared, sniffed string) error {
	base, _, err := mime.ParseMediaType(declared)
	if declared == "" || err != nil || base == "application/octet-stream" {
		return nil
	}
	_, sniffedImage := imageTypes[sniffed]
	if strings.HasPrefix(base, "image/") || sniffedImage {
		if base == "image/jpg" || base == "image/pjpeg" {
			base = "image/jpeg"
		}
		if base != sniffed {
			return fmt.Errorf("%w: declared %s, content is %s", ErrTypeMismatch, base, sniffed)
		}
	}
	return nil
}

// SanitizeName reduces a client-supplied file name to a safe base name:
// no directories, no control or format characters, at most 200 bytes of
// valid UTF-8; "file" when nothing is left.
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "")
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == '"', r == '/':
			continue
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimSpace(b.String())
	name = strings.TrimLeft(name, ".")
	for len(name) > 200 {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	if name == "" {
		return "file"
	}
	return name
}

// GetLinked returns a media's metadata for a request that carries a
// valid signed link (CheckLink) instead of credentials.
func (s *Service) GetLinked(ctx context.Context, id, expires, sig string) (storage.Media, error) {
	if !validID(id) {
		return storage.Media{}, ErrNotFound
	}
	if err := s.CheckLink(id, expires, sig); err != nil {
		return storage.Media{}, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	m, err := s.store.GetMedia(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Media{}, ErrNotFound
	}
	if err != nil {
		return storage.Media{}, fmt.Errorf("media: %w", err)
	}
	return m, nil
}

// Get returns a media's metadata if user may read it: ErrNotFound when it
// does not exist, ErrForbidden when it exists but user may not read it.
func (s *Service) Get(ctx context.Context, user, id string) (storage.Media, error) {
	if !validID(id) {
		return storage.Media{}, ErrNotFound
	}
	m, err := s.store.GetMedia(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Media{}, ErrNotFound
	}
	if err != nil {
		return storage.Media{}, fmt.Errorf("media: %w", err)
	}
	if m.OwnerID == user {
		return m, nil
	}
	ok, err := s.store.CanReadMedia(ctx, id, user)
	if err != nil {
		return storage.Media{}, fmt.Errorf("media: %w", err)
	}
	if !ok {
		return storage.Media{}, ErrForbidden
	}
	return m, nil
}

func validID(id string) bool {
	_, err := ulid.ParseStrict(id)
	return err == nil
}

// Open streams plaintext bytes [off, off+length) of m (length -1: to the
// end), decrypting on the fly. Authentication failures surface as
// ErrCorrupt from Open (first package) or from Read.
func (s *Service) Open(ctx context.Context, m storage.Media, off, length int64) (io.ReadCloser, error) {
	if length < 0 {
		length = m.Size - off
	}
	if m.Size == 0 || length == 0 {
		if off != 0 || length != 0 {
			return nil, ErrBadRange
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	encOff, encLen, seq, skip, err := encryptedRange(off, length, m.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	dataKey, err := s.keys.Unwrap(m.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("media %s: unwrap data key: %w", m.ID, err)
	}
	objKey, err := deriveKey(dataKey, objectKeyInfo, m.ID)
	if err != nil {
		return nil, err
	}
	rc, err := s.blobs.Get(ctx, s.key(m.ID), encOff, encLen)
	if err != nil {
		return nil, blobError(err)
	}
	dec, err := decryptReader(rc, objKey, seq, skip, length)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return readCloser{dec, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Thumbnail returns m's decrypted JPEG thumbnail; ErrNotFound if it has none.
func (s *Service) Thumbnail(m storage.Media) ([]byte, error) {
	if len(m.Thumbnail) == 0 {
		return nil, fmt.Errorf("%w: no thumbnail", ErrNotFound)
	}
	dataKey, err := s.keys.Unwrap(m.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("media %s: unwrap data key: %w", m.ID, err)
	}
	return openThumbnail(dataKey, m.ID, m.Thumbnail)
}

// Delete removes a media of user's: its metadata, then its object.
// Messages that carried it keep their inline thumbnail; the original is gone.
func (s *Service) Delete(ctx context.Context, user, id string) error {
	m, err := s.Get(ctx, user, id)
	if err != nil {
		return err
	}
	if m.OwnerID != user {
		return fmt.Errorf("%w: only the uploader may delete it", ErrForbidden)
	}
	return s.remove(ctx, m.ID)
}

func (s *Service) remove(ctx context.Context, id string) error {
	if err := s.store.DeleteMedia(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	// A failure here leaves an orphan object, which the collector removes.
	if err := s.blobs.Delete(ctx, s.key(id)); err != nil {
		return blobError(err)
	}
	return nil
}

// Attach checks that user may send media id in a message and describes it,
// thumbnail included, for the message body.
func (s *Service) Attach(ctx context.Context, user, id string) (protocol.Media, error) {
	if !validID(id) {
		return protocol.Media{}, ErrNotFound
	}
	m, err := s.store.GetMedia(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return protocol.Media{}, ErrNotFound
	}
	if err != nil {
		return protocol.Media{}, fmt.Errorf("media: %w", err)
	}
	if m.OwnerID != user {
		return protocol.Media{}, fmt.Errorf("%w: only the uploader may send it", ErrForbidden)
	}
	if m.CreatedAt.Before(s.cfg.Now().Add(-s.cfg.GCAfter + s.cfg.sendMarginGC)) {
		refs, err := s.store.MediaRefs(ctx, id)
		if err != nil {
			return protocol.Media{}, fmt.Errorf("media: %w", err)
		}
		if len(refs) == 0 {
			return protocol.Media{}, fmt.Errorf("%w: unsent uploads are deleted after %v, upload it again", ErrExpired, s.cfg.GCAfter)
		}
	}
	d := protocol.Media{ID: m.ID, Type: m.ContentType, Name: m.Name, Size: m.Size, Width: m.Width, Height: m.Height}
	if len(m.Thumbnail) > 0 {
		if d.Thumb, err = s.Thumbnail(m); err != nil {
			return protocol.Media{}, err
		}
	}
	return d, nil
}

// Reference records that media id was sent as message seq of convID.
func (s *Service) Reference(ctx context.Context, id, convID string, seq int64) error {
	if err := s.store.AddMediaRef(ctx, storage.MediaRef{MediaID: id, ConvID: convID, Seq: seq}); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	return nil
}
