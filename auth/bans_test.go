package auth

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage"
)

type fakeBans struct {
	bans  []storage.Ban
	err   error
	calls int
}

func (f *fakeBans) ListBans(context.Context) ([]storage.Ban, error) {
	f.calls++
	return f.bans, f.err
}

func TestBans(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	src := &fakeBans{bans: []storage.Ban{
		{Kind: storage.BanUser, Value: "mallory", CreatedAt: now},
		{Kind: storage.BanUser, Value: "eve", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{Kind: storage.BanIP, Value: "10.0.0.0/8", CreatedAt: now},
		{Kind: storage.BanIP, Value: "2001:db8::/32", CreatedAt: now},
	}}
	clock := now
	b := NewBans(src, 5*time.Second, func() time.Time { return clock })
	ctx := context.Background()
	userCases := map[string]bool{"mallory": true, "eve": true, "alice": false}
	for user, want := range userCases {
		if _, got, err := b.User(ctx, user); err != nil || got != want {
			t.Errorf("User(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	ipCases := map[string]bool{
		"10.1.2.3": true, "11.0.0.1": false, "::ffff:10.9.9.9": true, "2001:db8:1::5": true, "2001:db9::1": false,
	}
	for ip, want := range ipCases {
		if _, got, err := b.IP(ctx, netip.MustParseAddr(ip)); err != nil || got != want {
			t.Errorf("IP(%s) = %v, %v; want %v", ip, got, err, want)
		}
	}
	if _, got, _ := b.IP(ctx, netip.Addr{}); got {
		t.Error("an unknown address is banned")
	}
	if src.calls != 1 {
		t.Errorf("%d loads within MaxAge, want 1", src.calls)
	}
	// Expiry, reload after MaxAge, and the old copy kept when the store fails.
	clock = now.Add(2 * time.Hour)
	src.err = errors.New("store down")
	if _, got, err := b.User(ctx, "eve"); err != nil || got {
		t.Errorf("expired ban: %v, %v", got, err)
	}
	if _, got, err := b.User(ctx, "mallory"); err != nil || !got {
		t.Errorf("stale copy during an outage: %v, %v", got, err)
	}
	if src.calls != 2 {
		t.Errorf("%d loads, want 2 (one failed reload, then the old copy for MaxAge)", src.calls)
	}
	src.err = nil
	src.bans = nil
	b.Invalidate()
	if _, got, _ := b.User(ctx, "mallory"); got {
		t.Error("lifted ban still applies after Invalidate")
	}
	// A checker that never loaded reports the failure.
	fresh := NewBans(&fakeBans{err: errors.New("down")}, time.Second, nil)
	if _, _, err := fresh.User(ctx, "x"); err == nil {
		t.Error("no error without any ban list")
	}
}

func TestParseIPBan(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7": "192.0.2.7/32", "10.1.2.3/8": "10.0.0.0/8", "::ffff:192.0.2.1": "192.0.2.1/32",
		"2001:db8::1": "2001:db8::1/128", " 2001:db8::/32 ": "2001:db8::/32",
	} {
		p, err := ParseIPBan(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseIPBan(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "example.com", "10.0.0.0/33", "1.2.3", "fe80::1%eth0/64", "fe80::1%eth0"} {
		if _, err := ParseIPBan(bad); err == nil {
			t.Errorf("ParseIPBan(%q) accepted", bad)
		}
	}
}

func TestRemoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1883": "192.0.2.1", "[::ffff:10.0.0.1]:80": "10.0.0.1", "[fe80::1%eth0]:1883": "fe80::1",
		"[2001:db8::1]:443": "2001:db8::1", "10.0.0.2": "10.0.0.2",
	} {
		if got := RemoteAddr(in); got.String() != want {
			t.Errorf("RemoteAddr(%q) = %v, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "local", "pipe:1"} {
		if got := RemoteAddr(in); got.IsValid() {
			t.Errorf("RemoteAddr(%q) = %v, want invalid", in, got)
		}
	}
}
