package storetest

import (
	"testing"

	"github.com/msgrhq/msgr/storage"
)

// testSecurity covers the Security interface: revocation, refresh tokens,
// disabled and deleted users, admin listings and bans.
func testSecurity(t *testing.T, open func(t *testing.T) storage.Store) {
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) storage.Store)
	}{
		{"RevokeDevice", testRevokeDevice},
		{"RefreshTokens", testRefreshTokens},
		{"DisabledUsers", testDisabledUsers},
		{"DeleteUser", testDeleteUser},
		{"ListUsers", testListUsers},
		{"ListDeleteConversations", testListDeleteConversations},
		{"Bans", testBans},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func testRevokeDevice(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "phone", at(100)))
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "laptop", at(200)))

	d, err := s.GetDevice(ctx, "alice", "phone")
	must(t, "GetDevice", err)
	if d.UserID != "alice" || d.DeviceID != "phone" || !ms(d.CreatedAt).Equal(ms(at(100))) || !d.RevokedAt.IsZero() {
		t.Errorf("GetDevice = %+v, want alice/phone created at %v, not revoked", d, ms(at(100)))
	}

	must(t, "RevokeDevice", s.RevokeDevice(ctx, "alice", "phone", at(1000)))
	t.Run("revoked time", func(t *testing.T) {
		d, err := s.GetDevice(ctx, "alice", "phone")
		must(t, "GetDevice", err)
		if !ms(d.RevokedAt).Equal(ms(at(1000))) {
			t.Errorf("RevokedAt = %v, want %v", d.RevokedAt, ms(at(1000)))
		}
	})
	t.Run("revoking again keeps the first time", func(t *testing.T) {
		must(t, "RevokeDevice", s.RevokeDevice(ctx, "alice", "phone", at(2000)))
		d, err := s.GetDevice(ctx, "alice", "phone")
		must(t, "GetDevice", err)
		if !ms(d.RevokedAt).Equal(ms(at(1000))) {
			t.Errorf("RevokedAt = %v, want the first %v", d.RevokedAt, ms(at(1000)))
		}
	})
	t.Run("listed with its time, others untouched", func(t *testing.T) {
		got, err := s.ListDevices(ctx, "alice")
		must(t, "ListDevices", err)
		if len(got) != 2 || got[0].DeviceID != "laptop" || !got[0].RevokedAt.IsZero() ||
			got[1].DeviceID != "phone" || !ms(got[1].RevokedAt).Equal(ms(at(1000))) {
			t.Errorf("ListDevices = %+v, want laptop active and phone revoked at %v", got, ms(at(1000)))
		}
	})
	t.Run("unknown", func(t *testing.T) {
		checkErr(t, "RevokeDevice unknown device", s.RevokeDevice(ctx, "alice", "tablet", at(1)), storage.ErrNotFound)
		checkErr(t, "RevokeDevice other user's", s.RevokeDevice(ctx, "bob", "laptop", at(1)), storage.ErrNotFound)
		_, err := s.GetDevice(ctx, "bob", "phone")
		checkErr(t, "GetDevice unknown", err, storage.ErrNotFound)
	})
}

