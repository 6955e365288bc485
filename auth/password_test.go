package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 2)
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected hash format %q", hash)
	}
	other, _ := h.Hash(ctx, "correct horse")
	if other == hash {
		t.Fatal("two hashes of the same password are equal: salt not random")
	}
	tests := []struct {
		name     string
		hash     string
		password string
		want     error
	}{
		{"right", hash, "correct horse", nil},
		{"wrong", hash, "battery staple", ErrMismatch},
		{"empty", hash, "", ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Verify(ctx, tt.hash, tt.password); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=x$AA$AA", "$argon2id$v=19$m=64,t=1,p=1$!!$AA"} {
		if err := h.Verify(ctx, bad, "x"); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want a format error", bad, err)
		}
	}
	if _, err := h.Hash(ctx, ""); err == nil {
		t.Error("empty password accepted")
	}
}
