package msgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// HTTPError is a failed media request: the HTTP status and the broker's
// error (Code unavailable means retry later).
type HTTPError struct {
	Status int
	Err    *protocol.Error
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("msgr: HTTP %d: %v", e.Status, e.Err)
}

// Unwrap returns the *protocol.Error.
func (e *HTTPError) Unwrap() error { return e.Err }

// ParseMedia returns the media of a media message, or nil.
func ParseMedia(m protocol.Message) (*protocol.Media, string, error) {
	var b protocol.Body
	if err := json.Unmarshal(m.Body, &b); err != nil {
		return nil, "", fmt.Errorf("msgr: message body: %w", err)
	}
	if b.Type != protocol.BodyMedia {
		return nil, "", nil
	}
	return b.Media, b.Text, nil
}

func (c *Client) mediaRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if c.cfg.HTTPURL == "" {
		return nil, errors.New("msgr: Config.HTTPURL is not set (the broker's HTTP address is needed for media)")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.cfg.HTTPURL, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("msgr: %w", err)
	}
	// The same credentials as the MQTT connection: a fresh access token
	// when the client has a TokenSource, the password otherwise.
	if c.cfg.TokenSource != nil {
		tok, err := c.cfg.TokenSource(ctx)
		if err != nil {
			return nil, fmt.Errorf("msgr: access token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	} else {
		req.SetBasicAuth(c.cfg.User, c.cfg.Password)
	}
	return req, nil
}

func (c *Client) httpDo(req *http.Request, want ...int) (*http.Response, error) {
	hc := c.cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("msgr: %s %s: %w", req.Method, req.URL.Path, err)
	}
	for _, s := range want {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	// The broker's HTTP errors are {"error": message, "code": code}.
	var body struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Code == "" {
		return nil, &HTTPError{Status: resp.StatusCode, Err: protocol.Errorf(protocol.CodeInternal, "%s", resp.Status)}
	}
	return nil, &HTTPError{Status: resp.StatusCode, Err: &protocol.Error{Code: protocol.Code(body.Code), Message: body.Error}}
}

// Upload streams r to the broker as a file called name and returns the
// stored media (its type is sniffed by the broker). size is r's length
// when known, else -1. Send it with SendMessage(Outgoing{Media: id}).
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64) (protocol.Media, error) {
	req, err := c.mediaRequest(ctx, http.MethodPost, "/v1/media?name="+url.QueryEscape(name), r)
	if err != nil {
		return protocol.Media{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		req.ContentLength = size
	}
	if size == 0 {
		req.Body = http.NoBody
	}
	resp, err := c.httpDo(req, http.StatusCreated)
	if err != nil {
		return protocol.Media{}, err
	}
	defer resp.Body.Close()
	var m protocol.Media
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return protocol.Media{}, fmt.Errorf("msgr: upload response: %w", err)
	}
	return m, nil
}

// UploadFile uploads the file at path.
func (c *Client) UploadFile(ctx context.Context, path string) (protocol.Media, error) {
	f, err := os.Open(path)
	if err != nil {
		return protocol.Media{}, fmt.Errorf("msgr: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return protocol.Media{}, fmt.Errorf("msgr: %w", err)
	}
	return c.Upload(ctx, filepath.Base(path), f, fi.Size())
}

// SendFile uploads the file at path and sends it to conv (or, with to set,
// the direct conversation with that user) with an optional caption.
func (c *Client) SendFile(ctx context.Context, conv, to, path, caption string) (protocol.Media, protocol.Sent, error) {
	m, err := c.UploadFile(ctx, path)
	if err != nil {
		return protocol.Media{}, protocol.Sent{}, err
	}
	sent, err := c.SendMessage(ctx, Outgoing{Conv: conv, To: to, Media: m.ID, Text: caption})
	return m, sent, err
}

// Download writes media id's original to w and returns its size. The
// broker lets members of a conversation it was sent to (and its uploader)
// fetch it.
func (c *Client) Download(ctx context.Context, id string, w io.Writer) (int64, error) {
	return c.DownloadRange(ctx, id, 0, -1, w)
}

// DownloadRange writes length bytes of media id from off (length -1: to
// the end) to w.
func (c *Client) DownloadRange(ctx context.Context, id string, off, length int64, w io.Writer) (int64, error) {
	req, err := c.mediaRequest(ctx, http.MethodGet, "/v1/media/"+url.PathEscape(id), nil)
	if err != nil {
		return 0, err
	}
	want := http.StatusOK
	if off > 0 || length >= 0 {
		want = http.StatusPartialContent
		end := ""
		if length >= 0 {
			end = strconv.FormatInt(off+length-1, 10)
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%s", off, end))
	}
	resp, err := c.httpDo(req, want)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("msgr: download %s: %w", id, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("msgr: download %s: got %d of %d bytes", id, n, resp.ContentLength)
	}
	return n, nil
}

// SaveAttachment downloads media id into the file path (created; written
// to a temporary file first, so a failed download leaves nothing behind).
func (c *Client) SaveAttachment(ctx context.Context, id, path string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".msgr-download-*")
	if err != nil {
		return 0, fmt.Errorf("msgr: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := c.Download(ctx, id, tmp)
	if err != nil {
		tmp.Close()
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("msgr: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("msgr: %w", err)
	}
	return n, nil
}

// Thumbnail fetches media id's JPEG thumbnail (also inline in the message).
func (c *Client) Thumbnail(ctx context.Context, id string) ([]byte, error) {
	req, err := c.mediaRequest(ctx, http.MethodGet, "/v1/media/"+url.PathEscape(id)+"/thumbnail", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpDo(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// DeleteMedia deletes one of the user's uploads.
func (c *Client) DeleteMedia(ctx context.Context, id string) error {
	req, err := c.mediaRequest(ctx, http.MethodDelete, "/v1/media/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	resp, err := c.httpDo(req, http.StatusNoContent)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Link returns a URL (on Config.HTTPURL) that reads media id without
// credentials for ttl (at most 24h), for a player or a browser.
func (c *Client) Link(ctx context.Context, id string, ttl time.Duration) (string, error) {
	req, err := c.mediaRequest(ctx, http.MethodPost, "/v1/media/"+url.PathEscape(id)+"/link?ttl="+ttl.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.httpDo(req, http.StatusOK)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("msgr: link response: %w", err)
	}
	return strings.TrimRight(c.cfg.HTTPURL, "/") + out.URL, nil
}