func testRefreshTokens(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice")
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "phone", at(0)))
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "laptop", at(0)))
	tok := func(h string, exp int64) storage.RefreshToken {
		return storage.RefreshToken{Hash: h, ExpiresAt: at(exp)}
	}

	checkErr(t, "SetRefreshToken unknown device", s.SetRefreshToken(ctx, "alice", "tablet", tok("h0", 1000)), storage.ErrNotFound)
	must(t, "SetRefreshToken", s.SetRefreshToken(ctx, "alice", "phone", tok("h1", 1000)))
	must(t, "SetRefreshToken laptop", s.SetRefreshToken(ctx, "alice", "laptop", tok("l1", 1000)))

	steps := []struct {
		name      string
		device    string
		old, next string
		now       int64
		want      error
	}{
		{"wrong token", "phone", "nope", "h2", 10, storage.ErrNotFound},
		{"empty token", "phone", "", "h2", 10, storage.ErrNotFound},
		{"other device's token", "phone", "l1", "h2", 10, storage.ErrNotFound},
		{"rotates", "phone", "h1", "h2", 10, nil},
		{"old token is spent", "phone", "h1", "h3", 20, storage.ErrNotFound},
		{"new token rotates", "phone", "h2", "h3", 20, nil},
		{"expired", "phone", "h3", "h4", 5000, storage.ErrNotFound},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			exp := int64(1000)
			if st.next == "h3" {
				exp = 2000
			}
			err := s.RotateRefreshToken(ctx, "alice", st.device, st.old, tok(st.next, exp), at(st.now))
			if st.want == nil {
				must(t, "RotateRefreshToken", err)
				return
			}
			checkErr(t, "RotateRefreshToken", err, st.want)
		})
	}
	t.Run("cleared with the user's others", func(t *testing.T) {
		createUsers(t, s, "bob")
		must(t, "TouchDevice", s.TouchDevice(ctx, "bob", "phone", at(0)))
		must(t, "SetRefreshToken bob", s.SetRefreshToken(ctx, "bob", "phone", tok("b1", 1000)))
		must(t, "SetRefreshToken", s.SetRefreshToken(ctx, "alice", "phone", tok("c1", 1000)))
		must(t, "ClearRefreshTokens", s.ClearRefreshTokens(ctx, "alice"))
		must(t, "ClearRefreshTokens unknown", s.ClearRefreshTokens(ctx, "ghost"))
		checkErr(t, "RotateRefreshToken cleared", s.RotateRefreshToken(ctx, "alice", "phone", "c1", tok("c2", 1000), at(40)), storage.ErrNotFound)
		checkErr(t, "RotateRefreshToken cleared laptop", s.RotateRefreshToken(ctx, "alice", "laptop", "l1", tok("l2", 1000), at(40)), storage.ErrNotFound)
		must(t, "RotateRefreshToken bob", s.RotateRefreshToken(ctx, "bob", "phone", "b1", tok("b2", 1000), at(40)))
		must(t, "SetRefreshToken after clear", s.SetRefreshToken(ctx, "alice", "laptop", tok("l1", 1000)))
	})
	t.Run("revocation forgets the token and refuses new ones", func(t *testing.T) {
		must(t, "RevokeDevice", s.RevokeDevice(ctx, "alice", "laptop", at(30)))
		checkErr(t, "RotateRefreshToken revoked", s.RotateRefreshToken(ctx, "alice", "laptop", "l1", tok("l2", 1000), at(31)), storage.ErrNotFound)
		checkErr(t, "SetRefreshToken revoked", s.SetRefreshToken(ctx, "alice", "laptop", tok("l3", 1000)), storage.ErrRevoked)
	})
}

func testDisabledUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	disabledAt := func(t *testing.T, id string) storage.User {
		t.Helper()
		u, err := s.GetUser(ctx, id)
		must(t, "GetUser", err)
		return u
	}
	if u := disabledAt(t, "alice"); !u.DisabledAt.IsZero() || !u.DeletedAt.IsZero() {
		t.Fatalf("new user: DisabledAt %v, DeletedAt %v; want zero", u.DisabledAt, u.DeletedAt)
	}
	must(t, "SetDisabled", s.SetDisabled(ctx, "alice", true, at(100)))
	must(t, "SetDisabled again", s.SetDisabled(ctx, "alice", true, at(200)))
	if u := disabledAt(t, "alice"); !ms(u.DisabledAt).Equal(ms(at(100))) || u.PasswordHash != "hash-alice" {
		t.Errorf("disabled user: DisabledAt %v (want first %v), hash %q", u.DisabledAt, ms(at(100)), u.PasswordHash)
	}
	if u := disabledAt(t, "bob"); !u.DisabledAt.IsZero() {
		t.Errorf("bob disabled too: %v", u.DisabledAt)
	}
	must(t, "SetDisabled false", s.SetDisabled(ctx, "alice", false, at(300)))
	if u := disabledAt(t, "alice"); !u.DisabledAt.IsZero() {
		t.Errorf("enabled user: DisabledAt %v, want zero", u.DisabledAt)
	}
	checkErr(t, "SetDisabled unknown", s.SetDisabled(ctx, "ghost", true, at(1)), storage.ErrNotFound)
}

