package broker

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The HTTP handlers (health, metrics, user and admin API) parse whatever a
// client sends: any request that net/http accepts gets an answer with a
// request id, never a panic, and never a 5xx while the store is up.
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /../../etc/passwd?token=x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + strings.Repeat("z", 300) + "\r\n\r\n",
		"DELETE /readyz/ HTTP/1.0\r\n\r\n",
		"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 53\r\n\r\n{\"user\":\"alice\",\"password\":\"pw\",\"device\":\"phone\"}",
		"GET /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n",
		"GET /admin/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-admin-token-0123456789abcdef\r\n\r\n",
		"POST /admin/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-admin-token-0123456789abcdef\r\nContent-Length: 32\r\n\r\n{\"user\":\"bob\",\"password\":\"x\"}",
	} {
		f.Add([]byte(s))
	}
	// A whole broker, user and admin API on, so that every route is fuzzed.
	dir := f.TempDir()
	secret, admin := filepath.Join(dir, "token.secret"), filepath.Join(dir, "admin")
	if err := os.WriteFile(secret, []byte("fuzz-secret-0123456789abcdef0123456789"), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(admin, []byte("fuzz-admin-token-0123456789abcdef"), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.MQTTAddr, cfg.WSAddr, cfg.HTTPAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.Security.TokenSecretFile, cfg.Security.AdminTokenFile = secret, admin
	store, err := OpenStore(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	b, err := New(cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close(context.Background()) })
	h := b.http.Handler
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if id := rec.Header().Get(requestIDHeader); !validRequestID(id) {
			t.Fatalf("response request id %q", id)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL, rec.Code, rec.Body)
		}
		_, _ = io.Copy(io.Discard, rec.Body)
	})
}

// Config parsing (flags and MSGR_* variables) never panics, and whatever
// it accepts validates.
func FuzzConfigParse(f *testing.F) {
	for _, s := range []string{
		"-mqtt-addr\x00:1883", "-message-rate\x000.5\x00-message-burst\x003", "-login-backoff\x001ms\x00-login-backoff-max\x001h",
		"-tls-cert\x00c.pem\x00-tls-key\x00k.pem\x00-tls-client-auth\x00require", "-topic-grants\x00a/#=rw,b=r",
		"-max-packet-bytes\x00-1", "-conn-rate\x00NaN", "-conn-rate\x00+Inf", "-metrics=false", "-log-level\x00trace",
	} {
		f.Add(s, "MSGR_MESSAGE_RATE=1e400")
	}
	f.Fuzz(func(t *testing.T, args, env string) {
		vars := map[string]string{}
		for _, kv := range strings.Split(env, "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
		c := DefaultConfig()
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		err := c.Parse(fs, strings.Split(args, "\x00"), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if c.Limits.MessageRate < 0 || c.Limits.ConnRate < 0 || c.Limits.ConnRate != c.Limits.ConnRate {
			t.Fatalf("accepted rates %+v", c.Limits)
		}
	})
}
