package chat

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// openStore opens a SQLite store in a temporary directory, closed when the
// test ends, holding the given users.
func openStore(t *testing.T, users ...string) *sqlite.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "msgr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, u := range users {
		if err := db.CreateUser(t.Context(), storage.User{ID: u, PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestOthersPositions(t *testing.T) {
	all := []storage.Receipt{
		{UserID: "alice", Delivered: 9, Read: 9},
		{UserID: "bob", Delivered: 7, Read: 5},
		{UserID: "carol", Delivered: 8, Read: 8},
	}
	tests := []struct {
		name          string
		user          string
		shares        map[string]bool
		wantDelivered int64
		wantRead      int64
	}{
		{"everyone shares", "alice", map[string]bool{"alice": true, "bob": true, "carol": true}, 7, 5},
		{"excludes the asker", "bob", map[string]bool{"alice": true, "bob": true, "carol": true}, 8, 8},
		{"hidden reads count as unread", "bob", map[string]bool{"alice": true, "bob": true}, 8, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := othersPositions(all, tt.user, tt.shares)
			if d != tt.wantDelivered || r != tt.wantRead {
				t.Fatalf("got (%d, %d), want (%d, %d)", d, r, tt.wantDelivered, tt.wantRead)
			}
		})
	}
}

func TestSuccessor(t *testing.T) {
	tests := []struct {
		name    string
		members []storage.Member
		want    string
	}{
		{"admin before older member", []storage.Member{
			{UserID: "m", Role: storage.RoleMember, FromSeq: 1},
			{UserID: "a", Role: storage.RoleAdmin, FromSeq: 5},
		}, "a"},
		{"longest-standing member", []storage.Member{
			{UserID: "late", Role: storage.RoleMember, FromSeq: 9},
			{UserID: "early", Role: storage.RoleMember, FromSeq: 2},
		}, "early"},
		{"tie by id", []storage.Member{
			{UserID: "y", Role: storage.RoleMember, FromSeq: 1},
			{UserID: "x", Role: storage.RoleMember, FromSeq: 1},
		}, "x"},
		{"nobody left", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := successor(tt.members)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("successor = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

func TestRateLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	r := newRateLimiter(2*time.Second, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		key     string
		want    bool
	}{
		{0, "a", true},
		{time.Second, "a", false},
		{0, "b", true},
		{time.Second, "a", true},
		{90 * time.Second, "b", true}, // swept and allowed again
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := r.allow(s.key); got != s.want {
			t.Fatalf("step %d: allow(%q) = %v, want %v", i, s.key, got, s.want)
		}
	}
}

func TestValidation(t *testing.T) {
	for _, tt := range []struct {
		cmid string
		ok   bool
	}{{"m1", true}, {"", false}, {"has space", false}, {string(make([]byte, 65)), false}, {"ünicode", false}} {
		if got := validCMID(tt.cmid); got != tt.ok {
			t.Errorf("validCMID(%q) = %v", tt.cmid, got)
		}
	}
	if !validConvID("01JD6ZK3M5N7P9QRSTVWXYZ012") || validConvID("../etc") || validConvID("") {
		t.Error("validConvID accepts or refuses the wrong ids")
	}
}