func testDeleteUser(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "phone", at(0)))
	must(t, "TouchDevice", s.TouchDevice(ctx, "alice", "laptop", at(0)))
	must(t, "RevokeDevice", s.RevokeDevice(ctx, "alice", "laptop", at(50)))
	must(t, "SetRefreshToken", s.SetRefreshToken(ctx, "alice", "phone", storage.RefreshToken{Hash: "h", ExpiresAt: at(10_000)}))
	c := direct(t, s, "alice", "bob", "ab", at(1))
	appendOK(t, s, text(c.ID, "alice", "m1", at(2)))

	must(t, "DeleteUser", s.DeleteUser(ctx, "alice", at(100)))
	u, err := s.GetUser(ctx, "alice")
	must(t, "GetUser deleted", err)
	if !ms(u.DeletedAt).Equal(ms(at(100))) || u.PasswordHash != "" {
		t.Errorf("deleted user: DeletedAt %v (want %v), hash %q (want cleared)", u.DeletedAt, ms(at(100)), u.PasswordHash)
	}
	devs, err := s.ListDevices(ctx, "alice")
	must(t, "ListDevices", err)
	for _, d := range devs {
		want := at(100)
		if d.DeviceID == "laptop" {
			want = at(50) // revoked before
		}
		if !ms(d.RevokedAt).Equal(ms(want)) {
			t.Errorf("device %s RevokedAt %v, want %v", d.DeviceID, d.RevokedAt, ms(want))
		}
	}
	checkErr(t, "refresh after delete", s.RotateRefreshToken(ctx, "alice", "phone", "h", storage.RefreshToken{Hash: "h2", ExpiresAt: at(20_000)}, at(101)), storage.ErrNotFound)
	checkErr(t, "DeleteUser again", s.DeleteUser(ctx, "alice", at(200)), storage.ErrNotFound)
	checkErr(t, "DeleteUser unknown", s.DeleteUser(ctx, "ghost", at(200)), storage.ErrNotFound)
	checkErr(t, "SetDisabled deleted", s.SetDisabled(ctx, "alice", true, at(200)), storage.ErrNotFound)
	checkErr(t, "CreateUser reusing the id", s.CreateUser(ctx, storage.User{ID: "alice", PasswordHash: "x", CreatedAt: at(300)}), storage.ErrExists)
	// History stays readable for the other member.
	msgs, err := s.MessagesAfter(ctx, c.ID, 0, 10, 10)
	must(t, "MessagesAfter", err)
	if len(msgs) != 1 || msgs[0].SenderID != "alice" {
		t.Errorf("history after delete = %v, want alice's message", seqs(msgs))
	}
}

func testListUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "carol", "alice", "dave", "bob")
	must(t, "DeleteUser", s.DeleteUser(ctx, "dave", at(5)))
	ids := func(us []storage.User) []string {
		out := []string{}
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 10, []string{"alice", "bob", "carol", "dave"}},
		{"", 2, []string{"alice", "bob"}},
		{"bob", 2, []string{"carol", "dave"}},
		{"dave", 2, []string{}},
	} {
		got, err := s.ListUsers(ctx, tc.after, tc.limit)
		must(t, "ListUsers", err)
		checkDeepEqual(t, "ListUsers after "+tc.after, ids(got), tc.want)
	}
	all, err := s.ListUsers(ctx, "", 10)
	must(t, "ListUsers", err)
	if all[3].DeletedAt.IsZero() || !all[0].DeletedAt.IsZero() || all[0].PasswordHash != "hash-alice" {
		t.Errorf("ListUsers fields: %+v", all)
	}
}

