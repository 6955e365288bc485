package storetest

import (
	"errors"
	"testing"

	"github.com/msgrhq/msgr/storage"
)

func testDirectConversation(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")

	c, created, err := s.DirectConversation(ctx, "bob", "alice", "d1", at(10))
	must(t, "DirectConversation", err)
	want := storage.Conversation{ID: "d1", Kind: storage.KindDirect, CreatedBy: "bob", CreatedAt: at(10)}
	if !created {
		t.Error("first DirectConversation: created = false")
	}
	checkConv(t, "DirectConversation", c, want)

	t.Run("stored", func(t *testing.T) {
		got, err := s.GetConversation(ctx, "d1")
		must(t, "GetConversation", err)
		checkConv(t, "GetConversation", got, want)
	})

	t.Run("same pair in either order", func(t *testing.T) {
		for _, pair := range [][2]string{{"bob", "alice"}, {"alice", "bob"}} {
			got, created, err := s.DirectConversation(ctx, pair[0], pair[1], "d-other", at(20))
			must(t, "DirectConversation", err)
			if created {
				t.Errorf("DirectConversation(%s, %s): created = true for an existing pair", pair[0], pair[1])
			}
			checkConv(t, "DirectConversation", got, want)
		}
		_, err := s.GetConversation(ctx, "d-other")
		checkErr(t, "GetConversation of unused id", err, storage.ErrNotFound)
	})

	t.Run("members", func(t *testing.T) {
		got, err := s.ActiveMembers(ctx, "d1")
		must(t, "ActiveMembers", err)
		checkMembers(t, "ActiveMembers", got, []storage.Member{
			{ConvID: "d1", UserID: "alice", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(10)},
			{ConvID: "d1", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(10)},
		})
		m, err := s.GetMember(ctx, "d1", "bob")
		must(t, "GetMember", err)
		checkMember(t, "GetMember", m, storage.Member{ConvID: "d1", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(10)})
		_, err = s.GetMember(ctx, "d1", "carol")
		checkErr(t, "GetMember of non-member", err, storage.ErrNotMember)
	})

	t.Run("other pair is another conversation", func(t *testing.T) {
		c := direct(t, s, "alice", "carol", "d2", at(30))
		if c.ID == "d1" {
			t.Fatal("alice/carol got alice/bob's conversation")
		}
	})

	t.Run("with oneself", func(t *testing.T) {
		if _, _, err := s.DirectConversation(ctx, "alice", "alice", "d-self", at(40)); err == nil {
			t.Error("DirectConversation(alice, alice) succeeded")
		}
	})

	for _, pair := range [][2]string{{"alice", "ghost"}, {"ghost", "alice"}, {"ghost", "phantom"}} {
		t.Run("unknown user "+pair[0]+"/"+pair[1], func(t *testing.T) {
			_, _, err := s.DirectConversation(ctx, pair[0], pair[1], "d-ghost", at(50))
			checkErr(t, "DirectConversation", err, storage.ErrNotFound)
			_, err = s.GetConversation(ctx, "d-ghost")
			checkErr(t, "GetConversation after failure", err, storage.ErrNotFound)
		})
	}

	t.Run("unknown conversation", func(t *testing.T) {
		_, err := s.GetConversation(ctx, "nope")
		checkErr(t, "GetConversation", err, storage.ErrNotFound)
		_, err = s.GetMember(ctx, "nope", "alice")
		checkErr(t, "GetMember", err, storage.ErrNotMember)
	})
}

