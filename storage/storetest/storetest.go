// Package storetest is the conformance suite every storage.Store
// implementation must pass. The storage package's doc comments are the
// contract; this suite pins down their observable behaviour (sequence
// allocation, idempotency, visibility of past memberships, sentinel errors)
// so that the SQLite and PostgreSQL stores are interchangeable.
//
// Stores keep times with millisecond precision, so times are compared by
// UnixMilli and the fixtures carry sub-millisecond parts on purpose.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// Run runs the suite. open must return a new, empty, migrated store on every
// call and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) storage.Store)
	}{
		{"Ping", testPing},
		{"Users", testUsers},
		{"Settings", testSettings},
		{"LastSeen", testLastSeen},
		{"Contacts", testContacts},
		{"SharesConversation", testSharesConversation},
		{"Devices", testDevices},
		{"DirectConversation", testDirectConversation},
		{"CreateGroup", testCreateGroup},
		{"AddMember", testAddMember},
		{"RemoveMember", testRemoveMember},
		{"SetRole", testSetRole},
		{"UserConversations", testUserConversations},
		{"AppendMessages", testAppendMessages},
		{"AppendDuplicates", testAppendDuplicates},
		{"AppendConcurrent", testAppendConcurrent},
		{"MessagesAfter", testMessagesAfter},
		{"MessagesBefore", testMessagesBefore},
		{"PendingConversations", testPendingConversations},
		{"AdvanceCursors", testAdvanceCursors},
		{"AdvanceCursorsBatch", testAdvanceCursorsBatch},
		{"CursorConditions", testCursorConditions},
		{"MemberReceipts", testMemberReceipts},
		{"AdvanceReceipts", testAdvanceReceipts},
		{"MarkRead", testMarkRead},
		{"Receipts", testReceipts},
		{"Senders", testSenders},
		{"Unread", testUnread},
		{"ReceiptsConcurrent", testReceiptsConcurrent},
		{"SenderReceipts", testSenderReceipts},
		{"SenderReceiptsConcurrent", testSenderReceiptsConcurrent},
		{"Security", testSecurity},
		{"MediaCreateGet", testMediaCreateGet},
		{"MediaRefs", testMediaRefs},
		{"CanReadMedia", testCanReadMedia},
		{"UnreferencedMedia", testUnreferencedMedia},
		{"MediaUsage", testMediaUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func testPing(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// at returns a fixed instant plus ms milliseconds. Its sub-millisecond part
// checks that stores keep at least millisecond precision and that tests do
// not demand more.
func at(ms int64) time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.UTC).Add(time.Duration(ms) * time.Millisecond)
}

// ms normalises a time to what a store must preserve.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// checkErr fails unless errors.Is(err, want).
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// must fails the test on a non-nil error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func createUsers(t *testing.T, s storage.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		must(t, "CreateUser "+id, s.CreateUser(t.Context(), storage.User{ID: id, PasswordHash: "hash-" + id, CreatedAt: at(0)}))
	}
}

func direct(t *testing.T, s storage.Store, a, b, id string, now time.Time) storage.Conversation {
	t.Helper()
	c, created, err := s.DirectConversation(t.Context(), a, b, id, now)
	must(t, "DirectConversation", err)
	if !created || c.ID != id {
		t.Fatalf("DirectConversation(%s, %s, %s) = %s, created %v; want new %s", a, b, id, c.ID, created, id)
	}
	return c
}

// maxMembers is a limit that the fixtures never reach.
const maxMembers = 100

func group(t *testing.T, s storage.Store, id, owner string, members []string, now time.Time) storage.Conversation {
	t.Helper()
	conv := storage.Conversation{ID: id, Kind: storage.KindGroup, Title: "group " + id, CreatedBy: owner, CreatedAt: now}
	c, _, err := s.CreateGroup(t.Context(), conv, members, maxMembers, note(id, owner, "create", now))
	must(t, "CreateGroup "+id, err)
	return c
}

func note(convID, sender, cmid string, now time.Time) storage.NewMessage {
	return storage.NewMessage{
		ConvID:       convID,
		ID:           "note/" + convID + "/" + sender + "/" + cmid,
		SenderID:     sender,
		SenderDevice: "server",
		ClientMsgID:  cmid,
		Kind:         storage.MsgSystem,
		Body:         []byte(fmt.Sprintf(`{"event":%q}`, cmid)),
		CreatedAt:    now,
	}
}

