package storetest

import (
	"testing"

	"github.com/msgrhq/msgr/storage"
)

func testAdvanceCursorsBatch(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	// Seq 1 of a group is its creation note; alice's texts are 2..4.
	for _, g := range []string{"g1", "g2"} {
		group(t, s, g, "alice", []string{"bob", "carol"}, at(0))
		appendOK(t, s, text(g, "alice", "1", at(1)), text(g, "alice", "2", at(2)), text(g, "alice", "3", at(3)))
	}

	empty, err := s.AdvanceCursorsBatch(ctx, nil)
	must(t, "AdvanceCursorsBatch(nil)", err)
	if len(empty) != 0 {
		t.Fatalf("empty batch: %+v", empty)
	}

	got, err := s.AdvanceCursorsBatch(ctx, []storage.DeviceCursors{
		{UserID: "bob", DeviceID: "phone", Updates: []storage.CursorUpdate{{ConvID: "g2", From: 0, Seq: 3}, {ConvID: "g1", From: 0, Seq: 4}}},
		// A gapped range does not move the cursor; the other one does.
		{UserID: "carol", DeviceID: "phone", Updates: []storage.CursorUpdate{{ConvID: "g1", From: 1, Seq: 4}, {ConvID: "g2", From: 0, Seq: 2}}},
		// Behind what bob's phone delivered: the cursor moves, Delivered does not.
		{UserID: "bob", DeviceID: "laptop", Updates: []storage.CursorUpdate{{ConvID: "g1", From: 0, Seq: 3}}},
		// After bob's phone in the same batch: Prev is what the phone left.
		{UserID: "bob", DeviceID: "tablet", Updates: []storage.CursorUpdate{{ConvID: "g2", From: 0, Seq: 4}}},
		{UserID: "dave", DeviceID: "phone", Updates: []storage.CursorUpdate{{ConvID: "g1", From: 0, Seq: 4}}}, // not a member
		{UserID: "carol", DeviceID: "laptop"}, // nothing to do
	})
	must(t, "AdvanceCursorsBatch", err)
	want := [][]storage.DeliveredChange{
		{
			{Receipt: storage.Receipt{ConvID: "g1", UserID: "bob", Delivered: 4}, Prev: 0},
			{Receipt: storage.Receipt{ConvID: "g2", UserID: "bob", Delivered: 3}, Prev: 0},
		},
		{{Receipt: storage.Receipt{ConvID: "g2", UserID: "carol", Delivered: 2}, Prev: 0}},
		nil,
		{{Receipt: storage.Receipt{ConvID: "g2", UserID: "bob", Delivered: 4}, Prev: 3}},
		nil,
		nil,
	}
	if len(got) != len(want) {
		t.Fatalf("AdvanceCursorsBatch returned %d results, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if len(got[i]) == 0 && len(want[i]) == 0 {
			continue
		}
		checkDeepEqual(t, "AdvanceCursorsBatch result", got[i], want[i])
	}
	checkPending(t, s, "bob", "phone", []storage.ConvCursor{{ConvID: "g2", LastSeq: 4, Cursor: 3, FromSeq: 1}})
	checkPending(t, s, "carol", "phone", []storage.ConvCursor{
		{ConvID: "g1", LastSeq: 4, Cursor: 0, FromSeq: 1},
		{ConvID: "g2", LastSeq: 4, Cursor: 2, FromSeq: 1},
	})
	checkPending(t, s, "bob", "laptop", []storage.ConvCursor{
		{ConvID: "g1", LastSeq: 4, Cursor: 3, FromSeq: 1},
		{ConvID: "g2", LastSeq: 4, Cursor: 0, FromSeq: 1},
	})
	checkPending(t, s, "bob", "tablet", []storage.ConvCursor{{ConvID: "g1", LastSeq: 4, Cursor: 0, FromSeq: 1}})

	// Each device's changes match what AdvanceCursors reports for the same
	// update afterwards: nothing left to raise.
	if c := advance(t, s, "bob", "phone", storage.CursorUpdate{ConvID: "g1", Seq: 4}); len(c) != 0 {
		t.Errorf("bob's Delivered rose again: %+v", c)
	}
}
