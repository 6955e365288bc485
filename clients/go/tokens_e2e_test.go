package msgr_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

const adminToken = "sdk-test-admin-token-0123456789abcdef"

func startTokenBroker(t *testing.T, users ...string) *brokertest.Broker {
	t.Helper()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, adminFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "admin")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.Security.TokenKeyFile, c.Security.AdminTokenFile = keyFile, adminFile
	}))
	for _, u := range users {
		b.AddUser(t, u, password)
	}
	return b
}

func adminCall(t *testing.T, b *brokertest.Broker, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+b.HTTPAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenSession connects the SDK with access tokens only and checks that
// a reconnect asks the token source again (refreshing the token).
func TestTokenSession(t *testing.T) {
	b := startTokenBroker(t, "alice", "bob")
	ctx := testCtx(t)
	if _, err := msgr.Login(ctx, "http://"+b.HTTPAddr, "alice", "wrong", "phone"); !errors.Is(err, msgr.ErrLogin) {
		t.Fatalf("login with a wrong password: %v, want ErrLogin", err)
	}
	sess, err := msgr.Login(ctx, "http://"+b.HTTPAddr, "alice", password, "phone")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	alice, _ := dial(t, b, "alice", "phone", func(c *msgr.Config) {
		c.Password = ""
		c.TokenSource = func(ctx context.Context) (string, error) {
			calls.Add(1)
			return sess.Token(ctx)
		}
	})
	_, bobIn := dial(t, b, "bob", "phone")
	sent, err := alice.SendTo(ctx, "bob", "over a token")
	if err != nil {
		t.Fatal(err)
	}
	bobIn.wait(t, "first message", func([]protocol.Message) bool { return len(bobIn.texts(t, sent.Conv)) == 1 })

	first, _ := sess.Token(ctx)
	if err := sess.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if second, _ := sess.Token(ctx); second == first {
		t.Error("Refresh kept the access token")
	}

	// Every token now counts as expiring: the next connect refreshes.
	msgr.SetRefreshBefore(sess, 24*time.Hour)
	before := calls.Load()
	if code := adminCall(t, b, "DELETE", "/admin/v1/clients/alice/phone"); code != http.StatusNoContent {
		t.Fatalf("kick: %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := alice.Send(sctx, sent.Conv, "after reconnect")
		cancel()
		if err == nil && calls.Load() > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send after the kick (token source calls %d -> %d): %v", before, calls.Load(), err)
		}
	}
	bobIn.wait(t, "second message", func([]protocol.Message) bool { return len(bobIn.texts(t, sent.Conv)) == 2 })
}
