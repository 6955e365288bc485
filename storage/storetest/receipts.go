package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/msgrhq/msgr/storage"
)

// change is a storage.DeliveredChange of user in conv.
func change(conv, user string, prev, delivered, read int64) storage.DeliveredChange {
	return storage.DeliveredChange{
		Receipt: storage.Receipt{ConvID: conv, UserID: user, Delivered: delivered, Read: read},
		Prev:    prev,
	}
}

func checkChanges(t *testing.T, what string, got, want []storage.DeliveredChange) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	checkDeepEqual(t, what, got, want)
}

// checkReceipt checks the member's stored Delivered and Read.
func checkReceipt(t *testing.T, s storage.Store, conv, user string, delivered, read int64) {
	t.Helper()
	m, err := s.GetMember(t.Context(), conv, user)
	must(t, "GetMember", err)
	if m.Delivered != delivered || m.Read != read {
		t.Errorf("member %s of %s: Delivered %d, Read %d; want %d, %d", user, conv, m.Delivered, m.Read, delivered, read)
	}
}

// messages appends n text messages from sender to conv.
func messages(t *testing.T, s storage.Store, conv, sender string, n int) {
	t.Helper()
	batch := make([]storage.NewMessage, n)
	for i := range batch {
		batch[i] = text(conv, sender, fmt.Sprintf("%s-%d", conv, i), at(int64(i)))
	}
	appendOK(t, s, batch...)
}

func testMemberReceipts(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	messages(t, s, "ab", "bob", 3)
	group(t, s, "g", "carol", []string{"alice", "bob"}, at(0))
	advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 2})
	_, _, err := s.MarkRead(ctx, "alice", "ab", 1)
	must(t, "MarkRead", err)
	advance(t, s, "bob", "laptop", storage.CursorUpdate{ConvID: "g", Seq: 1})

	t.Run("GetMember", func(t *testing.T) {
		m, err := s.GetMember(ctx, "ab", "alice")
		must(t, "GetMember", err)
		checkMember(t, "GetMember(ab, alice)", m, storage.Member{
			ConvID: "ab", UserID: "alice", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(0), Delivered: 2, Read: 1,
		})
	})

	t.Run("ActiveMembers", func(t *testing.T) {
		got, err := s.ActiveMembers(ctx, "ab")
		must(t, "ActiveMembers", err)
		// bob sent 1..3, so he has received and read them.
		checkMembers(t, "ActiveMembers(ab)", got, []storage.Member{
			{ConvID: "ab", UserID: "alice", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(0), Delivered: 2, Read: 1},
			{ConvID: "ab", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(0), Delivered: 3, Read: 3},
		})
		got, err = s.ActiveMembers(ctx, "g")
		must(t, "ActiveMembers", err)
		checkMembers(t, "ActiveMembers(g)", got, []storage.Member{
			{ConvID: "g", UserID: "alice", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(0)},
			{ConvID: "g", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, JoinedAt: at(0), Delivered: 1},
			{ConvID: "g", UserID: "carol", Role: storage.RoleOwner, FromSeq: 1, JoinedAt: at(0), Delivered: 1, Read: 1},
		})
	})

	t.Run("past member keeps its receipt", func(t *testing.T) {
		_, err := s.RemoveMember(ctx, "g", "bob", note("g", "carol", "remove-bob", at(1)))
		must(t, "RemoveMember", err)
		m, err := s.GetMember(ctx, "g", "bob")
		must(t, "GetMember", err)
		checkMember(t, "GetMember(g, bob)", m, storage.Member{
			ConvID: "g", UserID: "bob", Role: storage.RoleMember, FromSeq: 1, UntilSeq: 2, JoinedAt: at(0), Delivered: 1,
		})
	})
}

