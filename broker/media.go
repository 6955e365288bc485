package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/msgrhq/msgr/media"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// newMediaService assembles media on the configured blob store; nil when
// none is configured.
func newMediaService(cfg Config, store storage.Store, log *slog.Logger) (*media.Service, error) {
	blobs, err := cfg.Media.blobStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("media storage: %w", err)
	}
	if blobs == nil {
		log.Warn("media disabled: set s3-endpoint, media-dir or data-dir")
		return nil, nil
	}
	if cfg.RedisURL != "" && cfg.Media.S3Endpoint == "" {
		log.Warn("cluster mode with media in a local directory: every node must see the same media-dir (a shared filesystem), or set s3-endpoint")
	}
	// The master key of encryption at rest (keys.go); OpenStore has loaded
	// (or, for the embedded store, created) it already.
	ring, _, err := LoadKeyring(cfg)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return media.New(store, blobs, media.KeyringKeys(ring), media.Config{
		MaxBytes:   cfg.Media.MaxBytes,
		DailyBytes: cfg.Media.DailyBytes,
		MaxPixels:  cfg.Media.MaxPixels,
		GCAfter:    cfg.Media.GCAfter,
		GCInterval: cfg.Media.GCInterval,
		Logger:     log,
		// Derived from the master key every node shares, so a link made by
		// one node works on any other and across restarts.
		LinkKey: ring.Derive("media link signature"),
	}), nil
}

// startMediaGC runs the media garbage collector until Close.
func (b *Broker) startMediaGC() {
	if b.media == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.media.Run(ctx)
	}()
	b.stopMedia = func() { cancel(); wg.Wait() }
}

func (b *Broker) mediaRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/media", b.mediaHandler(b.uploadMedia))
	mux.HandleFunc("GET /v1/media/{id}", b.getMediaEntry) // and HEAD
	mux.HandleFunc("GET /v1/media/{id}/thumbnail", b.mediaHandler(b.getThumbnail))
	mux.HandleFunc("POST /v1/media/{id}/link", b.mediaHandler(b.mediaLink))
	mux.HandleFunc("DELETE /v1/media/{id}", b.mediaHandler(b.deleteMedia))
}

// mediaHandler authenticates the user, then runs h as mediaErrors does.
func (b *Broker) mediaHandler(h func(w http.ResponseWriter, r *http.Request, user string) error) http.HandlerFunc {
	return b.mediaErrors(func(w http.ResponseWriter, r *http.Request) error {
		user, err := b.httpUser(r)
		if err != nil {
			if r.Method == http.MethodPost {
				w.Header().Set("Connection", "close")
			}
			writeAuthError(w, err)
			return nil
		}
		return h(w, r, user)
	})
}

// mediaErrors turns h's errors into JSON error responses:
// {"error": message, "code": code}.
func (b *Broker) mediaErrors(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if b.media == nil {
			b.httpError(w, r, http.StatusServiceUnavailable, protocol.Errorf(protocol.CodeUnavailable, "media storage is not configured on this broker"))
			return
		}
		if err := h(w, r); err != nil {
			status, perr := b.mediaStatus(err)
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			b.httpError(w, r, status, perr)
		}
	}
}

// getMediaEntry serves GET and HEAD /v1/media/{id}: with a signed link
// (?expires=&sig=, from POST /v1/media/{id}/link) no credentials are
// needed; otherwise the user must be allowed to read the media.
func (b *Broker) getMediaEntry(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("sig") {
		b.mediaHandler(b.getMedia)(w, r)
		return
	}
	b.mediaErrors(func(w http.ResponseWriter, r *http.Request) error {
		m, err := b.media.GetLinked(r.Context(), r.PathValue("id"), q.Get("expires"), q.Get("sig"))
		if err != nil {
			return err
		}
		return b.serveMedia(w, r, m)
	})(w, r)
}