func testListDeleteConversations(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	ab := direct(t, s, "alice", "bob", "c1", at(1))
	g := group(t, s, "c2", "alice", []string{"bob", "carol"}, at(2))
	appendOK(t, s, text(ab.ID, "alice", "m1", at(3)), text(g.ID, "bob", "m2", at(4)))
	_, err := s.AdvanceCursors(ctx, "bob", "phone", []storage.CursorUpdate{{ConvID: ab.ID, Seq: 1}})
	must(t, "AdvanceCursors", err)

	convIDs := func(cs []storage.Conversation) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	got, err := s.ListConversations(ctx, "", 10)
	must(t, "ListConversations", err)
	checkDeepEqual(t, "ListConversations", convIDs(got), []string{"c1", "c2"})
	got, err = s.ListConversations(ctx, "c1", 10)
	must(t, "ListConversations", err)
	checkDeepEqual(t, "ListConversations after c1", convIDs(got), []string{"c2"})
	if got[0].Kind != storage.KindGroup || got[0].LastSeq != 2 || got[0].CreatedBy != "alice" {
		t.Errorf("ListConversations fields: %+v", got[0])
	}

	must(t, "DeleteConversation", s.DeleteConversation(ctx, ab.ID))
	_, err = s.GetConversation(ctx, ab.ID)
	checkErr(t, "GetConversation deleted", err, storage.ErrNotFound)
	msgs, err := s.MessagesAfter(ctx, ab.ID, 0, 10, 10)
	must(t, "MessagesAfter deleted", err)
	if len(msgs) != 0 {
		t.Errorf("messages of a deleted conversation: %v", seqs(msgs))
	}
	_, err = s.GetMember(ctx, ab.ID, "alice")
	checkErr(t, "GetMember deleted", err, storage.ErrNotMember)
	convs, err := s.UserConversations(ctx, "bob", 0)
	must(t, "UserConversations", err)
	checkDeepEqual(t, "bob's conversations", convIDs(convs), []string{"c2"})
	pend, err := s.PendingConversations(ctx, "bob", "phone")
	must(t, "PendingConversations", err)
	for _, p := range pend {
		if p.ConvID == ab.ID {
			t.Errorf("pending includes deleted conversation: %+v", p)
		}
	}
	checkErr(t, "DeleteConversation again", s.DeleteConversation(ctx, ab.ID), storage.ErrNotFound)
	// The pair is free again: a new direct conversation starts from 1.
	c, created, err := s.DirectConversation(ctx, "bob", "alice", "c3", at(10))
	must(t, "DirectConversation after delete", err)
	if !created || c.ID != "c3" || c.LastSeq != 0 {
		t.Errorf("DirectConversation after delete = %+v created %v, want new c3", c, created)
	}
	checkLastSeq(t, s, g.ID, 2)
}

func testBans(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	bans := []storage.Ban{
		{Kind: storage.BanUser, Value: "mallory", Reason: "spam", CreatedAt: at(1)},
		{Kind: storage.BanIP, Value: "10.0.0.0/8", CreatedAt: at(2), ExpiresAt: at(86_400_000)},
		{Kind: storage.BanIP, Value: "192.0.2.7/32", Reason: "abuse", CreatedAt: at(3)},
	}
	for _, b := range bans {
		must(t, "AddBan", s.AddBan(ctx, b))
	}
	checkErr(t, "AddBan duplicate", s.AddBan(ctx, storage.Ban{Kind: storage.BanUser, Value: "mallory", CreatedAt: at(9)}), storage.ErrExists)
	if err := s.AddBan(ctx, storage.Ban{Kind: "planet", Value: "mars", CreatedAt: at(9)}); err == nil {
		t.Error("AddBan accepted kind \"planet\"")
	}
	check := func(t *testing.T, want []storage.Ban) {
		t.Helper()
		got, err := s.ListBans(ctx)
		must(t, "ListBans", err)
		if len(got) != len(want) {
			t.Fatalf("ListBans = %+v, want %+v", got, want)
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Kind != w.Kind || g.Value != w.Value || g.Reason != w.Reason || !ms(g.CreatedAt).Equal(ms(w.CreatedAt)) ||
				g.ExpiresAt.IsZero() != w.ExpiresAt.IsZero() || (!w.ExpiresAt.IsZero() && !ms(g.ExpiresAt).Equal(ms(w.ExpiresAt))) {
				t.Errorf("ListBans[%d] = %+v, want %+v", i, g, w)
			}
		}
	}
	// Ordered by kind, then value.
	check(t, []storage.Ban{bans[1], bans[2], bans[0]})
	must(t, "RemoveBan", s.RemoveBan(ctx, storage.BanIP, "10.0.0.0/8"))
	checkErr(t, "RemoveBan again", s.RemoveBan(ctx, storage.BanIP, "10.0.0.0/8"), storage.ErrNotFound)
	checkErr(t, "RemoveBan wrong kind", s.RemoveBan(ctx, storage.BanIP, "mallory"), storage.ErrNotFound)
	check(t, []storage.Ban{bans[2], bans[0]})
	if !bans[1].Active(at(1000)) || bans[1].Active(at(86_400_000)) || !bans[0].Active(at(1<<40)) {
		t.Error("Ban.Active disagrees with ExpiresAt")
	}
}