func testCreateGroup(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")

	conv := storage.Conversation{ID: "g1", Kind: storage.KindGroup, Title: "Trip ✈ 2025", CreatedBy: "carol", CreatedAt: at(10)}
	n := note("g1", "carol", "create", at(10))
	c, msg, err := s.CreateGroup(ctx, conv, []string{"bob", "alice"}, 3, n)
	must(t, "CreateGroup", err)
	want := conv
	want.LastSeq = 1
	checkConv(t, "CreateGroup conversation", c, want)
	checkMessage(t, "CreateGroup note", msg, stored(n, 1))

	t.Run("stored", func(t *testing.T) {
		got, err := s.GetConversation(ctx, "g1")
		must(t, "GetConversation", err)
		checkConv(t, "GetConversation", got, want)
		msgs, err := s.MessagesAfter(ctx, "g1", 0, 10, 10)
		must(t, "MessagesAfter", err)
		checkMessages(t, "MessagesAfter", msgs, []storage.Message{stored(n, 1)})
	})

	t.Run("members", func(t *testing.T) {
		got, err := s.ActiveMembers(ctx, "g1")
		must(t, "ActiveMembers", err)
		checkMembers(t, "ActiveMembers", got, []storage.Member{
			{ConvID: "g1", UserID: "alice", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(10)},
			{ConvID: "g1", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(10)},
			// The creator sent the note.
			{ConvID: "g1", UserID: "carol", Role: storage.RoleOwner, FromSeq: 1, JoinedAt: at(10), Delivered: 1, Read: 1},
		})
	})

	failures := []struct {
		name    string
		owner   string
		members []string
		max     int
		want    error
	}{
		{"full", "carol", []string{"alice", "bob", "dave"}, 3, storage.ErrGroupFull},
		{"unknown member", "carol", []string{"bob", "ghost"}, maxMembers, storage.ErrNotFound},
		{"unknown creator", "ghost", []string{"bob"}, maxMembers, storage.ErrNotFound},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			conv := storage.Conversation{ID: "g-fail", Kind: storage.KindGroup, Title: "x", CreatedBy: tc.owner, CreatedAt: at(20)}
			_, _, err := s.CreateGroup(ctx, conv, tc.members, tc.max, note("g-fail", tc.owner, "create", at(20)))
			checkErr(t, "CreateGroup", err, tc.want)
			_, err = s.GetConversation(ctx, "g-fail")
			checkErr(t, "GetConversation after failure", err, storage.ErrNotFound)
			_, err = s.GetMember(ctx, "g-fail", "bob")
			checkErr(t, "GetMember after failure", err, storage.ErrNotMember)
			msgs, err := s.MessagesAfter(ctx, "g-fail", 0, 10, 10)
			must(t, "MessagesAfter", err)
			if len(msgs) != 0 {
				t.Errorf("failed CreateGroup stored messages %v", seqs(msgs))
			}
			convs, err := s.UserConversations(ctx, "bob", 0)
			must(t, "UserConversations", err)
			if len(convs) != 1 || convs[0].ID != "g1" {
				t.Errorf("UserConversations(bob) after failure = %+v, want only g1", convs)
			}
		})
	}

	t.Run("exactly at the limit", func(t *testing.T) {
		conv := storage.Conversation{ID: "g2", Kind: storage.KindGroup, CreatedBy: "dave", CreatedAt: at(30)}
		_, _, err := s.CreateGroup(ctx, conv, []string{"alice", "bob"}, 3, note("g2", "dave", "create", at(30)))
		must(t, "CreateGroup", err)
	})
}

func testAddMember(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	group(t, s, "g", "alice", []string{"bob"}, at(0))
	direct(t, s, "alice", "bob", "d", at(0))

	n := note("g", "alice", "add-carol", at(5))
	msg, err := s.AddMember(ctx, "g", "carol", storage.RoleAdmin, 3, n)
	must(t, "AddMember", err)
	checkMessage(t, "AddMember note", msg, stored(n, 2))
	checkLastSeq(t, s, "g", 2)

	t.Run("member from the note on", func(t *testing.T) {
		m, err := s.GetMember(ctx, "g", "carol")
		must(t, "GetMember", err)
		checkMember(t, "GetMember", m, storage.Member{ConvID: "g", UserID: "carol", Role: storage.RoleAdmin, FromSeq: 2, JoinedAt: at(5)})
		active, err := s.ActiveMembers(ctx, "g")
		must(t, "ActiveMembers", err)
		if len(active) != 3 || active[2].UserID != "carol" {
			t.Errorf("ActiveMembers = %+v, want alice, bob, carol", active)
		}
	})

	failures := []struct {
		name   string
		convID string
		userID string
		max    int
		want   error
	}{
		{"already active", "g", "carol", maxMembers, storage.ErrExists},
		{"owner already active", "g", "alice", maxMembers, storage.ErrExists},
		{"full", "g", "dave", 3, storage.ErrGroupFull},
		{"unknown conversation", "nope", "dave", maxMembers, storage.ErrNotFound},
		{"unknown user", "g", "ghost", maxMembers, storage.ErrNotFound},
		{"direct", "d", "dave", maxMembers, storage.ErrNotGroup},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.AddMember(ctx, tc.convID, tc.userID, storage.RoleMember, tc.max, note(tc.convID, "alice", "fail-"+tc.name, at(6)))
			checkErr(t, "AddMember", err, tc.want)
			checkLastSeq(t, s, "g", 2)
			checkLastSeq(t, s, "d", 0)
		})
	}
	t.Run("failures added nobody", func(t *testing.T) {
		_, err := s.GetMember(ctx, "g", "dave")
		checkErr(t, "GetMember", err, storage.ErrNotMember)
		_, err = s.GetMember(ctx, "d", "dave")
		checkErr(t, "GetMember", err, storage.ErrNotMember)
	})

	t.Run("re-add removed member", func(t *testing.T) {
		_, err := s.RemoveMember(ctx, "g", "bob", note("g", "alice", "remove-bob", at(7)))
		must(t, "RemoveMember", err)
		// Removal freed a place: alice and carol are active, the limit is 3.
		n := note("g", "alice", "readd-bob", at(8))
		msg, err := s.AddMember(ctx, "g", "bob", storage.RoleMember, 3, n)
		must(t, "AddMember", err)
		checkMessage(t, "AddMember note", msg, stored(n, 4))
		m, err := s.GetMember(ctx, "g", "bob")
		must(t, "GetMember", err)
		checkMember(t, "GetMember", m, storage.Member{ConvID: "g", UserID: "bob", Role: storage.RoleMember, FromSeq: 4, JoinedAt: at(8)})
	})
}

