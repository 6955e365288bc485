package auth

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzParseRefreshToken: any input either parses into a user, device and
// hash that a fresh token for them would round-trip, or fails with
// ErrBadToken; it never panics.
func FuzzParseRefreshToken(f *testing.F) {
	tok, _, _ := NewRefreshToken("alice", "phone")
	for _, s := range []string{tok, "", "msgr_rt.", "msgr_rt..", "msgr_rt.YWxpY2UvcGhvbmU.", "msgr_rt.Lw." + strings.Repeat("A", 43), "eyJ.a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user, device, hash, err := ParseRefreshToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		if user == "" || device == "" || len(hash) != 64 {
			t.Fatalf("parsed %q into %q %q %q", s, user, device, hash)
		}
	})
}

// FuzzParseIPBan: a parsed ban is canonical (parsing its string gives it
// back) and contains the address it was made from.
func FuzzParseIPBan(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "10.1.2.3/8", "::ffff:192.0.2.1", "2001:db8::/32", "", "1.2.3.4/33", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseIPBan(s)
		if err != nil {
			return
		}
		again, err := ParseIPBan(p.String())
		if err != nil || again != p {
			t.Fatalf("%q -> %v, reparsed %v, %v", s, p, again, err)
		}
		if p != p.Masked() {
			t.Fatalf("%q -> %v is not masked", s, p)
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && !p.Contains(a.Unmap()) {
			t.Fatalf("%q -> %v does not contain the address", s, p)
		}
	})
}

// FuzzVerify: no input other than a token the key signed is accepted, and
// nothing panics.
func FuzzVerify(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	tk, err := NewEd25519Tokens(seed, TokenOptions{Issuer: "msgr", Audience: "msgr", TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	good, _, _ := tk.Issue("alice", "phone", 0)
	for _, s := range []string{good, good[:len(good)-1], "", "eyJhbGciOiJub25lIn0.e30.", "a.b.c", strings.Replace(good, ".", "..", 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := tk.Verify(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		if s != good && (c.Subject != "alice" || c.Device != "phone") {
			t.Fatalf("accepted a token the key never signed: %q -> %+v", s, c)
		}
	})
}