// mediaLink handles POST /v1/media/{id}/link?ttl=15m: a link to the media
// that works without credentials until it expires (at most 24h).
func (b *Broker) mediaLink(w http.ResponseWriter, r *http.Request, user string) error {
	ttl := 15 * time.Minute
	if v := r.URL.Query().Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > media.MaxLinkTTL {
			return fmt.Errorf("%w: ttl must be a duration up to %v, e.g. 15m", errBadRequest, media.MaxLinkTTL)
		}
		ttl = d
	}
	m, err := b.media.Get(r.Context(), user, r.PathValue("id"))
	if err != nil {
		return err
	}
	expires := time.Now().Add(ttl)
	writeJSON(w, http.StatusOK, map[string]any{
		"url":     "/v1/media/" + m.ID + "?" + b.media.SignLink(m.ID, expires),
		"expires": expires.Unix(),
	})
	return nil
}

// mediaStatus maps media errors to an HTTP status and a protocol error.
func (b *Broker) mediaStatus(err error) (int, *protocol.Error) {
	msg := err.Error()
	switch {
	case errors.Is(err, media.ErrNotFound):
		return http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "media not found")
	case errors.Is(err, media.ErrForbidden):
		return http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "%s", msg)
	case errors.Is(err, media.ErrTooLarge), errors.Is(err, media.ErrImageTooLarge):
		return http.StatusRequestEntityTooLarge, protocol.Errorf(protocol.CodeTooLarge, "%s", msg)
	case errors.Is(err, media.ErrQuota):
		return http.StatusTooManyRequests, protocol.Errorf(protocol.CodeRateLimited, "%s", msg)
	case errors.Is(err, media.ErrTypeMismatch), errors.Is(err, media.ErrBadImage):
		return http.StatusUnsupportedMediaType, protocol.Errorf(protocol.CodeBadRequest, "%s", msg)
	case errors.Is(err, media.ErrBadRange):
		return http.StatusRequestedRangeNotSatisfiable, protocol.Errorf(protocol.CodeBadRequest, "%s", msg)
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest, protocol.Errorf(protocol.CodeBadRequest, "%s", msg)
	case errors.Is(err, media.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		b.log.Warn("media storage unavailable", "error", err)
		return http.StatusServiceUnavailable, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable, retry later")
	case errors.Is(err, media.ErrCorrupt):
		b.log.Error("media object failed authentication", "error", err)
		return http.StatusInternalServerError, protocol.Errorf(protocol.CodeInternal, "stored media failed its integrity check")
	}
	b.log.Error("media request failed", "error", err)
	return http.StatusInternalServerError, protocol.Errorf(protocol.CodeInternal, "internal error")
}

var errBadRequest = errors.New("bad request")

// httpError answers like the rest of the HTTP API: {"error": ..., "code": ...}.
func (b *Broker) httpError(w http.ResponseWriter, r *http.Request, status int, perr *protocol.Error) {
	if r.Method == http.MethodPost {
		// An upload refused early: do not read the rest of its body.
		w.Header().Set("Connection", "close")
	}
	writeError(w, status, string(perr.Code), perr.Message)
}

// uploadMedia handles POST /v1/media. The body is the file itself (name in
// ?name=, type in Content-Type) or multipart/form-data with a "file" part.
func (b *Broker) uploadMedia(w http.ResponseWriter, r *http.Request, user string) error {
	limit := b.media.MaxBytes()
	// Multipart framing needs a little more than the file.
	const slack = 64 << 10
	if r.ContentLength > limit+slack {
		return fmt.Errorf("%w: %d bytes, the limit is %d", media.ErrTooLarge, r.ContentLength, limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+slack)
	up := media.Upload{Owner: user, Name: r.URL.Query().Get("name"), DeclaredType: r.Header.Get("Content-Type"), Body: r.Body}
	if mt, _, err := mime.ParseMediaType(up.DeclaredType); err == nil && mt == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return fmt.Errorf("%w: %v", errBadRequest, err)
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return fmt.Errorf("%w: multipart body has no \"file\" part", errBadRequest)
			}
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return fmt.Errorf("%w: the limit is %d bytes", media.ErrTooLarge, limit)
				}
				return fmt.Errorf("%w: %v", errBadRequest, err)
			}
			if part.FormName() == "file" {
				up.Name, up.DeclaredType, up.Body = part.FileName(), part.Header.Get("Content-Type"), part
				break
			}
			part.Close()
		}
	}
	m, err := b.media.Upload(r.Context(), up)
	if err != nil {
		return err
	}
	b.log.Info("media uploaded", "media", m.ID, "user", user, "type", m.ContentType, "size", m.Size)
	w.Header().Set("Location", "/v1/media/"+m.ID)
	writeJSON(w, http.StatusCreated, describe(m))
	return nil
}

