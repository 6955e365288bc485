package auth

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	msgrauth "github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// hookFixture is the hook on a real SQLite store with a recorded
// Disconnect; mochi clients are constructed, not connected.
type hookFixture struct {
	hook         *Hook
	store        storage.Store
	tokens       *msgrauth.Tokens
	disconnected []string
}

func newFixture(t *testing.T) *hookFixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "msgr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hasher := msgrauth.NewHasher(msgrauth.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 1)
	hash, err := hasher.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := store.CreateUser(ctx, storage.User{ID: u, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	tokens, err := msgrauth.NewHS256Tokens([]byte("0123456789abcdef0123456789abcdef"), msgrauth.TokenOptions{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := &hookFixture{store: store, tokens: tokens}
	f.hook = New(Options{
		Auth:        &msgrauth.Authenticator{Accounts: store, Passwords: hasher, Tokens: tokens, Bans: msgrauth.NewBans(store, time.Second, nil)},
		Devices:     store,
		SendConnack: func(*mqtt.Client, packets.Code, bool, *packets.Properties) error { return nil },
		Disconnect: func(cl *mqtt.Client, _ packets.Code) error {
			f.disconnected = append(f.disconnected, cl.ID)
			return nil
		},
	})
	return f
}

func client(id, user string) *mqtt.Client {
	cl := &mqtt.Client{ID: id, Net: mqtt.ClientConnection{Remote: "192.0.2.10:5000"}}
	cl.Properties.Username = []byte(user)
	return cl
}

func connect(user, password string) packets.Packet {
	return packets.Packet{Connect: packets.ConnectParams{Username: []byte(user), Password: []byte(password), PasswordFlag: true, UsernameFlag: true}}
}

func TestConnectAuthenticate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, _, err := f.tokens.Issue("alice", "phone", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Token connects need the device to exist (login creates it).
	if err := f.store.TouchDevice(ctx, "alice", "phone", time.Now()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, user, secret string
		want                   bool
	}{
		{"password", "alice/laptop", "alice", "pw", true},
		{"wrong password", "alice/laptop", "alice", "nope", false},
		{"token", "alice/phone", "alice", tok, true},
		{"token of another device", "alice/laptop", "alice", tok, false},
		{"token as another user", "bob/phone", "bob", tok, false},
		{"unknown user", "carol/phone", "carol", "pw", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.hook.OnConnectAuthenticate(client(tt.id, tt.user), connect(tt.user, tt.secret)); got != tt.want {
				t.Errorf("OnConnectAuthenticate = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := f.store.GetDevice(ctx, "alice", "laptop"); err != nil {
		t.Errorf("password connect did not record the device: %v", err)
	}
	if err := f.store.AddBan(ctx, storage.Ban{Kind: storage.BanIP, Value: "192.0.2.0/24", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f.hook.opts.Auth.Bans.Invalidate()
	if f.hook.OnConnectAuthenticate(client("alice/laptop", "alice"), connect("alice", "pw")) {
		t.Error("banned address accepted")
	}
}

// TestRecheckAfterRegistration: a client whose device was revoked or whose
// account was disabled while it connected is disconnected once registered.
func TestRecheckAfterRegistration(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, d := range []string{"phone", "laptop"} {
		if err := f.store.TouchDevice(ctx, "alice", d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.TouchDevice(ctx, "bob", "phone", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeDevice(ctx, "alice", "phone", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetDisabled(ctx, "bob", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*mqtt.Client{client("alice/phone", "alice"), client("alice/laptop", "alice"), client("bob/phone", "bob"), client("thermo", "")} {
		f.hook.OnSessionEstablished(cl, packets.Packet{})
	}
	if len(f.disconnected) != 2 || f.disconnected[0] != "alice/phone" || f.disconnected[1] != "bob/phone" {
		t.Errorf("disconnected %v, want [alice/phone bob/phone]", f.disconnected)
	}
}
