package broker_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage/blob"
	"github.com/msgrhq/msgr/storage/blob/blobtest"
)

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// err decodes an error response, {"error": message, "code": code}.
func (r httpResult) err(t testing.TB) *protocol.Error {
	t.Helper()
	var e struct{ Error, Code string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == "" {
		t.Fatalf("HTTP %d: not an error response: %s", r.status, r.body)
	}
	return &protocol.Error{Code: protocol.Code(e.Code), Message: e.Error}
}

func do(t testing.TB, b *brokertest.Broker, method, path, user string, body io.Reader, header map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+b.HTTPAddr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, "pw-"+user)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return httpResult{resp.StatusCode, resp.Header, data}
}

func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 3), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngBomb is a tiny PNG declaring w x h pixels.
func pngBomb(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := testPNG(t, 1, 1)
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func uploadOK(t testing.TB, b *brokertest.Broker, user, name string, data []byte) protocol.Media {
	t.Helper()
	r := do(t, b, "POST", "/v1/media?name="+name, user, bytes.NewReader(data), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("upload %s: HTTP %d %s", name, r.status, r.body)
	}
	var m protocol.Media
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMediaHTTP exercises the HTTP API as a third-party client would,
// with chat over raw MQTT 3.1.1, on both blob stores.
func TestMediaHTTP(t *testing.T) {
	for _, backend := range []string{"dir", "s3"} {
		t.Run(backend, func(t *testing.T) {
			var opts []brokertest.Option
			var s3 blob.S3Config
			if backend == "s3" {
				s3 = blobtest.S3(t)
				opts = append(opts, brokertest.WithS3Config(s3))
			}
			b := brokertest.Start(t, opts...)
			users(t, b, "alice", "bob", "carol")
			testMediaHTTP(t, b, func(id string) []byte {
				if backend == "dir" {
					raw, err := os.ReadFile(filepath.Join(b.MediaDir(), "m", id))
					if err != nil {
						t.Fatal(err)
					}
					return raw
				}
				store, err := blob.NewS3(s3)
				if err != nil {
					t.Fatal(err)
				}
				rc, err := store.Get(t.Context(), "m/"+id, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				raw, err := io.ReadAll(rc)
				if err != nil {
					t.Fatal(err)
				}
				return raw
			})
		})
	}
}

func testMediaHTTP(t *testing.T, b *brokertest.Broker, rawObject func(id string) []byte) {
	pic := testPNG(t, 300, 200)

	// Authentication.
	if r := do(t, b, "POST", "/v1/media", "", bytes.NewReader(pic), nil); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: HTTP %d %v", r.status, r.header)
	}
	req, _ := http.NewRequest("GET", "http://"+b.HTTPAddr+"/v1/media/01HZZZZZZZZZZZZZZZZZZZZZZZ", nil)
	req.SetBasicAuth("alice", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong password: %v %v", resp, err)
	}

	// Refused uploads.
	refused := []struct {
		name, declared string
		data           []byte
		status         int
		code           protocol.Code
		msg            string
	}{
		{"fake.png", "image/png", []byte("#!/bin/sh\necho not a picture\n"), 415, protocol.CodeBadRequest, "declared image/png, content is text/plain"},
		{"fake.jpg", "image/jpeg", pic, 415, protocol.CodeBadRequest, "declared image/jpeg, content is image/png"},
		{"bomb.png", "image/png", pngBomb(t, 60_000, 60_000), 413, protocol.CodeTooLarge, "image dimensions too large: 60000x60000"},
	}
	for _, tt := range refused {
		r := do(t, b, "POST", "/v1/media?name="+tt.name, "alice", bytes.NewReader(tt.data), map[string]string{"Content-Type": tt.declared})
		if r.status != tt.status {
			t.Fatalf("%s: HTTP %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
		if e := r.err(t); e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: %+v, want %s containing %q", tt.name, e, tt.code, tt.msg)
		}
	}

	// A multipart upload (as a browser form sends it).
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("caption", "ignored")
	fw, _ := mw.CreateFormFile("file", `..\evil/"pic".png`)
	fw.Write(pic)
	mw.Close()
	r := do(t, b, "POST", "/v1/media", "alice", &form, map[string]string{"Content-Type": mw.FormDataContentType()})
	if r.status != 201 {
		t.Fatalf("multipart upload: HTTP %d %s", r.status, r.body)
	}
	var up protocol.Media
	if err := json.Unmarshal(r.body, &up); err != nil {
		t.Fatal(err)
	}
	if up.Type != "image/png" || up.Name != "pic.png" || up.Width != 300 || up.Height != 200 || up.Size != int64(len(pic)) || r.header.Get("Location") != "/v1/media/"+up.ID {
		t.Fatalf("multipart upload: %+v %v", up, r.header)
	}

	// The stored object is not the plaintext.
	raw := rawObject(up.ID)
	if bytes.Contains(raw, []byte("IHDR")) || bytes.Contains(raw, pic[:64]) || bytes.Contains(raw, pic[len(pic)-64:]) {
		t.Fatal("stored object contains plaintext of the upload")
	}

	// Download, HEAD and ranges.
	path := "/v1/media/" + up.ID
	r = do(t, b, "GET", path, "alice", nil, nil)
	if r.status != 200 || !bytes.Equal(r.body, pic) || r.header.Get("Content-Type") != "image/png" || r.header.Get("Accept-Ranges") != "bytes" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET: HTTP %d, %d bytes, %v", r.status, len(r.body), r.header)
	}
	r = do(t, b, "HEAD", path, "alice", nil, nil)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != itoa(len(pic)) {
		t.Fatalf("HEAD: HTTP %d %v", r.status, r.header)
	}
	n := len(pic)
	ranges := []struct {
		spec         string
		status       int
		from, to     int // expected body pic[from:to]
		contentRange string
	}{
		{"bytes=10-19", 206, 10, 20, "bytes 10-19/" + itoa(n)},
		{"bytes=-5", 206, n - 5, n, "bytes " + itoa(n-5) + "-" + itoa(n-1) + "/" + itoa(n)},
		{"bytes=100-", 206, 100, n, "bytes 100-" + itoa(n-1) + "/" + itoa(n)},
		{"bytes=0-99999999", 206, 0, n, "bytes 0-" + itoa(n-1) + "/" + itoa(n)},
		{"bytes=0-1,5-6", 200, 0, n, ""},
		{"bytes=99999999-", 416, 0, 0, "bytes */" + itoa(n)},
	}
	for _, rr := range ranges {
		r := do(t, b, "GET", path, "alice", nil, map[string]string{"Range": rr.spec})
		if r.status != rr.status || r.header.Get("Content-Range") != rr.contentRange {
			t.Errorf("Range %s: HTTP %d Content-Range %q, want %d %q", rr.spec, r.status, r.header.Get("Content-Range"), rr.status, rr.contentRange)
			continue
		}
		if rr.status != 416 && !bytes.Equal(r.body, pic[rr.from:rr.to]) {
			t.Errorf("Range %s: wrong bytes", rr.spec)
		}
	}

	// Before it is sent, only alice may fetch it.
	if r := do(t, b, "GET", path, "bob", nil, nil); r.status != 403 {
		t.Fatalf("bob before the send: HTTP %d", r.status)
	}
	if r := do(t, b, "GET", "/v1/media/01HZZZZZZZZZZZZZZZZZZZZZZZ", "alice", nil, nil); r.status != 404 {
		t.Fatalf("unknown id: HTTP %d", r.status)
	}
	if r := do(t, b, "GET", "/v1/media/not-an-id", "alice", nil, nil); r.status != 404 {
		t.Fatalf("malformed id: HTTP %d", r.status)
	}

	// Send it over MQTT 3.1.1; bob receives the thumbnail inline.
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	if !alice.request(protocol.OpSend, protocol.Request{To: "bob", CMID: "m1", Body: &protocol.Body{Type: protocol.BodyMedia, Media: &protocol.Media{ID: up.ID, Size: 1}}}) {
		t.Fatal("no PUBACK")
	}
	if ev := alice.next(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeBadRequest {
		t.Fatalf("media body with client-set size: %+v", ev)
	}
	sent := alice.send(protocol.Request{To: "bob", CMID: "m2", Body: &protocol.Body{Type: protocol.BodyMedia, Text: "our logo", Media: &protocol.Media{ID: up.ID}}})
	ev := bob.next(protocol.EvMessage)
	var body protocol.Body
	if err := json.Unmarshal(ev.Msg.Body, &body); err != nil {
		t.Fatal(err)
	}
	if ev.Msg.Seq != sent.Seq || body.Type != protocol.BodyMedia || body.Text != "our logo" || body.Media == nil ||
		body.Media.ID != up.ID || body.Media.Type != "image/png" || body.Media.Name != "pic.png" || body.Media.Width != 300 || len(body.Media.Thumb) == 0 {
		t.Fatalf("bob received %s", ev.Msg.Body)
	}
	if _, format, err := image.DecodeConfig(bytes.NewReader(body.Media.Thumb)); err != nil || format != "jpeg" {
		t.Fatalf("inline thumbnail: %s %v", format, err)
	}
	// bob fetches it at once: the reference is recorded before the fan-out.
	if r := do(t, b, "GET", path, "bob", nil, nil); r.status != 200 || !bytes.Equal(r.body, pic) {
		t.Fatalf("bob after the send: HTTP %d", r.status)
	}
	if r := do(t, b, "GET", path+"/thumbnail", "bob", nil, nil); r.status != 200 || !bytes.Equal(r.body, body.Media.Thumb) || r.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("bob's thumbnail: HTTP %d", r.status)
	}
	// carol is no member of that conversation.
	if r := do(t, b, "GET", path, "carol", nil, nil); r.status != 403 {
		t.Fatalf("carol: HTTP %d", r.status)
	}
	if r := do(t, b, "GET", path+"/thumbnail", "carol", nil, nil); r.status != 403 {
		t.Fatalf("carol's thumbnail: HTTP %d", r.status)
	}

	// Only the uploader deletes.
	if r := do(t, b, "DELETE", path, "bob", nil, nil); r.status != 403 {
		t.Fatalf("bob deletes: HTTP %d", r.status)
	}
	if r := do(t, b, "DELETE", path, "alice", nil, nil); r.status != 204 {
		t.Fatalf("alice deletes: HTTP %d %s", r.status, r.body)
	}
	if r := do(t, b, "GET", path, "bob", nil, nil); r.status != 404 {
		t.Fatalf("after delete: HTTP %d", r.status)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMediaGarbageCollection: the broker's collector deletes unsent uploads
// once they are old enough and keeps sent ones.
func TestMediaGarbageCollection(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.Media.GCAfter = time.Second
		c.Media.GCInterval = 100 * time.Millisecond
	}))
	users(t, b, "alice", "bob")
	kept := uploadOK(t, b, "alice", "kept.bin", []byte("sent, so kept"))
	dropped := uploadOK(t, b, "alice", "dropped.bin", []byte("never sent"))
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.send(protocol.Request{To: "bob", CMID: "k", Body: &protocol.Body{Type: protocol.BodyMedia, Media: &protocol.Media{ID: kept.ID}}})

	deadline := time.Now().Add(20 * time.Second)
	for do(t, b, "GET", "/v1/media/"+dropped.ID, "alice", nil, nil).status != 404 {
		if time.Now().After(deadline) {
			t.Fatal("unsent upload not collected within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(b.MediaDir(), "m", dropped.ID)); !os.IsNotExist(err) {
		t.Errorf("object of the collected upload: %v", err)
	}
	if r := do(t, b, "GET", "/v1/media/"+kept.ID, "bob", nil, nil); r.status != 200 || string(r.body) != "sent, so kept" {
		t.Fatalf("sent media after collection: HTTP %d %s", r.status, r.body)
	}
	// Sending an upload after its deadline is refused.
	late := uploadOK(t, b, "alice", "late.bin", []byte("late"))
	time.Sleep(1200 * time.Millisecond)
	if !alice.request(protocol.OpSend, protocol.Request{To: "bob", CMID: "l", Body: &protocol.Body{Type: protocol.BodyMedia, Media: &protocol.Media{ID: late.ID}}}) {
		t.Fatal("no PUBACK")
	}
	if ev := alice.next(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeNotFound {
		t.Fatalf("sending a collected upload: %+v", ev)
	}
}

// TestMediaTamperedObject: a flipped byte in a stored object is an error
// over HTTP, never altered data: a 500 when it is in the first package, a
// cut-off transfer when it is further in.
func TestMediaTamperedObject(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice")
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	flip := func(m protocol.Media, pos int) {
		t.Helper()
		p := filepath.Join(b.MediaDir(), "m", m.ID)
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw[pos] ^= 0x40
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	early := uploadOK(t, b, "alice", "early.bin", data)
	flip(early, 100)
	r := do(t, b, "GET", "/v1/media/"+early.ID, "alice", nil, nil)
	if r.status != 500 || r.err(t).Code != protocol.CodeInternal || !strings.Contains(r.err(t).Message, "integrity") {
		t.Fatalf("first package altered: HTTP %d %s", r.status, r.body)
	}

	late := uploadOK(t, b, "alice", "late.bin", data)
	flip(late, 3*(64<<10+32)+500) // in the fourth package
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+b.HTTPAddr+"/v1/media/"+late.ID, nil)
	req.SetBasicAuth("alice", "pw-alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("fourth package altered: HTTP %d, %d bytes read without error", resp.StatusCode, len(got))
	}
	if !bytes.Equal(got, data[:len(got)]) || len(got) > 3*(64<<10) {
		t.Fatalf("fourth package altered: %d bytes delivered, some not authentic", len(got))
	}
	// Packages are independent: a range before the damage still reads.
	r = do(t, b, "GET", "/v1/media/"+late.ID, "alice", nil, map[string]string{"Range": "bytes=1000-99999"})
	if r.status != 206 || !bytes.Equal(r.body, data[1000:100000]) {
		t.Fatalf("range before the damage: HTTP %d", r.status)
	}
}

// TestMediaSignedLink: a link from POST /v1/media/{id}/link reads the
// media without credentials until it expires, across restarts; altered
// links do not.
func TestMediaSignedLink(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	data := []byte(strings.Repeat("signed link body ", 1000))
	m := uploadOK(t, b, "alice", "doc.txt", data)
	link := func(user, ttl string) (httpResult, string) {
		t.Helper()
		r := do(t, b, "POST", "/v1/media/"+m.ID+"/link?ttl="+ttl, user, nil, nil)
		var out struct {
			URL     string `json:"url"`
			Expires int64  `json:"expires"`
		}
		if r.status == 200 {
			if err := json.Unmarshal(r.body, &out); err != nil || out.URL == "" || out.Expires <= time.Now().Unix() {
				t.Fatalf("link response %s: %v", r.body, err)
			}
		}
		return r, out.URL
	}
	r, url := link("alice", "10m")
	if r.status != 200 {
		t.Fatalf("link: HTTP %d %s", r.status, r.body)
	}
	if r := do(t, b, "GET", url, "", nil, nil); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("GET via link: HTTP %d", r.status)
	}
	if r := do(t, b, "GET", url, "", nil, map[string]string{"Range": "bytes=5-9"}); r.status != 206 || !bytes.Equal(r.body, data[5:10]) {
		t.Fatalf("range via link: HTTP %d", r.status)
	}
	tampered := []string{
		strings.Replace(url, "sig=", "sig=A", 1),
		strings.Replace(url, "expires=", "expires=9", 1),
		strings.Replace(url, m.ID, uploadOK(t, b, "alice", "other", []byte("x")).ID, 1),
	}
	for _, u := range tampered {
		if r := do(t, b, "GET", u, "", nil, nil); r.status != 403 {
			t.Errorf("GET %s: HTTP %d, want 403", u, r.status)
		}
	}
	// The signing key derives from the master key, not from the process:
	// a restarted node (or any other node) honours the link.
	b.RestartNewPorts(t)
	if r := do(t, b, "GET", url, "", nil, nil); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("GET via link after a restart: HTTP %d %s", r.status, r.body)
	}
	if r, _ := link("bob", "10m"); r.status != 403 {
		t.Errorf("bob, who may not read it, got a link: HTTP %d", r.status)
	}
	if r, _ := link("alice", "48h"); r.status != 400 {
		t.Errorf("ttl 48h: HTTP %d, want 400", r.status)
	}
	_, short := link("alice", "1s")
	time.Sleep(2100 * time.Millisecond)
	if r := do(t, b, "GET", short, "", nil, nil); r.status != 403 || !strings.Contains(r.err(t).Message, "expired") {
		t.Errorf("expired link: HTTP %d %s", r.status, r.body)
	}
}

// TestMediaDailyQuota: past the daily upload quota the API answers 429 with
// a rate_limited error that says why.
func TestMediaDailyQuota(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.Media.MaxBytes, c.Media.DailyBytes = 1000, 1500
	}))
	users(t, b, "alice", "bob")
	uploadOK(t, b, "alice", "one.bin", bytes.Repeat([]byte("1"), 1000))
	r := do(t, b, "POST", "/v1/media?name=two.bin", "alice", bytes.NewReader(bytes.Repeat([]byte("2"), 501)), nil)
	if r.status != http.StatusTooManyRequests || !bytes.Contains(r.body, []byte(`"rate_limited"`)) || !bytes.Contains(r.body, []byte("today")) {
		t.Fatalf("upload past the quota: HTTP %d %s, want 429 rate_limited", r.status, r.body)
	}
	uploadOK(t, b, "alice", "three.bin", bytes.Repeat([]byte("3"), 500))
	uploadOK(t, b, "bob", "four.bin", bytes.Repeat([]byte("4"), 1000))
}
