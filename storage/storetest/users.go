package storetest

import (
	"fmt"
	"testing"
	"time"

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
		before, err := s.GetUser(ctx, "alice")
		must(t, "GetUser", err)
		must(t, "SetPassword", s.SetPassword(ctx, "alice", "new-hash"))
		want := alice
		want.PasswordHash = "new-hash"
		checkUser(t, want)
		// Every change raises the generation, so that access tokens issued
		// before it are refused.
		must(t, "SetPassword", s.SetPassword(ctx, "alice", "new-hash"))
		after, err := s.GetUser(ctx, "alice")
		must(t, "GetUser", err)
		if after.TokenGen != before.TokenGen+2 {
			t.Errorf("token generation %d after two password changes from %d, want %d", after.TokenGen, before.TokenGen, before.TokenGen+2)
		}
		users, err := s.ListUsers(ctx, "", 10)
		must(t, "ListUsers", err)
		for _, u := range users {
			if u.ID == "alice" && u.TokenGen != after.TokenGen {
				t.Errorf("ListUsers: alice's token generation %d, GetUser says %d", u.TokenGen, after.TokenGen)
			}
		}
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

func testSettings(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob") // zero Settings
	quiet := storage.Settings{Presence: storage.VisibleNobody, ReadReceipts: false}
	must(t, "CreateUser", s.CreateUser(ctx, storage.User{ID: "carol", PasswordHash: "hash-carol", CreatedAt: at(0), Settings: quiet}))

	checkSettings := func(t *testing.T, id string, want storage.Settings) {
		t.Helper()
		u, err := s.GetUser(ctx, id)
		must(t, "GetUser", err)
		if u.Settings != want {
			t.Errorf("GetUser(%s).Settings = %+v, want %+v", id, u.Settings, want)
		}
		if u.PasswordHash != "hash-"+id {
			t.Errorf("GetUser(%s).PasswordHash = %q: settings touched the password", id, u.PasswordHash)
		}
	}

	t.Run("zero settings become the defaults", func(t *testing.T) {
		checkSettings(t, "alice", storage.DefaultSettings())
	})
	t.Run("given settings are kept", func(t *testing.T) { checkSettings(t, "carol", quiet) })

	for _, st := range []storage.Settings{
		{Presence: storage.VisibleEveryone, ReadReceipts: true},
		{Presence: storage.VisibleEveryone, ReadReceipts: false},
		{Presence: storage.VisibleNobody, ReadReceipts: true},
		{Presence: storage.VisibleContacts, ReadReceipts: false},
		{Presence: storage.VisibleContacts, ReadReceipts: true},
	} {
		t.Run(fmt.Sprintf("set %s receipts %v", st.Presence, st.ReadReceipts), func(t *testing.T) {
			must(t, "SetSettings", s.SetSettings(ctx, "alice", st))
			checkSettings(t, "alice", st)
			checkSettings(t, "bob", storage.DefaultSettings())
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		checkErr(t, "SetSettings", s.SetSettings(ctx, "ghost", quiet), storage.ErrNotFound)
		_, err := s.GetUser(ctx, "ghost")
		checkErr(t, "GetUser after SetSettings", err, storage.ErrNotFound)
	})

	t.Run("unknown visibility rejected", func(t *testing.T) {
		err := s.SetSettings(ctx, "carol", storage.Settings{Presence: "friends", ReadReceipts: true})
		if err == nil {
			t.Error("SetSettings accepted presence \"friends\"")
		}
		checkSettings(t, "carol", quiet)
	})
}

func testLastSeen(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")

	checkLastSeen := func(t *testing.T, id string, want time.Time) {
		t.Helper()
		u, err := s.GetUser(ctx, id)
		must(t, "GetUser", err)
		if want.IsZero() {
			if !u.LastSeen.IsZero() {
				t.Errorf("GetUser(%s).LastSeen = %v, want zero (never seen)", id, u.LastSeen)
			}
			return
		}
		if !ms(u.LastSeen).Equal(ms(want)) {
			t.Errorf("GetUser(%s).LastSeen = %v, want %v", id, u.LastSeen, ms(want))
		}
	}

	t.Run("never seen", func(t *testing.T) { checkLastSeen(t, "alice", time.Time{}) })

	// Each step runs in order; at() carries a sub-millisecond part, and
	// neighbouring steps differ by 1ms, so a store keeping whole seconds
	// fails.
	steps := []struct {
		name string
		set  time.Time
		want time.Time
	}{
		{"first", at(1000), at(1000)},
		{"later", at(1001), at(1001)},
		{"much later", at(86_400_000), at(86_400_000)},
		{"earlier is ignored", at(1002), at(86_400_000)},
		{"one millisecond later", at(86_400_001), at(86_400_001)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			must(t, "SetLastSeen", s.SetLastSeen(ctx, "alice", st.set))
			checkLastSeen(t, "alice", st.want)
			checkLastSeen(t, "bob", time.Time{})
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		checkErr(t, "SetLastSeen", s.SetLastSeen(ctx, "ghost", at(5)), storage.ErrNotFound)
	})
}

func testContacts(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave", "erin", "frank")
	direct(t, s, "alice", "bob", "ab", at(0))
	direct(t, s, "carol", "alice", "ac", at(0))
	direct(t, s, "dave", "bob", "bd", at(0))
	direct(t, s, "dave", "erin", "de", at(0))
	// A user's contacts are the partners of the direct conversations the
	// user engaged in (wrote or read), not of every one someone opened.
	appendOK(t, s, text("ab", "alice", "1", at(1)), text("ac", "carol", "1", at(1)), text("bd", "dave", "1", at(1)))
	if _, _, err := s.MarkRead(ctx, "bob", "bd", 1); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	// Group co-members are not contacts, even in a group of two.
	group(t, s, "g", "alice", []string{"erin", "frank"}, at(0))
	group(t, s, "pair", "erin", []string{"frank"}, at(0))

	tests := []struct {
		user string
		want []string
	}{
		{"alice", []string{"bob"}},   // she wrote in ab; ac she never opened
		{"bob", []string{"dave"}},    // he read bd; ab he never opened
		{"carol", []string{"alice"}}, // she wrote in ac
		{"dave", []string{"bob"}},    // he is the lower id of bd and the higher of de, silent in de
		{"erin", nil},
		{"frank", nil},
		{"ghost", nil},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			got, err := s.Contacts(ctx, tc.user)
			must(t, "Contacts", err)
			if len(got) != 0 || len(tc.want) != 0 {
				checkDeepEqual(t, "Contacts("+tc.user+")", got, tc.want)
			}
		})
	}
}