func testRemoveMember(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	group(t, s, "g", "alice", []string{"bob", "carol"}, at(0))
	direct(t, s, "alice", "bob", "d", at(0))

	n := note("g", "alice", "remove-bob", at(5))
	msg, err := s.RemoveMember(ctx, "g", "bob", n)
	must(t, "RemoveMember", err)
	checkMessage(t, "RemoveMember note", msg, stored(n, 2))

	t.Run("membership ended at the note", func(t *testing.T) {
		m, err := s.GetMember(ctx, "g", "bob")
		must(t, "GetMember", err)
		checkMember(t, "GetMember", m, storage.Member{ConvID: "g", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, UntilSeq: 2, JoinedAt: at(0)})
		if m.Active() {
			t.Error("removed member is active")
		}
		active, err := s.ActiveMembers(ctx, "g")
		must(t, "ActiveMembers", err)
		if len(active) != 2 || active[0].UserID != "alice" || active[1].UserID != "carol" {
			t.Errorf("ActiveMembers = %+v, want alice, carol", active)
		}
	})

	t.Run("removed member sees the note and nothing later", func(t *testing.T) {
		appendOK(t, s, text("g", "alice", "after", at(6)))
		pending, err := s.PendingConversations(ctx, "bob", "phone")
		must(t, "PendingConversations", err)
		checkDeepEqual(t, "PendingConversations(bob)", pending, []storage.ConvCursor{{ConvID: "g", LastSeq: 2, Cursor: 0, FromSeq: 1}})
		pending, err = s.PendingConversations(ctx, "carol", "phone")
		must(t, "PendingConversations", err)
		checkDeepEqual(t, "PendingConversations(carol)", pending, []storage.ConvCursor{{ConvID: "g", LastSeq: 3, Cursor: 0, FromSeq: 1}})
	})

	failures := []struct {
		name   string
		convID string
		userID string
		want   error
	}{
		{"already removed", "g", "bob", storage.ErrNotMember},
		{"never a member", "g", "dave", storage.ErrNotMember},
		{"unknown conversation", "nope", "bob", storage.ErrNotFound},
		{"direct", "d", "bob", storage.ErrNotGroup},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.RemoveMember(ctx, tc.convID, tc.userID, note(tc.convID, "alice", "fail-"+tc.name, at(7)))
			checkErr(t, "RemoveMember", err, tc.want)
			checkLastSeq(t, s, "g", 3)
			checkLastSeq(t, s, "d", 0)
		})
	}
	t.Run("direct members untouched", func(t *testing.T) {
		m, err := s.GetMember(ctx, "d", "bob")
		must(t, "GetMember", err)
		if !m.Active() {
			t.Error("failed RemoveMember on a direct conversation ended the membership")
		}
	})
}

