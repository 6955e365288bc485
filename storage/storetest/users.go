package storetest

import (
	"testing"

	"github.com/msgrhq/msgr/storage"
)

func testUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	alice := storage.User{ID: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g", CreatedAt: at(7)}
	must(t, "CreateUser", s.CreateUser(ctx, alice))

	checkUser := func(t *testing.T, want storage.User) {
		t.Helper()
		got, err := s.GetUser(ctx, want.ID)
		must(t, "GetUser", err)
		if got.ID != want.ID || got.PasswordHash != want.PasswordHash || !ms(got.CreatedAt).Equal(ms(want.CreatedAt)) {
			t.Errorf("GetUser(%s) = %+v, want %+v", want.ID, got, want)
		}
	}

	t.Run("get", func(t *testing.T) { checkUser(t, alice) })

	t.Run("duplicate", func(t *testing.T) {
		err := s.CreateUser(ctx, storage.User{ID: "alice", PasswordHash: "other", CreatedAt: at(8)})
		checkErr(t, "CreateUser again", err, storage.ErrExists)
		checkUser(t, alice)
	})

	t.Run("set password", func(t *testing.T) {
		must(t, "SetPassword", s.SetPassword(ctx, "alice", "new-hash"))
		want := alice
		want.PasswordHash = "new-hash"
		checkUser(t, want)
	})

	errs := []struct {
		name string
		call func() error
		want error
	}{
		{"get unknown", func() error { _, err := s.GetUser(ctx, "bob"); return err }, storage.ErrNotFound},
		{"set password unknown", func() error { return s.SetPassword(ctx, "bob", "x") }, storage.ErrNotFound},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, tc.name, tc.call(), tc.want) })
	}

	t.Run("set password did not create", func(t *testing.T) {
		_, err := s.GetUser(ctx, "bob")
		checkErr(t, "GetUser", err, storage.ErrNotFound)
	})
}

func testDevices(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")

	list := func(t *testing.T, user string, want []storage.Device) {
		t.Helper()
		got, err := s.ListDevices(ctx, user)
		must(t, "ListDevices", err)
		if len(got) != len(want) {
			t.Fatalf("ListDevices(%s) = %+v, want %+v", user, got, want)
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.UserID != w.UserID || g.DeviceID != w.DeviceID ||
				!ms(g.CreatedAt).Equal(ms(w.CreatedAt)) || !ms(g.LastSeen).Equal(ms(w.LastSeen)) {
				t.Errorf("ListDevices(%s)[%d] = %+v, want %+v", user, i, g, w)
			}
		}
	}

	t.Run("none", func(t *testing.T) { list(t, "alice", nil) })

	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "phone", at(100)))
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "laptop", at(200)))
	must(t, "TouchDevice", s.TouchDevice(ctx, "bob", "phone", at(300)))

	t.Run("created, ordered by id", func(t *testing.T) {
		list(t, "alice", []storage.Device{
			{UserID: "alice", DeviceID: "laptop", CreatedAt: at(200), LastSeen: at(200)},
			{UserID: "alice", DeviceID: "phone", CreatedAt: at(100), LastSeen: at(100)},
		})
	})

	t.Run("touch updates last seen only", func(t *testing.T) {
		must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "phone", at(5000)))
		list(t, "alice", []storage.Device{
			{UserID: "alice", DeviceID: "laptop", CreatedAt: at(200), LastSeen: at(200)},
			{UserID: "alice", DeviceID: "phone", CreatedAt: at(100), LastSeen: at(5000)},
		})
	})

	t.Run("per user", func(t *testing.T) {
		list(t, "bob", []storage.Device{{UserID: "bob", DeviceID: "phone", CreatedAt: at(300), LastSeen: at(300)}})
	})
}
