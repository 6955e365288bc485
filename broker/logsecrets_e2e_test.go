package broker_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// logSink is a log sink safe for concurrent writers.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Passwords, tokens and message bodies never reach the logs, even at debug
// level and on error paths (refused logins, invalid and rate-limited
// commands, HTTP requests with credentials).
func TestNoSecretsInLogs(t *testing.T) {
	const (
		rightPassword = "Right-Pa55word-7f3a"
		wrongPassword = "Wrong-Pa55word-c91e"
		body          = "TOP-SECRET-BODY-5d2b"
		badBody       = "INVALID-SECRET-BODY-0e4c"
		bearer        = "Bearer-Token-Secret-81aa"
		queryToken    = "Query-Token-Secret-3b7d"
	)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			logs := &logSink{}
			cfg := broker.DefaultConfig()
			cfg.MQTTAddr, cfg.WSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.LogLevel, cfg.LogFormat = "debug", format
			cfg.Limits.MessageRate, cfg.Limits.MessageBurst = 0.01, 1
			ctx := context.Background()
			store, err := broker.OpenStore(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			cheap := auth.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
			for _, u := range []string{"alice", "bob"} {
				hash, err := auth.NewHasher(cheap, 1).Hash(ctx, rightPassword)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.CreateUser(ctx, storage.User{ID: u, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			b, err := broker.New(cfg, store, cfg.NewLogger(logs))
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			closeBroker := func() {
				if !closed {
					closed = true
					ctx, cancel := context.WithTimeout(context.Background(), waitFor)
					defer cancel()
					_ = b.Close(ctx)
				}
			}
			t.Cleanup(closeBroker)
			tb := &brokertest.Broker{MQTTAddr: b.MQTTAddr(), HTTPAddr: b.HTTPAddr()}

			if _, _, err := connectMQTT5(t, tb.MQTTAddr, chatConnect5("alice", "phone", wrongPassword)); err == nil {
				t.Fatal("wrong password accepted")
			}
			alice := dialMQTT5(t, tb, "alice", "phone", rightPassword)
			bob := dialV3(t, tb, "bob", "phone", rightPassword, v3Options{})
			if code := alice.command(protocol.OpSend, `{"v":1,"id":"s1","to":"bob","cmid":"s1","body":{"type":"text","text":"`+body+`"}}`, nil); code != 0 {
				t.Fatalf("send: 0x%02x", code)
			}
			if m := bob.next(protocol.EvMessage).Msg; bodyText(t, *m) != body {
				t.Fatalf("bob got %+v", m)
			}
			// Over the message rate: refused, on mochi's error path.
			if code := alice.command(protocol.OpSend, `{"v":1,"id":"s2","to":"bob","cmid":"s2","body":{"type":"text","text":"`+body+`"}}`, nil); code != packets96 {
				t.Fatalf("second send: 0x%02x, want 0x96", code)
			}
			// Invalid: history takes no body (not a send: the rate allows it).
			if code := alice.command(protocol.OpHistory, `{"v":1,"id":"s3","conv":"x","body":{"type":"text","text":"`+badBody+`"}}`, nil); code != 0x99 {
				t.Fatalf("invalid history: 0x%02x, want 0x99", code)
			}
			// A 3.1.1 publish with a body that mochi refuses.
			bob.publish(protocol.CommandTopic("alice", protocol.OpSend), []byte(body), 300*time.Millisecond)
			_ = alice.c.Disconnect(&paho.Disconnect{})

			req, _ := http.NewRequest(http.MethodGet, "http://"+tb.HTTPAddr+"/healthz?token="+queryToken, nil)
			req.Header.Set("Authorization", "Bearer "+bearer)
			req.Header.Set("X-Request-Id", "rid-test-1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			req, _ = http.NewRequest(http.MethodGet, "http://"+tb.HTTPAddr+"/nope?token="+queryToken, nil)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			closeBroker()

			out := logs.String()
			for _, secret := range []string{rightPassword, wrongPassword, body, badBody, bearer, queryToken} {
				if strings.Contains(out, secret) {
					t.Errorf("%q appears in the log", secret)
				}
			}
			// The log did record these events, so the absence means something.
			for _, want := range []string{"connect refused", "rid-test-1", "/nope", "limit"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", out)
			}
		})
	}
}

// Every HTTP response carries a request id: the client's when valid, else a
// fresh one.
func TestHTTPRequestID(t *testing.T) {
	b := brokertest.Start(t)
	client := &http.Client{Timeout: waitFor}
	get := func(id string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.HTTPAddr+"/healthz", nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	if got := get("abc-123"); got != "abc-123" {
		t.Errorf("client id: got %q", got)
	}
	a, c := get(""), get("")
	if len(a) != 24 || a == c {
		t.Errorf("generated ids %q, %q: want distinct 24-character ids", a, c)
	}
	for _, bad := range []string{strings.Repeat("x", 200), "has space", "tab\there"} {
		if got := get(bad); got == bad || len(got) != 24 {
			t.Errorf("invalid id %q answered with %q", bad, got)
		}
	}
}