func testSetRole(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	group(t, s, "g", "alice", []string{"bob", "carol"}, at(0))
	direct(t, s, "alice", "bob", "d", at(0))
	_, err := s.RemoveMember(ctx, "g", "carol", note("g", "alice", "remove-carol", at(1)))
	must(t, "RemoveMember", err)

	must(t, "SetRole", s.SetRole(ctx, "g", "bob", storage.RoleAdmin))
	t.Run("changed", func(t *testing.T) {
		m, err := s.GetMember(ctx, "g", "bob")
		must(t, "GetMember", err)
		checkMember(t, "GetMember", m, storage.Member{ConvID: "g", UserID: "bob", Role: storage.RoleAdmin, FromSeq: 1, JoinedAt: at(0)})
		checkLastSeq(t, s, "g", 2) // no note
	})

	failures := []struct {
		name   string
		convID string
		userID string
		want   error
	}{
		{"removed member", "g", "carol", storage.ErrNotMember},
		{"never a member", "g", "dave", storage.ErrNotMember},
		{"direct", "d", "bob", storage.ErrNotGroup},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "SetRole", s.SetRole(ctx, tc.convID, tc.userID, storage.RoleAdmin), tc.want)
		})
	}
	t.Run("unknown conversation", func(t *testing.T) {
		// The contract lists only ErrNotGroup and ErrNotMember for SetRole;
		// a store may report a missing conversation either way.
		err := s.SetRole(ctx, "nope", "bob", storage.RoleAdmin)
		if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrNotMember) {
			t.Errorf("SetRole on unknown conversation: error = %v, want ErrNotFound or ErrNotMember", err)
		}
	})
	t.Run("failures changed nothing", func(t *testing.T) {
		m, err := s.GetMember(ctx, "g", "carol")
		must(t, "GetMember", err)
		if m.Role != storage.RoleMember {
			t.Errorf("removed member's role = %s, want member", m.Role)
		}
	})
}

func testUserConversations(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave", "erin")

	// Activity times: h 600 (carol removed then), ab 4000 (message),
	// g 3000, ac and ad 2000 (tie, broken by id).
	group(t, s, "h", "alice", []string{"carol"}, at(500))
	_, err := s.RemoveMember(ctx, "h", "carol", note("h", "alice", "remove-carol", at(600)))
	must(t, "RemoveMember", err)
	direct(t, s, "alice", "bob", "ab", at(1000))
	direct(t, s, "alice", "dave", "ad", at(2000))
	direct(t, s, "alice", "carol", "ac", at(2000))
	group(t, s, "g", "alice", []string{"bob"}, at(3000))
	appendOK(t, s, text("ab", "bob", "m1", at(4000)))

	tests := []struct {
		user  string
		limit int
		want  []string
	}{
		{"alice", 0, []string{"ab", "g", "ac", "ad", "h"}},
		{"alice", 2, []string{"ab", "g"}},
		{"alice", 10, []string{"ab", "g", "ac", "ad", "h"}},
		{"bob", 0, []string{"ab", "g"}},
		{"carol", 0, []string{"ac", "h"}}, // includes the group carol left
		{"dave", 1, []string{"ad"}},
		{"erin", 0, nil},
	}
	wantSeq := map[string]int64{"ab": 1, "g": 1, "ac": 0, "ad": 0, "h": 2}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			convs, err := s.UserConversations(ctx, tc.user, tc.limit)
			must(t, "UserConversations", err)
			var ids []string
			for _, c := range convs {
				ids = append(ids, c.ID)
				if c.LastSeq != wantSeq[c.ID] {
					t.Errorf("conversation %s: LastSeq = %d, want %d", c.ID, c.LastSeq, wantSeq[c.ID])
				}
			}
			checkDeepEqual(t, "UserConversations ids", ids, tc.want)
		})
	}

	t.Run("fields", func(t *testing.T) {
		convs, err := s.UserConversations(ctx, "dave", 0)
		must(t, "UserConversations", err)
		if len(convs) != 1 {
			t.Fatalf("UserConversations(dave) = %+v", convs)
		}
		checkConv(t, "UserConversations(dave)[0]", convs[0],
			storage.Conversation{ID: "ad", Kind: storage.KindDirect, CreatedBy: "alice", CreatedAt: at(2000)})
	})
}
