package storetest

import (
	"errors"
	"testing"

	"github.com/msgrhq/msgr/storage"
)

func checkPending(t *testing.T, s storage.Store, user, device string, want []storage.ConvCursor) {
	t.Helper()
	got, err := s.PendingConversations(t.Context(), user, device)
	must(t, "PendingConversations", err)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	checkDeepEqual(t, "PendingConversations("+user+", "+device+")", got, want)
}

// advance applies updates and returns the Delivered changes they caused.
func advance(t *testing.T, s storage.Store, user, device string, updates ...storage.CursorUpdate) []storage.DeliveredChange {
	t.Helper()
	changes, err := s.AdvanceCursors(t.Context(), user, device, updates)
	must(t, "AdvanceCursors", err)
	return changes
}

func testPendingConversations(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")

	t.Run("nothing", func(t *testing.T) { checkPending(t, s, "alice", "phone", nil) })

	direct(t, s, "alice", "bob", "d-ab", at(0))
	appendOK(t, s, text("d-ab", "alice", "1", at(1)), text("d-ab", "bob", "2", at(2)), text("d-ab", "alice", "3", at(3)))
	direct(t, s, "alice", "carol", "d-ac", at(0)) // empty: never pending
	// Created last but sorts first: the order is by ConvID.
	group(t, s, "a-grp", "alice", []string{"bob", "carol"}, at(4))
	appendOK(t, s, text("a-grp", "bob", "1", at(5)), text("a-grp", "carol", "2", at(6)))

	t.Run("no cursors yet", func(t *testing.T) {
		want := []storage.ConvCursor{
			{ConvID: "a-grp", LastSeq: 3, Cursor: 0, FromSeq: 1},
			{ConvID: "d-ab", LastSeq: 3, Cursor: 0, FromSeq: 1},
		}
		checkPending(t, s, "alice", "phone", want)
		checkPending(t, s, "bob", "phone", want)
	})

	t.Run("caught up conversations omitted", func(t *testing.T) {
		advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "d-ab", Seq: 3}, storage.CursorUpdate{ConvID: "a-grp", Seq: 2})
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{{ConvID: "a-grp", LastSeq: 3, Cursor: 2, FromSeq: 1}})
	})

	t.Run("cursors are per device and user", func(t *testing.T) {
		want := []storage.ConvCursor{
			{ConvID: "a-grp", LastSeq: 3, Cursor: 0, FromSeq: 1},
			{ConvID: "d-ab", LastSeq: 3, Cursor: 0, FromSeq: 1},
		}
		checkPending(t, s, "alice", "laptop", want)
		checkPending(t, s, "bob", "phone", want)
	})

	t.Run("new member starts before the add note", func(t *testing.T) {
		_, err := s.AddMember(ctx, "a-grp", "dave", storage.RoleMember, maxMembers, note("a-grp", "alice", "add-dave", at(7)))
		must(t, "AddMember", err)
		checkPending(t, s, "dave", "phone", []storage.ConvCursor{{ConvID: "a-grp", LastSeq: 4, Cursor: 3, FromSeq: 4}})
	})

	t.Run("removed member capped at the remove note", func(t *testing.T) {
		_, err := s.RemoveMember(ctx, "a-grp", "carol", note("a-grp", "alice", "remove-carol", at(8)))
		must(t, "RemoveMember", err)
		appendOK(t, s, text("a-grp", "alice", "after-carol", at(9)))
		checkLastSeq(t, s, "a-grp", 6)
		checkPending(t, s, "carol", "phone", []storage.ConvCursor{{ConvID: "a-grp", LastSeq: 5, Cursor: 0, FromSeq: 1}})
		advance(t, s, "carol", "phone", storage.CursorUpdate{ConvID: "a-grp", Seq: 5})
		checkPending(t, s, "carol", "phone", nil)
	})

	t.Run("re-added member's cursor is at least FromSeq-1", func(t *testing.T) {
		_, err := s.AddMember(ctx, "a-grp", "carol", storage.RoleMember, maxMembers, note("a-grp", "alice", "readd-carol", at(10)))
		must(t, "AddMember", err)
		checkPending(t, s, "carol", "phone", []storage.ConvCursor{{ConvID: "a-grp", LastSeq: 7, Cursor: 6, FromSeq: 7}})
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{{ConvID: "a-grp", LastSeq: 7, Cursor: 2, FromSeq: 1}})
	})
}