func testAdvanceReceipts(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	messages(t, s, "ab", "bob", 8) // seqs 1..8
	group(t, s, "g", "carol", []string{"alice", "bob"}, at(0))
	messages(t, s, "g", "carol", 4) // seqs 2..5
	// Reading raises Delivered too: the first ack's Prev is 1, and every
	// receipt of alice in ab carries Read 1.
	_, _, err := s.MarkRead(ctx, "alice", "ab", 1)
	must(t, "MarkRead", err)

	steps := []struct {
		name    string
		user    string
		device  string
		updates []storage.CursorUpdate
		want    []storage.DeliveredChange
	}{
		{"first ack raises Delivered", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "ab", Seq: 2}},
			[]storage.DeliveredChange{change("ab", "alice", 1, 2, 1)}},
		{"lower cursor of another device", "alice", "laptop",
			[]storage.CursorUpdate{{ConvID: "ab", Seq: 1}}, nil},
		{"higher cursor of another device", "alice", "laptop",
			[]storage.CursorUpdate{{ConvID: "ab", From: 1, Seq: 4}},
			[]storage.DeliveredChange{change("ab", "alice", 2, 4, 1)}},
		{"device catching up below Delivered", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "ab", From: 2, Seq: 3}}, nil},
		{"range after a gap", "alice", "laptop",
			[]storage.CursorUpdate{{ConvID: "ab", From: 6, Seq: 8}}, nil},
		{"one change per conversation, ordered by conversation", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "g", Seq: 3}, {ConvID: "ab", From: 3, Seq: 6}, {ConvID: "g", From: 3, Seq: 5}, {ConvID: "ab", Seq: 7}},
			[]storage.DeliveredChange{change("ab", "alice", 4, 7, 1), change("g", "alice", 0, 5, 0)}},
		{"replay", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "g", Seq: 3}, {ConvID: "ab", From: 3, Seq: 6}, {ConvID: "g", From: 3, Seq: 5}, {ConvID: "ab", Seq: 7}}, nil},
		{"capped at the newest seq", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "ab", Seq: 99}},
			[]storage.DeliveredChange{change("ab", "alice", 7, 8, 1)}},
		{"own messages are delivered already", "bob", "phone",
			[]storage.CursorUpdate{{ConvID: "ab", Seq: 5}}, nil},
		{"per user", "bob", "phone",
			[]storage.CursorUpdate{{ConvID: "g", Seq: 5}},
			[]storage.DeliveredChange{change("g", "bob", 0, 5, 0)}},
		{"never a member", "carol", "phone",
			[]storage.CursorUpdate{{ConvID: "ab", Seq: 3}}, nil},
		{"unknown conversation", "alice", "phone",
			[]storage.CursorUpdate{{ConvID: "nope", Seq: 3}}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := advance(t, s, st.user, st.device, st.updates...)
			checkChanges(t, "AdvanceCursors", got, st.want)
		})
	}

	t.Run("stored", func(t *testing.T) {
		checkReceipt(t, s, "ab", "alice", 8, 1)
		checkReceipt(t, s, "ab", "bob", 8, 8)
		checkReceipt(t, s, "g", "alice", 5, 0)
		checkReceipt(t, s, "g", "bob", 5, 0)
		checkReceipt(t, s, "g", "carol", 5, 5)
		_, err := s.GetMember(ctx, "ab", "carol")
		checkErr(t, "GetMember(ab, carol)", err, storage.ErrNotMember)
	})

	t.Run("past member capped at UntilSeq", func(t *testing.T) {
		_, err := s.RemoveMember(ctx, "g", "bob", note("g", "carol", "remove-bob", at(10)))
		must(t, "RemoveMember", err)
		appendOK(t, s, text("g", "carol", "after-bob", at(11)))
		got := advance(t, s, "bob", "phone", storage.CursorUpdate{ConvID: "g", Seq: 99})
		checkChanges(t, "AdvanceCursors", got, []storage.DeliveredChange{change("g", "bob", 5, 6, 0)})
	})
}

