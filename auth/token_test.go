package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testOptions(now *time.Time) TokenOptions {
	return TokenOptions{Issuer: "msgr", Audience: "msgr", TTL: 15 * time.Minute, Leeway: 30 * time.Second,
		Now: func() time.Time { return *now }}
}

func newEd(t *testing.T, opts TokenOptions) (*Tokens, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewEd25519Tokens(priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok, priv
}

func TestTokenRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	ed, _ := newEd(t, testOptions(&now))
	hs, err := NewHS256Tokens([]byte(strings.Repeat("k", 32)), testOptions(&now))
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []*Tokens{ed, hs} {
		t.Run(tk.Alg(), func(t *testing.T) {
			s, c, err := tk.Issue("alice", "phone", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !LooksLikeJWT(s) {
				t.Errorf("LooksLikeJWT(%q) = false", s)
			}
			got, err := tk.Verify(s)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "alice" || got.Device != "phone" || got.ID == "" || got.ID != c.ID ||
				!got.ExpiresAt.Time.Equal(now.Add(15*time.Minute)) || got.Issuer != "msgr" {
				t.Errorf("claims = %+v", got)
			}
		})
	}
}

func TestTokenRefused(t *testing.T) {
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	opts := testOptions(&now)
	tk, priv := newEd(t, opts)
	other, _ := newEd(t, opts)
	good, _, err := tk.Issue("alice", "phone", 0)
	if err != nil {
		t.Fatal(err)
	}
	claims := func() Claims {
		c, err := tk.Verify(good)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherKey, _, _ := other.Issue("alice", "phone", 0)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"mallory"`, 1))) + "." + parts[2]
	wrongAud := claims()
	wrongAud.Audience = jwt.ClaimStrings{"someone-else"}
	wrongIss := claims()
	wrongIss.Issuer = "evil"
	noExp := claims()
	noExp.ExpiresAt = nil
	noDevice := claims()
	noDevice.Device = ""
	pub := priv.Public().(ed25519.PublicKey)

	cases := map[string]string{
		"wrong key":       otherKey,
		"alg none":        sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims()),
		"alg confusion":   sign(jwt.SigningMethodHS256, []byte(pub), claims()),
		"tampered":        tampered,
		"wrong audience":  sign(jwt.SigningMethodEdDSA, priv, wrongAud),
		"wrong issuer":    sign(jwt.SigningMethodEdDSA, priv, wrongIss),
		"no expiry":       sign(jwt.SigningMethodEdDSA, priv, noExp),
		"no device":       sign(jwt.SigningMethodEdDSA, priv, noDevice),
		"garbage":         "eyJ.not.atoken",
		"empty":           "",
		"signature strip": parts[0] + "." + parts[1] + ".",
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := tk.Verify(s); !errors.Is(err, ErrBadToken) {
				t.Errorf("Verify = %v, want ErrBadToken", err)
			}
		})
	}

	t.Run("expiry with leeway", func(t *testing.T) {
		saved := now
		defer func() { now = saved }()
		now = saved.Add(15*time.Minute + 20*time.Second) // inside the 30s leeway
		if _, err := tk.Verify(good); err != nil {
			t.Errorf("within leeway: %v", err)
		}
		now = saved.Add(15*time.Minute + 31*time.Second)
		if _, err := tk.Verify(good); !errors.Is(err, ErrBadToken) {
			t.Errorf("expired: %v, want ErrBadToken", err)
		}
	})
	t.Run("issued in the future", func(t *testing.T) {
		saved := now
		defer func() { now = saved }()
		now = saved.Add(-time.Minute)
		if _, err := tk.Verify(good); !errors.Is(err, ErrBadToken) {
			t.Errorf("from the future: %v, want ErrBadToken", err)
		}
	})
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	secretFile := write("secret", []byte(strings.Repeat("s", 40)+"\n"))
	shortFile := write("short", []byte("tooshort\n"))
	opts := TokenOptions{Issuer: "i", Audience: "a", TTL: time.Minute}
	if tk, err := LoadTokens(keyFile, "", opts); err != nil || tk.Alg() != "EdDSA" {
		t.Errorf("key file: %v", err)
	}
	if tk, err := LoadTokens("", secretFile, opts); err != nil || tk.Alg() != "HS256" {
		t.Errorf("secret file: %v", err)
	}
	for name, files := range map[string][2]string{
		"both":           {keyFile, secretFile},
		"neither":        {"", ""},
		"short secret":   {"", shortFile},
		"secret as key":  {secretFile, ""},
		"missing key":    {filepath.Join(dir, "nope"), ""},
		"missing secret": {"", filepath.Join(dir, "nope")},
	} {
		if _, err := LoadTokens(files[0], files[1], opts); err == nil {
			t.Errorf("%s: LoadTokens accepted it", name)
		}
	}
}

func TestRefreshToken(t *testing.T) {
	tok, hash, err := NewRefreshToken("alice", "phone.1")
	if err != nil {
		t.Fatal(err)
	}
	u, d, h, err := ParseRefreshToken(tok)
	if err != nil || u != "alice" || d != "phone.1" || h != hash {
		t.Fatalf("ParseRefreshToken = %q %q %q %v", u, d, h, err)
	}
	tok2, hash2, _ := NewRefreshToken("alice", "phone.1")
	if tok2 == tok || hash2 == hash {
		t.Error("two refresh tokens are equal")
	}
	for _, bad := range []string{"", "msgr_rt.", "msgr_rt.YWxpY2U.AAAA", tok[:len(tok)-2], "x" + tok, strings.Replace(tok, "msgr_rt.", "msgr_rt.!", 1)} {
		if _, _, _, err := ParseRefreshToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseRefreshToken(%q) = %v, want ErrBadToken", bad, err)
		}
	}
}
