package msgr_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

// seen collects what one of a client's handlers receives.
type seen[T any] struct {
	mu    sync.Mutex
	items []T
	news  chan struct{}
}

func newSeen[T any]() *seen[T] { return &seen[T]{news: make(chan struct{}, 1)} }

func (s *seen[T]) add(v T) {
	s.mu.Lock()
	s.items = append(s.items, v)
	s.mu.Unlock()
	select {
	case s.news <- struct{}{}:
	default:
	}
}

func (s *seen[T]) all() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.items)
}

// wait returns the first item received that satisfies cond, waiting for it.
func (s *seen[T]) wait(t testing.TB, what string, cond func(T) bool) T {
	t.Helper()
	return s.waitFrom(t, what, 0, cond)
}

// waitFrom is wait ignoring the first from items: those received before
// the action whose effect the caller waits for.
func (s *seen[T]) waitFrom(t testing.TB, what string, from int, cond func(T) bool) T {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		for _, v := range s.all()[from:] {
			if cond(v) {
				return v
			}
		}
		select {
		case <-s.news:
		case <-time.After(50 * time.Millisecond):
		case <-timeout:
			t.Fatalf("timed out waiting for %s; have %+v", what, s.all())
		}
	}
}

// waitLen waits until n items have been received.
func (s *seen[T]) waitLen(t testing.TB, what string, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for len(s.all()) < n {
		select {
		case <-s.news:
		case <-time.After(50 * time.Millisecond):
		case <-timeout:
			t.Fatalf("timed out waiting for %s; have %+v", what, s.all())
		}
	}
}

// none checks that nothing received within d satisfies cond.
func (s *seen[T]) none(t testing.TB, what string, d time.Duration, cond func(T) bool) {
	t.Helper()
	time.Sleep(d)
	for _, v := range s.all() {
		if cond(v) {
			t.Fatalf("unexpected %s: %+v", what, v)
		}
	}
}

// notices is what a client's receipt, presence and typing handlers get.
type notices struct {
	receipts *seen[protocol.Receipt]
	presence *seen[protocol.Presence]
	typing   *seen[protocol.Typing]
}

func withNotices(n *notices) func(*msgr.Config) {
	return func(cfg *msgr.Config) {
		cfg.OnReceipt = n.receipts.add
		cfg.OnPresence = n.presence.add
		cfg.OnTyping = n.typing.add
	}
}

func newNotices() *notices {
	return &notices{receipts: newSeen[protocol.Receipt](), presence: newSeen[protocol.Presence](), typing: newSeen[protocol.Typing]()}
}