func testMarkRead(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "eve")
	direct(t, s, "alice", "bob", "ab", at(0))
	messages(t, s, "ab", "bob", 5) // seqs 1..5
	advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 2})
	group(t, s, "g", "carol", []string{"alice"}, at(0))
	messages(t, s, "g", "carol", 2) // seqs 2, 3
	_, err := s.RemoveMember(ctx, "g", "alice", note("g", "carol", "remove-alice", at(5)))
	must(t, "RemoveMember", err) // seq 4, alice's UntilSeq
	appendOK(t, s, text("g", "carol", "after-alice", at(6)))

	steps := []struct {
		name                 string
		user, conv           string
		seq                  int64
		wantDelivered, wantR int64
		changed              bool
		err                  error
	}{
		{"read below Delivered", "alice", "ab", 1, 2, 1, true, nil},
		{"read raises Delivered", "alice", "ab", 4, 4, 4, true, nil},
		{"never backwards", "alice", "ab", 3, 4, 4, false, nil},
		{"same seq again", "alice", "ab", 4, 4, 4, false, nil},
		{"capped at the newest seq", "alice", "ab", 99, 5, 5, true, nil},
		{"capped again", "alice", "ab", 99, 5, 5, false, nil},
		{"zero", "alice", "ab", 0, 5, 5, false, nil},
		{"sender has read their own messages", "bob", "ab", 3, 5, 5, false, nil},
		{"past member capped at UntilSeq", "alice", "g", 99, 4, 4, true, nil},
		{"never a member", "eve", "ab", 1, 0, 0, false, storage.ErrNotMember},
		{"unknown conversation", "alice", "nope", 1, 0, 0, false, storage.ErrNotMember},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r, changed, err := s.MarkRead(ctx, st.user, st.conv, st.seq)
			if st.err != nil {
				checkErr(t, "MarkRead", err, st.err)
				return
			}
			must(t, "MarkRead", err)
			want := storage.Receipt{ConvID: st.conv, UserID: st.user, Delivered: st.wantDelivered, Read: st.wantR}
			if r != want || changed != st.changed {
				t.Errorf("MarkRead(%s, %s, %d) = %+v, changed %v; want %+v, changed %v",
					st.user, st.conv, st.seq, r, changed, want, st.changed)
			}
			checkReceipt(t, s, st.conv, st.user, st.wantDelivered, st.wantR)
		})
	}

	t.Run("device cursors do not move", func(t *testing.T) {
		checkPending(t, s, "alice", "phone", []storage.ConvCursor{
			{ConvID: "ab", LastSeq: 5, Cursor: 2, FromSeq: 1},
			{ConvID: "g", LastSeq: 4, Cursor: 0, FromSeq: 1},
		})
	})

	t.Run("acks up to Delivered report nothing", func(t *testing.T) {
		checkChanges(t, "AdvanceCursors", advance(t, s, "alice", "laptop", storage.CursorUpdate{ConvID: "ab", Seq: 5}), nil)
		appendOK(t, s, text("ab", "bob", "6", at(7)))
		checkChanges(t, "AdvanceCursors", advance(t, s, "alice", "laptop", storage.CursorUpdate{ConvID: "ab", Seq: 6}),
			[]storage.DeliveredChange{change("ab", "alice", 5, 6, 5)})
	})
}

func testReceipts(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	group(t, s, "g", "carol", []string{"dave", "bob", "alice"}, at(0))
	messages(t, s, "g", "carol", 3) // seqs 2..4
	direct(t, s, "alice", "bob", "ab", at(0))
	advance(t, s, "bob", "phone", storage.CursorUpdate{ConvID: "g", Seq: 3})
	_, _, err := s.MarkRead(ctx, "alice", "g", 2)
	must(t, "MarkRead", err)
	advance(t, s, "dave", "phone", storage.CursorUpdate{ConvID: "g", Seq: 4})
	_, err = s.RemoveMember(ctx, "g", "dave", note("g", "carol", "remove-dave", at(5)))
	must(t, "RemoveMember", err)

	tests := []struct {
		conv string
		want []storage.Receipt
	}{
		{"g", []storage.Receipt{
			{ConvID: "g", UserID: "alice", Delivered: 2, Read: 2},
			{ConvID: "g", UserID: "bob", Delivered: 3},
			{ConvID: "g", UserID: "carol", Delivered: 5, Read: 5}, // sent 1..5
		}},
		{"ab", []storage.Receipt{{ConvID: "ab", UserID: "alice"}, {ConvID: "ab", UserID: "bob"}}},
		{"nope", nil},
	}
	for _, tc := range tests {
		t.Run(tc.conv, func(t *testing.T) {
			got, err := s.Receipts(ctx, tc.conv)
			must(t, "Receipts", err)
			if len(got) != 0 || len(tc.want) != 0 {
				checkDeepEqual(t, "Receipts("+tc.conv+")", got, tc.want)
			}
		})
	}
}