func testSharesConversation(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave", "erin", "frank")
	group(t, s, "g", "alice", []string{"bob", "carol"}, at(0))
	direct(t, s, "alice", "dave", "ad", at(0))
	group(t, s, "k", "frank", []string{"bob", "dave"}, at(0))
	for _, u := range []string{"bob", "dave"} {
		_, err := s.RemoveMember(ctx, "k", u, note("k", "frank", "remove-"+u, at(1)))
		must(t, "RemoveMember", err)
	}
	_, err := s.RemoveMember(ctx, "g", "carol", note("g", "alice", "remove-carol", at(2)))
	must(t, "RemoveMember", err)
	// b must have engaged (read or written) in the shared conversation:
	// alice created g (her note counts) and wrote in ad; bob read g; dave
	// has done nothing in ad.
	appendOK(t, s, text("ad", "alice", "1", at(3)))
	if _, _, err := s.MarkRead(ctx, "bob", "g", 1); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}

	tests := []struct {
		a, b string
		want bool
	}{
		{"alice", "bob", true}, // group, bob read
		{"bob", "alice", true},
		{"alice", "dave", false},  // direct, but dave never engaged
		{"dave", "alice", true},   // alice wrote
		{"bob", "dave", false},    // both only past members of k
		{"alice", "carol", false}, // carol was removed from g
		{"carol", "bob", false},
		{"frank", "bob", false},  // bob was removed from k
		{"alice", "erin", false}, // erin is in nothing
		{"alice", "ghost", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+"/"+tc.b, func(t *testing.T) {
			got, err := s.SharesConversation(ctx, tc.a, tc.b)
			must(t, "SharesConversation", err)
			if got != tc.want {
				t.Errorf("SharesConversation(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}

	t.Run("re-added member shares again once engaged", func(t *testing.T) {
		_, err := s.AddMember(ctx, "g", "carol", storage.RoleMember, maxMembers, note("g", "alice", "readd-carol", at(4)))
		must(t, "AddMember", err)
		appendOK(t, s, text("g", "carol", "back", at(5)))
		got, err := s.SharesConversation(ctx, "bob", "carol")
		must(t, "SharesConversation", err)
		if !got {
			t.Error("SharesConversation(bob, carol) = false after carol was re-added")
		}
	})
}
