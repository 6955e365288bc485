package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// BenchmarkAuthenticateSecret compares what one CONNECT costs the broker in
// credential checking: verifying an access token (EdDSA or HS256) against
// verifying a password with the default argon2id parameters.
func BenchmarkAuthenticateSecret(b *testing.B) {
	opts := TokenOptions{Issuer: "msgr", Audience: "msgr", TTL: 15 * time.Minute, Leeway: 30 * time.Second}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := NewEd25519Tokens(priv, opts)
	hs, _ := NewHS256Tokens([]byte(strings.Repeat("k", 32)), opts)
	for _, tk := range []*Tokens{ed, hs} {
		tok, _, err := tk.Issue("alice", "phone", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("token-"+tk.Alg(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tk.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	h := NewHasher(DefaultParams, 1)
	hash, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("password-argon2id", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := h.Verify(context.Background(), hash, "correct horse battery staple"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