func testSenders(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave")
	// Senders by seq: 1 carol (creation), 2 alice, 3 bob, 4 alice, 5 carol
	// (adds dave), 6 dave.
	group(t, s, "g", "carol", []string{"alice", "bob"}, at(0))
	appendOK(t, s, text("g", "alice", "1", at(1)), text("g", "bob", "2", at(2)), text("g", "alice", "3", at(3)))
	_, err := s.AddMember(ctx, "g", "dave", storage.RoleMember, maxMembers, note("g", "carol", "add-dave", at(4)))
	must(t, "AddMember", err)
	appendOK(t, s, text("g", "dave", "4", at(5)))

	tests := []struct {
		conv        string
		after, upTo int64
		want        []string
	}{
		{"g", 0, 6, []string{"alice", "bob", "carol", "dave"}},
		{"g", 0, 4, []string{"alice", "bob", "carol"}},
		{"g", 1, 4, []string{"alice", "bob"}},
		{"g", 1, 2, []string{"alice"}},
		{"g", 0, 1, []string{"carol"}},
		{"g", 3, 4, []string{"alice"}},
		{"g", 4, 6, []string{"carol", "dave"}},
		{"g", 6, 10, nil},
		{"g", 4, 4, nil},
		{"g", 4, 2, nil},
		{"nope", 0, 10, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s (%d, %d]", tc.conv, tc.after, tc.upTo), func(t *testing.T) {
			got, err := s.Senders(ctx, tc.conv, tc.after, tc.upTo)
			must(t, "Senders", err)
			if len(got) != 0 || len(tc.want) != 0 {
				checkDeepEqual(t, "Senders", got, tc.want)
			}
		})
	}
}

func testUnread(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave", "erin")
	direct(t, s, "alice", "bob", "ab", at(0))
	messages(t, s, "ab", "bob", 3)              // seqs 1..3
	direct(t, s, "alice", "carol", "ac", at(0)) // empty: never unread
	group(t, s, "g", "carol", []string{"alice", "bob"}, at(0))
	appendOK(t, s, text("g", "carol", "1", at(1))) // seq 2
	group(t, s, "h", "carol", []string{"alice"}, at(0))
	appendOK(t, s, text("h", "carol", "1", at(1))) // seq 2
	_, err := s.RemoveMember(ctx, "h", "alice", note("h", "carol", "remove-alice", at(2)))
	must(t, "RemoveMember", err)    // seq 3
	messages(t, s, "h", "carol", 2) // seqs 4, 5: alice cannot see them

	markRead := func(user, conv string, seq int64) func(t *testing.T) {
		return func(t *testing.T) {
			_, _, err := s.MarkRead(ctx, user, conv, seq)
			must(t, "MarkRead", err)
		}
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
		user string
		want []storage.Unread
	}{
		{"nothing read, past membership capped at UntilSeq", nil, "alice",
			[]storage.Unread{{ConvID: "ab", LastSeq: 3}, {ConvID: "g", LastSeq: 2}, {ConvID: "h", LastSeq: 3}}},
		{"new member counts from FromSeq", func(t *testing.T) {
			_, err := s.AddMember(ctx, "g", "dave", storage.RoleMember, maxMembers, note("g", "carol", "add-dave", at(3)))
			must(t, "AddMember", err) // seq 3
		}, "dave", []storage.Unread{{ConvID: "g", LastSeq: 3, Read: 2}}},
		{"partly read", markRead("alice", "ab", 2), "alice",
			[]storage.Unread{{ConvID: "ab", LastSeq: 3, Read: 2}, {ConvID: "g", LastSeq: 3}, {ConvID: "h", LastSeq: 3}}},
		{"read to the end", func(t *testing.T) {
			markRead("alice", "ab", 3)(t)
			markRead("alice", "h", 99)(t) // capped at 3, which is all alice can see
		}, "alice", []storage.Unread{{ConvID: "g", LastSeq: 3}}},
		{"new message", func(t *testing.T) { appendOK(t, s, text("ab", "bob", "4", at(4))) }, "alice",
			[]storage.Unread{{ConvID: "ab", LastSeq: 4, Read: 3}, {ConvID: "g", LastSeq: 3}}},
		{"re-added member starts at FromSeq-1", func(t *testing.T) {
			_, err := s.AddMember(ctx, "h", "alice", storage.RoleMember, maxMembers, note("h", "carol", "readd-alice", at(5)))
			must(t, "AddMember", err) // seq 6; alice's Read in h is still 3
		}, "alice", []storage.Unread{{ConvID: "ab", LastSeq: 4, Read: 3}, {ConvID: "g", LastSeq: 3}, {ConvID: "h", LastSeq: 6, Read: 5}}},
		{"no conversations", nil, "erin", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.do != nil {
				st.do(t)
			}
			got, err := s.Unread(ctx, st.user)
			must(t, "Unread", err)
			if len(got) != 0 || len(st.want) != 0 {
				checkDeepEqual(t, "Unread("+st.user+")", got, st.want)
			}
		})
	}
}