func text(convID, sender, cmid string, now time.Time) storage.NewMessage {
	return storage.NewMessage{
		ConvID:       convID,
		ID:           "msg/" + convID + "/" + sender + "/" + cmid,
		SenderID:     sender,
		SenderDevice: "phone",
		ClientMsgID:  cmid,
		Kind:         storage.MsgText,
		Body:         []byte(fmt.Sprintf(`{"text":"hello from %s","cmid":%q}`, sender, cmid)),
		CreatedAt:    now,
	}
}

// appendOK appends a batch whose items must all be stored as new messages.
func appendOK(t *testing.T, s storage.Store, batch ...storage.NewMessage) []storage.Message {
	t.Helper()
	res, err := s.AppendMessages(t.Context(), batch)
	must(t, "AppendMessages", err)
	if len(res) != len(batch) {
		t.Fatalf("AppendMessages returned %d results for %d messages", len(res), len(batch))
	}
	out := make([]storage.Message, len(res))
	for i, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("AppendMessages item %d: err %v, duplicate %v", i, r.Err, r.Duplicate)
		}
		out[i] = r.Message
	}
	return out
}

// stored is the message a store must hold for m at seq.
func stored(m storage.NewMessage, seq int64) storage.Message {
	return storage.Message{
		ConvID:       m.ConvID,
		Seq:          seq,
		ID:           m.ID,
		SenderID:     m.SenderID,
		SenderDevice: m.SenderDevice,
		ClientMsgID:  m.ClientMsgID,
		Kind:         m.Kind,
		Body:         m.Body,
		CreatedAt:    m.CreatedAt,
	}
}

func checkMessage(t *testing.T, what string, got, want storage.Message) {
	t.Helper()
	if !sameMessage(got, want) {
		t.Errorf("%s = %s\nwant %s", what, fmtMessage(got), fmtMessage(want))
	}
}

func sameMessage(a, b storage.Message) bool {
	return a.ConvID == b.ConvID && a.Seq == b.Seq && a.ID == b.ID &&
		a.SenderID == b.SenderID && a.SenderDevice == b.SenderDevice &&
		a.ClientMsgID == b.ClientMsgID && a.Kind == b.Kind &&
		bytes.Equal(a.Body, b.Body) && a.CreatedAt.UnixMilli() == b.CreatedAt.UnixMilli()
}

func fmtMessage(m storage.Message) string {
	return fmt.Sprintf("{%s seq %d id %s from %s/%s cmid %s kind %s body %q at %d}",
		m.ConvID, m.Seq, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Kind, m.Body, m.CreatedAt.UnixMilli())
}

func checkMessages(t *testing.T, what string, got, want []storage.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages %v, want %d %v", what, len(got), seqs(got), len(want), seqs(want))
	}
	for i := range got {
		checkMessage(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func seqs(msgs []storage.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func checkConv(t *testing.T, what string, got, want storage.Conversation) {
	t.Helper()
	got.CreatedAt, want.CreatedAt = ms(got.CreatedAt), ms(want.CreatedAt)
	if got != want {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

func checkMember(t *testing.T, what string, got, want storage.Member) {
	t.Helper()
	got.JoinedAt, want.JoinedAt = ms(got.JoinedAt), ms(want.JoinedAt)
	if got != want {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

func checkMembers(t *testing.T, what string, got, want []storage.Member) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %+v\nwant %+v", what, got, want)
	}
	for i := range got {
		checkMember(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func lastSeq(t *testing.T, s storage.Store, convID string) int64 {
	t.Helper()
	c, err := s.GetConversation(t.Context(), convID)
	must(t, "GetConversation "+convID, err)
	return c.LastSeq
}

func checkLastSeq(t *testing.T, s storage.Store, convID string, want int64) {
	t.Helper()
	if got := lastSeq(t, s, convID); got != want {
		t.Errorf("LastSeq of %s = %d, want %d", convID, got, want)
	}
}

func checkDeepEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}