func testAdvanceCursors(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	direct(t, s, "alice", "carol", "ac", at(0))
	var batch []storage.NewMessage
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		batch = append(batch, text("ab", "bob", id, at(1)), text("ac", "carol", id, at(1)))
	}
	appendOK(t, s, batch...)

	t.Run("empty", func(t *testing.T) {
		advance(t, s, "alice", "phone")
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{
			{ConvID: "ab", LastSeq: 5, Cursor: 0, FromSeq: 1},
			{ConvID: "ac", LastSeq: 5, Cursor: 0, FromSeq: 1},
		})
	})

	t.Run("several conversations, reordered within a call", func(t *testing.T) {
		advance(t, s, "alice", "phone",
			storage.CursorUpdate{ConvID: "ab", Seq: 4},
			storage.CursorUpdate{ConvID: "ac", Seq: 2},
			storage.CursorUpdate{ConvID: "ab", Seq: 3})
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{
			{ConvID: "ab", LastSeq: 5, Cursor: 4, FromSeq: 1},
			{ConvID: "ac", LastSeq: 5, Cursor: 2, FromSeq: 1},
		})
	})

	t.Run("never backwards", func(t *testing.T) {
		advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 1}, storage.CursorUpdate{ConvID: "ac", Seq: 0})
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{
			{ConvID: "ab", LastSeq: 5, Cursor: 4, FromSeq: 1},
			{ConvID: "ac", LastSeq: 5, Cursor: 2, FromSeq: 1},
		})
	})

	t.Run("replay is harmless", func(t *testing.T) {
		for range 2 {
			advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 5}, storage.CursorUpdate{ConvID: "ac", Seq: 5})
		}
		checkPending(t, s, "alice", "phone", nil)
	})
}

func testCursorConditions(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	createUsers(t, s, "alice", "bob", "eve")
	direct(t, s, "alice", "bob", "ab", at(0))
	var batch []storage.NewMessage
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		batch = append(batch, text("ab", "bob", id, at(1)))
	}
	appendOK(t, s, batch...)
	pending := func(cursor int64) []storage.ConvCursor {
		if cursor == 5 {
			return nil
		}
		return []storage.ConvCursor{{ConvID: "ab", LastSeq: 5, Cursor: cursor, FromSeq: 1}}
	}

	tests := []struct {
		name   string
		update storage.CursorUpdate
		want   int64 // cursor afterwards
	}{
		{"range after a gap is ignored", storage.CursorUpdate{ConvID: "ab", From: 2, Seq: 3}, 0},
		{"range starting at the cursor applies", storage.CursorUpdate{ConvID: "ab", From: 0, Seq: 2}, 2},
		{"overlapping range applies", storage.CursorUpdate{ConvID: "ab", From: 1, Seq: 3}, 3},
		{"range after a gap still ignored", storage.CursorUpdate{ConvID: "ab", From: 4, Seq: 5}, 3},
		{"beyond the end is capped", storage.CursorUpdate{ConvID: "ab", Seq: 99}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			advance(t, s, "alice", "phone", tt.update)
			checkPending(t, s, "alice", "phone", pending(tt.want))
		})
	}

	t.Run("capped cursor still sees new messages", func(t *testing.T) {
		appendOK(t, s, text("ab", "bob", "6", at(2)))
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{{ConvID: "ab", LastSeq: 6, Cursor: 5, FromSeq: 1}})
	})

	t.Run("non-member update is ignored", func(t *testing.T) {
		advance(t, s, "eve", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 3})
		checkPending(t, s, "eve", "phone", nil)
		if _, err := s.GetMember(t.Context(), "ab", "eve"); !errors.Is(err, storage.ErrNotMember) {
			t.Fatalf("eve became a member: %v", err)
		}
	})
}