// testReceiptsConcurrent acknowledges and reads one conversation from
// several devices at once. Every raise of Delivered must be reported exactly
// once with the exact previous value, so the reported ranges (Prev,
// Delivered] never overlap; every MarkRead must return a receipt at least as
// far as it asked, and no two may both claim the same Read.
func testReceiptsConcurrent(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	direct(t, s, "alice", "bob", "ab", at(0))
	const n = 40
	messages(t, s, "ab", "bob", n)

	const devices, readers = 4, 2
	var (
		mu      sync.Mutex
		changes []storage.DeliveredChange
		reads   []int64 // Read values of calls that changed it
		wg      sync.WaitGroup
	)
	errs := make([]error, devices+readers)
	for d := range devices {
		wg.Go(func() {
			// Different strides make the devices' targets differ, so that
			// their raises interleave.
			device := fmt.Sprint("device-", d)
			for seq := int64(d + 1); ; seq += int64(d + 1) {
				seq := min(seq, n)
				got, err := s.AdvanceCursors(ctx, "alice", device, []storage.CursorUpdate{{ConvID: "ab", Seq: seq}})
				if err != nil {
					errs[d] = err
					return
				}
				mu.Lock()
				changes = append(changes, got...)
				mu.Unlock()
				if seq == n {
					return
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for seq := int64(1); seq <= n; seq += 3 {
				got, changed, err := s.MarkRead(ctx, "alice", "ab", seq)
				if err == nil && (got.Read < seq || got.Delivered < got.Read) {
					err = fmt.Errorf("MarkRead(%d) = %+v: not as far as asked, or Read past Delivered", seq, got)
				}
				if err != nil {
					errs[devices+r] = err
					return
				}
				if changed {
					mu.Lock()
					reads = append(reads, got.Read)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, "concurrent receipts", err)
	}

	slices.SortFunc(changes, func(a, b storage.DeliveredChange) int { return int(a.Prev - b.Prev) })
	var last int64
	for _, c := range changes {
		if c.Prev < last || c.Delivered <= c.Prev {
			t.Fatalf("reported Delivered changes overlap or go nowhere: %+v", changes)
		}
		last = c.Delivered
	}
	slices.Sort(reads)
	if len(slices.Compact(slices.Clone(reads))) != len(reads) {
		t.Errorf("two MarkRead calls reported the same change: Reads %v", reads)
	}
	checkReceipt(t, s, "ab", "alice", n, n)
}

// checkUnread checks Unread(user).
func checkUnread(t *testing.T, s storage.Store, user string, want []storage.Unread) {
	t.Helper()
	got, err := s.Unread(t.Context(), user)
	must(t, "Unread", err)
	if len(got) != 0 || len(want) != 0 {
		checkDeepEqual(t, "Unread("+user+")", got, want)
	}
}

// testSenderReceipts checks that sending implies having received and read
// everything up to one's own message, for messages and membership notes.
func testSenderReceipts(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	group(t, s, "g", "carol", []string{"alice", "bob"}, at(0)) // seq 1, by carol

	t.Run("note of CreateGroup", func(t *testing.T) {
		checkReceipt(t, s, "g", "carol", 1, 1)
		checkReceipt(t, s, "g", "alice", 0, 0)
		checkUnread(t, s, "carol", nil)
	})

	t.Run("send", func(t *testing.T) {
		appendOK(t, s, text("ab", "bob", "b1", at(1))) // ab seq 1
		advance(t, s, "alice", "phone", storage.CursorUpdate{ConvID: "ab", Seq: 1})
		// One batch: two messages of alice in ab and one of bob in g.
		appendOK(t, s,
			text("ab", "alice", "a1", at(2)), // ab seq 2
			text("g", "bob", "b2", at(3)),    // g seq 2
			text("ab", "alice", "a2", at(4)), // ab seq 3
		)
		checkReceipt(t, s, "ab", "alice", 3, 3) // up to her newest, not just the first
		checkReceipt(t, s, "ab", "bob", 1, 1)   // other members untouched
		checkReceipt(t, s, "g", "bob", 2, 2)
		checkReceipt(t, s, "g", "carol", 1, 1)
		checkReceipt(t, s, "g", "alice", 0, 0)
	})

	t.Run("own messages are not unread", func(t *testing.T) {
		checkUnread(t, s, "alice", []storage.Unread{{ConvID: "g", LastSeq: 2}})
		checkUnread(t, s, "bob", []storage.Unread{{ConvID: "ab", LastSeq: 3, Read: 1}})
		checkUnread(t, s, "carol", []storage.Unread{{ConvID: "g", LastSeq: 2, Read: 1}})
	})

	t.Run("duplicates change nothing", func(t *testing.T) {
		res, err := s.AppendMessages(ctx, []storage.NewMessage{
			text("ab", "bob", "b3", at(5)),   // ab seq 4
			text("ab", "alice", "a1", at(6)), // retransmission of seq 2
			text("ab", "bob", "b3", at(7)),   // duplicate within the batch
		})
		must(t, "AppendMessages", err)
		if res[0].Err != nil || res[0].Duplicate || !res[1].Duplicate || !res[2].Duplicate ||
			res[1].Message.Seq != 2 || res[2].Message.Seq != 4 {
			t.Fatalf("AppendMessages = %+v; want new seq 4, duplicates of 2 and 4", res)
		}
		// Not lowered to the duplicate's seq 2, not raised to bob's 4.
		checkReceipt(t, s, "ab", "alice", 3, 3)
		checkReceipt(t, s, "ab", "bob", 4, 4)
		checkUnread(t, s, "alice", []storage.Unread{{ConvID: "ab", LastSeq: 4, Read: 3}, {ConvID: "g", LastSeq: 2}})
	})

	t.Run("rejected items change nothing", func(t *testing.T) {
		_, err := s.RemoveMember(ctx, "g", "bob", note("g", "carol", "remove-bob", at(8))) // g seq 3
		must(t, "RemoveMember", err)
		res, err := s.AppendMessages(ctx, []storage.NewMessage{text("g", "bob", "b4", at(9)), text("ab", "carol", "c1", at(9))})
		must(t, "AppendMessages", err)
		checkErr(t, "removed member", res[0].Err, storage.ErrNotMember)
		checkErr(t, "never a member", res[1].Err, storage.ErrNotMember)
		checkReceipt(t, s, "g", "bob", 2, 2)
		_, err = s.GetMember(ctx, "ab", "carol")
		checkErr(t, "GetMember(ab, carol)", err, storage.ErrNotMember)
	})

	t.Run("notes raise their sender", func(t *testing.T) {
		checkReceipt(t, s, "g", "carol", 3, 3) // removed bob at seq 3
		// bob re-adds himself (say, with an invite link): seq 4.
		_, err := s.AddMember(ctx, "g", "bob", storage.RoleMember, maxMembers, note("g", "bob", "rejoin", at(10)))
		must(t, "AddMember", err)
		checkReceipt(t, s, "g", "bob", 4, 4)
		checkReceipt(t, s, "g", "carol", 3, 3)
		// alice leaves: seq 5, her last visible message.
		_, err = s.RemoveMember(ctx, "g", "alice", note("g", "alice", "leave", at(11)))
		must(t, "RemoveMember", err)
		checkReceipt(t, s, "g", "alice", 5, 5)
		checkUnread(t, s, "alice", []storage.Unread{{ConvID: "ab", LastSeq: 4, Read: 3}})
		checkUnread(t, s, "bob", []storage.Unread{{ConvID: "g", LastSeq: 5, Read: 4}})
	})

	t.Run("a newcomer's own join note", func(t *testing.T) {
		createUsers(t, s, "dave")
		_, err := s.AddMember(ctx, "g", "dave", storage.RoleMember, maxMembers, note("g", "dave", "join", at(12))) // seq 6
		must(t, "AddMember", err)
		checkReceipt(t, s, "g", "dave", 6, 6)
		checkUnread(t, s, "dave", nil)
	})
}

// testSenderReceiptsConcurrent appends batches in which one user writes to
// many conversations while that user's devices acknowledge and read them.
// Every store must finish without errors (a PostgreSQL deadlock between an
// append and AdvanceCursors would surface as one) and leave the user's Read
// at least at their newest message.
func testSenderReceiptsConcurrent(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	const convs, rounds = 8, 15
	ids := make([]string, convs)
	for i := range ids {
		ids[i] = fmt.Sprintf("g%02d", i)
		group(t, s, ids[i], "bob", []string{"alice"}, at(0))
	}

	var wg sync.WaitGroup
	errs := make([]error, 4)
	newest := make(map[string]int64) // alice's newest message per conversation
	wg.Go(func() {
		for r := range rounds {
			// Descending, the opposite of the order AdvanceCursors locks in.
			var batch []storage.NewMessage
			for _, id := range slices.Backward(ids) {
				batch = append(batch,
					text(id, "alice", fmt.Sprint("a", r), at(int64(r))),
					text(id, "bob", fmt.Sprint("b", r), at(int64(r))))
			}
			res, err := s.AppendMessages(ctx, batch)
			if err != nil {
				errs[0] = err
				return
			}
			for _, x := range res {
				if x.Err != nil {
					errs[0] = x.Err
					return
				}
				if x.Message.SenderID == "alice" {
					newest[x.Message.ConvID] = x.Message.Seq
				}
			}
		}
	})
	for d := range 2 {
		wg.Go(func() {
			for range rounds {
				var updates []storage.CursorUpdate
				for _, id := range ids {
					updates = append(updates, storage.CursorUpdate{ConvID: id, Seq: 1 << 40})
				}
				if _, err := s.AdvanceCursors(ctx, "alice", fmt.Sprint("device-", d), updates); err != nil {
					errs[1+d] = err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			for _, id := range ids {
				if _, _, err := s.MarkRead(ctx, "alice", id, 1<<40); err != nil {
					errs[3] = err
					return
				}
			}
		}
	})
	wg.Wait()
	for _, err := range errs {
		must(t, "concurrent appends and receipts", err)
	}
	for _, id := range ids {
		m, err := s.GetMember(ctx, id, "alice")
		must(t, "GetMember", err)
		if m.Read < newest[id] || m.Delivered < m.Read {
			t.Errorf("alice in %s: Delivered %d, Read %d; want Read >= %d (her newest) and Delivered >= Read",
				id, m.Delivered, m.Read, newest[id])
		}
	}
}