func describe(m storage.Media) protocol.Media {
	return protocol.Media{ID: m.ID, Type: m.ContentType, Name: m.Name, Size: m.Size, Width: m.Width, Height: m.Height}
}

// inlineTypes may be shown by a browser; everything else is served as an
// attachment, so that an uploaded HTML file cannot run script on this origin.
var inlineTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// getMedia handles GET and HEAD /v1/media/{id}: the original, decrypted
// while streaming, whole or one byte range.
func (b *Broker) getMedia(w http.ResponseWriter, r *http.Request, user string) error {
	m, err := b.media.Get(r.Context(), user, r.PathValue("id"))
	if err != nil {
		return err
	}
	return b.serveMedia(w, r, m)
}

// serveMedia streams m (whole, one range, or headers only for HEAD).
func (b *Broker) serveMedia(w http.ResponseWriter, r *http.Request, m storage.Media) error {
	off, length, partial, err := parseRange(r, m.Size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", m.Size))
		return err
	}
	var br *bufio.Reader
	if r.Method != http.MethodHead {
		rc, err := b.media.Open(r.Context(), m, off, length)
		if err != nil {
			return err
		}
		defer rc.Close()
		// Decrypt the first package before committing to a status, so that
		// a damaged object or an unreachable store gets a proper error.
		br = bufio.NewReaderSize(rc, 64<<10)
		if _, err := br.Peek(int(min(length, 64<<10))); err != nil && length > 0 {
			return err
		}
	}
	// Headers only now: an error above must not go out with them.
	h := w.Header()
	h.Set("Cache-Control", "private, max-age=31536000, immutable") // ids are never reused
	h.Set("ETag", w3ETag(m.ID))
	h.Set("Last-Modified", m.CreatedAt.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	disposition := "attachment"
	if inlineTypes[m.ContentType] {
		disposition = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": m.Name}))
	h.Set("Content-Type", m.ContentType)
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, m.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if br == nil { // HEAD
		w.WriteHeader(status)
		return nil
	}
	w.WriteHeader(status)
	if n, err := io.Copy(w, br); err != nil {
		// Headers are gone: abort the connection so the client sees a
		// failed transfer, never a short or altered file.
		b.log.Warn("media download aborted", "media", m.ID, "sent", n, "error", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// parseRange interprets a Range header: one range of bytes (several are
// answered with the whole file, which RFC 9110 allows).
func parseRange(r *http.Request, size int64) (off, length int64, partial bool, err error) {
	spec := r.Header.Get("Range")
	if spec == "" {
		return 0, size, false, nil
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != w3ETag(r.PathValue("id")) {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(spec, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, fmt.Errorf("%w: malformed Range %q", media.ErrBadRange, spec)
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, fmt.Errorf("%w: %q", media.ErrBadRange, spec)
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, fmt.Errorf("%w: %q of %d bytes", media.ErrBadRange, spec, size)
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
			return 0, 0, false, fmt.Errorf("%w: %q", media.ErrBadRange, spec)
		}
		end = min(end, size-1)
	}
	return start, end - start + 1, true, nil
}

func w3ETag(id string) string { return `"` + id + `"` }

// getThumbnail handles GET /v1/media/{id}/thumbnail.
func (b *Broker) getThumbnail(w http.ResponseWriter, r *http.Request, user string) error {
	m, err := b.media.Get(r.Context(), user, r.PathValue("id"))
	if err != nil {
		return err
	}
	thumb, err := b.media.Thumbnail(m)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Header().Set("Content-Length", strconv.Itoa(len(thumb)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(thumb)
	return nil
}

// deleteMedia handles DELETE /v1/media/{id}: the uploader removes it.
func (b *Broker) deleteMedia(w http.ResponseWriter, r *http.Request, user string) error {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := b.media.Delete(ctx, user, r.PathValue("id")); err != nil {
		return err
	}
	b.log.Info("media deleted", "media", r.PathValue("id"), "user", user)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