func code(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func receiptsByUser(rs []protocol.Receipt) map[string]protocol.Receipt {
	m := make(map[string]protocol.Receipt)
	for _, r := range rs {
		m[r.User] = r
	}
	return m
}

// waitUnread waits until c counts want unread messages in conv.
func waitUnread(t testing.TB, c *msgr.Client, conv string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.Unread()[conv] != want {
		if time.Now().After(deadline) {
			t.Fatalf("unread in %s: %d, want %d (all: %v)", conv, c.Unread()[conv], want, c.Unread())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EDeliveredAndReadReceipts(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	// bob's phone exists and is away.
	bob, _ := dial(t, b, "bob", "phone")
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}

	an := newNotices()
	alice, _ := dial(t, b, "alice", "phone", withNotices(an))
	first, err := alice.SendTo(ctx, "bob", "one")
	if err != nil {
		t.Fatal(err)
	}
	second, err := alice.Send(ctx, first.Conv, "two")
	if err != nil {
		t.Fatal(err)
	}
	conv := first.Conv

	// Stored, not delivered while bob is away.
	rs, err := alice.Receipts(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if r := receiptsByUser(rs)["bob"]; r.Delivered >= first.Seq || len(rs) != 2 {
		t.Fatalf("receipts while bob is away: %+v", rs)
	}
	if s := msgr.StatusOf(second.Seq, msgr.ReceiptFor("alice", rs)); s != msgr.StatusSent {
		t.Fatalf("status while bob is away: %v", s)
	}

	// bob's phone syncs and acknowledges: delivered.
	_, bobIn := dial(t, b, "bob", "phone")
	bobIn.wait(t, "bob's messages", func(ms []protocol.Message) bool { return len(ms) == 2 })
	r := an.receipts.wait(t, "delivered receipt", func(r protocol.Receipt) bool {
		return r.User == "bob" && r.Delivered >= second.Seq
	})
	if r.Conv != conv || r.Read != 0 || msgr.StatusOf(second.Seq, r) != msgr.StatusDelivered {
		t.Fatalf("delivered receipt %+v", r)
	}

	// bob reads on his laptop; alice sees it read, and bob's tablet learns
	// what is left unread.
	bn := newNotices()
	bobTablet, _ := dial(t, b, "bob", "tablet", withNotices(bn))
	if err := bobTablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bobTablet.Unread()[conv]; got != 2 {
		t.Fatalf("bob's unread before reading: %d (%v)", got, bobTablet.Unread())
	}
	bobLaptop, _ := dial(t, b, "bob", "laptop")
	if err := bobLaptop.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bobLaptop.MarkRead(ctx, conv, first.Seq); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bobTablet, conv, 1)
	waitUnread(t, bobLaptop, conv, 1)
	r = an.receipts.wait(t, "read receipt", func(r protocol.Receipt) bool { return r.User == "bob" && r.Read >= first.Seq })
	if msgr.StatusOf(first.Seq, r) != msgr.StatusRead || msgr.StatusOf(second.Seq, r) != msgr.StatusDelivered {
		t.Fatalf("read receipt %+v", r)
	}
	if err := bobLaptop.MarkRead(ctx, conv, second.Seq); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bobTablet, conv, 0)
	an.receipts.wait(t, "second read receipt", func(r protocol.Receipt) bool {
		return r.User == "bob" && msgr.StatusOf(second.Seq, r) == msgr.StatusRead
	})
	bn.receipts.wait(t, "own read receipt on bob's tablet", func(r protocol.Receipt) bool { return r.User == "bob" && r.Read == second.Seq })

	rs, err = alice.Receipts(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if r := receiptsByUser(rs)["bob"]; r.Delivered != second.Seq || r.Read != second.Seq {
		t.Fatalf("receipts after reading: %+v", rs)
	}
	if s := msgr.StatusOf(second.Seq, msgr.ReceiptFor("alice", rs)); s != msgr.StatusRead {
		t.Fatalf("status after reading: %v", s)
	}
	// Receipts are for senders: bob sent nothing, so bob gets none about alice.
	bn.receipts.none(t, "receipt about alice", 200*time.Millisecond, func(r protocol.Receipt) bool { return r.User == "alice" })

	// No such conversation: no receipts, no reading.
	unknown := msgr.NewCMID() // a well-formed id
	if _, err := alice.Receipts(ctx, unknown); code(err) != protocol.CodeNotFound && code(err) != protocol.CodeNotMember {
		t.Fatalf("receipts of an unknown conversation: %v", err)
	}
	if err := alice.MarkRead(ctx, unknown, 1); code(err) != protocol.CodeNotFound && code(err) != protocol.CodeNotMember {
		t.Fatalf("reading an unknown conversation: %v", err)
	}
}

func TestE2EGroupDeliveredToAll(t *testing.T) {
	b := startBroker(t, "alice", "bob", "carol")
	ctx := testCtx(t)
	carol, _ := dial(t, b, "carol", "phone")
	if err := carol.Close(); err != nil {
		t.Fatal(err)
	}
	an := newNotices()
	alice, _ := dial(t, b, "alice", "phone", withNotices(an))
	_, bobIn := dial(t, b, "bob", "phone")
	g, err := alice.CreateGroup(ctx, "Trip", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx, g.ID, "hi all")
	if err != nil {
		t.Fatal(err)
	}
	bobIn.wait(t, "bob's message", func(ms []protocol.Message) bool { return len(ms) == 2 })
	r := an.receipts.wait(t, "bob's delivery", func(r protocol.Receipt) bool { return r.User == "bob" && r.Delivered >= sent.Seq })
	if msgr.StatusOf(sent.Seq, r) != msgr.StatusSent {
		t.Fatalf("delivered to all while carol is away: %+v", r)
	}
	_, carolIn := dial(t, b, "carol", "phone")
	carolIn.wait(t, "carol's message", func(ms []protocol.Message) bool { return len(ms) == 2 })
	an.receipts.wait(t, "delivered to all", func(r protocol.Receipt) bool {
		return r.Conv == g.ID && msgr.StatusOf(sent.Seq, r) == msgr.StatusDelivered
	})
}

func TestE2EUnreadAcrossSync(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	bob, _ := dial(t, b, "bob", "phone")
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	alice, _ := dial(t, b, "alice", "phone")
	var last protocol.Sent
	for _, text := range []string{"a", "b", "c"} {
		s, err := alice.SendTo(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		last = s
	}
	conv := last.Conv

	// The last sync page counts them.
	bob, _ = dial(t, b, "bob", "phone")
	if err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bob, conv, 3)
	if err := bob.MarkRead(ctx, conv, last.Seq-1); err != nil {
		t.Fatal(err)
	}
	if got := bob.Unread()[conv]; got != 1 {
		t.Fatalf("unread after reading 2 of 3: %d", got)
	}
	// New messages from alice count.
	if _, err := alice.Send(ctx, conv, "d"); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bob, conv, 2)
	convs, err := bob.Conversations(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 || convs[0].Read != last.Seq-1 || convs[0].Unread != 2 || convs[0].LastSeq != last.Seq+1 {
		t.Fatalf("conversations %+v", convs)
	}
	if got := bob.Unread()[conv]; got != 2 {
		t.Fatalf("unread after the conversations reply: %d", got)
	}

	// A new device's first sync agrees.
	tablet, _ := dial(t, b, "bob", "tablet")
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tablet.Unread()[conv]; got != 2 {
		t.Fatalf("new device's unread %d, want 2", got)
	}

	// Writing reads everything before: on this device and the others.
	mine, err := tablet.Send(ctx, conv, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if got := tablet.Unread()[conv]; got != 0 {
		t.Fatalf("unread after sending: %d", got)
	}
	waitUnread(t, bob, conv, 0)
	convs, err = bob.Conversations(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if convs[0].Unread != 0 || convs[0].LastSeq != mine.Seq || convs[0].Read != mine.Seq {
		t.Fatalf("conversations after sending: %+v", convs[0])
	}

	// Reading past the newest message stops at it.
	if _, err := alice.Send(ctx, conv, "e"); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bob, conv, 1)
	waitUnread(t, tablet, conv, 1)
	if err := tablet.MarkRead(ctx, conv, 1<<40); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bob, conv, 0)
	e, err := alice.Send(ctx, conv, "f")
	if err != nil {
		t.Fatal(err)
	}
	waitUnread(t, bob, conv, 1)
	rs, err := alice.Receipts(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if r := receiptsByUser(rs)["bob"]; r.Read != e.Seq-1 {
		t.Fatalf("bob's read position %d after reading everything before %d", r.Read, e.Seq)
	}
}

func TestE2EPresence(t *testing.T) {
	b := startBroker(t, "alice", "bob", "carol")
	ctx := testCtx(t)
	an := newNotices()
	alice, _ := dial(t, b, "alice", "phone", withNotices(an))
	sent, err := alice.SendTo(ctx, "bob", "hi")
	if err != nil {
		t.Fatal(err)
	}
	// bob reads it: having engaged with alice, he is her contact now.
	bob, _ := dial(t, b, "bob", "phone")
	if err := bob.MarkRead(ctx, sent.Conv, sent.Seq); err != nil {
		t.Fatal(err)
	}
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	an.presence.wait(t, "bob offline", func(p protocol.Presence) bool { return p.User == "bob" && !p.Online })

	// bob's first connect may have reached alice as "online" too (it is
	// announced asynchronously, possibly after his read made them
	// contacts), so only an event after this point shows phone2 is known.
	mark := len(an.presence.all())
	before := time.Now()
	bob, _ = dial(t, b, "bob", "phone2")
	an.presence.waitFrom(t, "bob online", mark, func(p protocol.Presence) bool { return p.User == "bob" && p.Online })
	ps, err := alice.Presence(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || !ps[0].Online || ps[0].Hidden {
		t.Fatalf("presence of bob online: %+v", ps)
	}

	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	p := an.presence.wait(t, "bob offline again", func(p protocol.Presence) bool {
		return p.User == "bob" && !p.Online && p.LastSeen >= before.UnixMilli()
	})
	seen := time.UnixMilli(p.LastSeen)
	if seen.Before(before.Add(-time.Second)) || seen.After(time.Now().Add(time.Second)) {
		t.Fatalf("bob offline: last seen %v, connected at %v", seen, before)
	}
	ps, err = alice.Presence(ctx, "bob", "carol", "alice")
	if err != nil {
		t.Fatal(err)
	}
	byUser := make(map[string]protocol.Presence)
	for _, p := range ps {
		byUser[p.User] = p
	}
	if p := byUser["bob"]; p.Online || p.Hidden || time.UnixMilli(p.LastSeen).Sub(seen).Abs() > time.Second {
		t.Fatalf("presence of bob offline: %+v", ps)
	}
	// carol shares no conversation with alice; alice always sees herself.
	if p := byUser["carol"]; !p.Hidden || p.Online || p.LastSeen != 0 {
		t.Fatalf("presence of carol: %+v", ps)
	}
	if p := byUser["alice"]; !p.Online || p.Hidden {
		t.Fatalf("presence of alice herself: %+v", ps)
	}
}

func TestE2ETyping(t *testing.T) {
	b := startBroker(t, "alice", "bob", "carol")
	ctx := testCtx(t)
	an, bn := newNotices(), newNotices()
	alice, _ := dial(t, b, "alice", "phone", withNotices(an))
	dial(t, b, "bob", "phone", withNotices(bn))
	carol, _ := dial(t, b, "carol", "phone")
	d, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}

	if err := alice.Typing(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	ty := bn.typing.wait(t, "alice typing", func(protocol.Typing) bool { return true })
	if ty.Conv != d.ID || ty.User != "alice" || ty.TTL <= 0 {
		t.Fatalf("typing %+v", ty)
	}
	// Again at once: too soon.
	if err := alice.Typing(ctx, d.ID); code(err) != protocol.CodeRateLimited {
		t.Fatalf("typing again at once: %v, want rate_limited", err)
	}
	if err := carol.Typing(ctx, d.ID); code(err) != protocol.CodeNotMember && code(err) != protocol.CodeNotFound {
		t.Fatalf("typing in someone else's conversation: %v", err)
	}
	an.typing.none(t, "typing notice to the typist", 300*time.Millisecond, func(protocol.Typing) bool { return true })
	if n := len(bn.typing.all()); n != 1 {
		t.Fatalf("bob got %d typing notices, want 1", n)
	}

	// After the interval it goes through again.
	time.Sleep(msgr.TypingInterval + 200*time.Millisecond)
	if err := alice.Typing(ctx, d.ID); err != nil {
		t.Fatalf("typing after %v: %v", msgr.TypingInterval, err)
	}
	bn.typing.waitLen(t, "second typing notice", 2)
}

func TestE2ESettings(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	alice, _ := dial(t, b, "alice", "phone")
	bob, _ := dial(t, b, "bob", "phone")
	if _, err := alice.SendTo(ctx, "bob", "hi"); err != nil {
		t.Fatal(err)
	}

	s, err := bob.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s != (protocol.Settings{Presence: msgr.PresenceContacts, ReadReceipts: true}) {
		t.Fatalf("default settings %+v", s)
	}
	off := false
	if s, err = bob.SetSettings(ctx, msgr.PresenceNobody, &off); err != nil {
		t.Fatal(err)
	}
	if s != (protocol.Settings{Presence: msgr.PresenceNobody, ReadReceipts: false}) {
		t.Fatalf("settings after set %+v", s)
	}
	// Kept, seen from another device; an absent field stays as it is.
	laptop, _ := dial(t, b, "bob", "laptop")
	if s, err = laptop.SetSettings(ctx, msgr.PresenceEveryone, nil); err != nil {
		t.Fatal(err)
	}
	if s != (protocol.Settings{Presence: msgr.PresenceEveryone, ReadReceipts: false}) {
		t.Fatalf("settings after changing presence only %+v", s)
	}
	if s, err = bob.Settings(ctx); err != nil || s.Presence != msgr.PresenceEveryone || s.ReadReceipts {
		t.Fatalf("settings read back: %+v, %v", s, err)
	}
	if _, err := bob.SetSettings(ctx, "friends", nil); code(err) != protocol.CodeBadRequest {
		t.Fatalf("invalid presence setting: %v, want bad_request", err)
	}

	// nobody hides bob's presence from alice.
	if _, err := bob.SetSettings(ctx, msgr.PresenceNobody, nil); err != nil {
		t.Fatal(err)
	}
	ps, err := alice.Presence(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || !ps[0].Hidden || ps[0].Online || ps[0].LastSeen != 0 {
		t.Fatalf("bob's presence with nobody: %+v", ps)
	}
	if ps, err = bob.Presence(ctx, "bob"); err != nil || len(ps) != 1 || !ps[0].Online || ps[0].Hidden {
		t.Fatalf("bob's own presence: %+v, %v", ps, err)
	}
}

func TestE2EReadReceiptsOff(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	an, bn, bln := newNotices(), newNotices(), newNotices()
	alice, aliceIn := dial(t, b, "alice", "phone", withNotices(an))
	bob, bobIn := dial(t, b, "bob", "phone", withNotices(bn))
	dial(t, b, "bob", "laptop", withNotices(bln))
	off := false
	if _, err := bob.SetSettings(ctx, "", &off); err != nil {
		t.Fatal(err)
	}

	// bob's reads are not shown to alice...
	toBob, err := alice.SendTo(ctx, "bob", "read this")
	if err != nil {
		t.Fatal(err)
	}
	conv := toBob.Conv
	bobIn.wait(t, "alice's message", func(ms []protocol.Message) bool { return len(ms) == 1 })
	an.receipts.wait(t, "delivered to bob", func(r protocol.Receipt) bool { return r.User == "bob" && r.Delivered >= toBob.Seq })
	if err := bob.MarkRead(ctx, conv, toBob.Seq); err != nil {
		t.Fatal(err)
	}
	// ...and alice's reads are not shown to bob.
	toAlice, err := bob.Send(ctx, conv, "and this")
	if err != nil {
		t.Fatal(err)
	}
	aliceIn.wait(t, "bob's message", func(ms []protocol.Message) bool { return len(ms) == 2 })
	bn.receipts.wait(t, "delivered to alice", func(r protocol.Receipt) bool { return r.User == "alice" && r.Delivered >= toAlice.Seq })
	if err := alice.MarkRead(ctx, conv, toAlice.Seq); err != nil {
		t.Fatal(err)
	}

	for _, side := range []struct {
		name  string
		c     *msgr.Client
		n     *notices
		other string
		mine  int64 // a message side sent, that other read
	}{{"alice", alice, an, "bob", toBob.Seq}, {"bob", bob, bn, "alice", toAlice.Seq}} {
		side.n.receipts.none(t, side.name+"'s read receipt from "+side.other, 300*time.Millisecond, func(r protocol.Receipt) bool {
			return r.User == side.other && (r.Read > 0 || r.AllRead > 0)
		})
		rs, err := side.c.Receipts(ctx, conv)
		if err != nil {
			t.Fatal(err)
		}
		r := receiptsByUser(rs)[side.other]
		if r.Read != 0 || r.Delivered < side.mine {
			t.Fatalf("%s's receipts: %+v", side.name, rs)
		}
		if s := msgr.StatusOf(side.mine, msgr.ReceiptFor(side.name, rs)); s != msgr.StatusDelivered {
			t.Fatalf("%s's status of a message the other read: %v", side.name, s)
		}
	}
	// bob's own devices still learn what he read.
	bln.receipts.wait(t, "own read receipt on bob's laptop", func(r protocol.Receipt) bool { return r.User == "bob" && r.Read >= toBob.Seq })
}
