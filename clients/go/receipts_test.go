package msgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

func TestMarkRead(t *testing.T) {
	c, fb, _ := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		if op == protocol.OpSend {
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSent, Sent: &protocol.Sent{Conv: "c1", Seq: 12, CMID: req.CMID}}}}
		}
		if op == protocol.OpConversations {
			return fakeReply{events: []protocol.Event{{Type: protocol.EvConversations, Convs: []protocol.Conversation{
				{ID: "c1", LastSeq: 10, Read: 4, Unread: 6},
			}}}}
		}
		return ok()
	})
	ctx := context.Background()
	if _, err := c.Conversations(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := c.Unread(); !reflect.DeepEqual(got, map[string]int64{"c1": 6}) {
		t.Fatalf("unread before = %v", got)
	}
	if err := c.MarkRead(ctx, "c1", 8); err != nil {
		t.Fatal(err)
	}
	reqs := fb.requests(protocol.OpRead)
	if len(reqs) != 1 || reqs[0].Conv != "c1" || reqs[0].Seq != 8 {
		t.Fatalf("read requests %+v", reqs)
	}
	if got := c.Unread(); !reflect.DeepEqual(got, map[string]int64{"c1": 2}) {
		t.Fatalf("unread after = %v", got)
	}
	// Reading past the newest message the client knows of (10) leaves
	// the ones it has not seen unread: the broker caps the read position.
	if err := c.MarkRead(ctx, "c1", 20); err != nil {
		t.Fatal(err)
	}
	fb.push(protocol.InboxTopic("alice"), protocol.Event{Type: protocol.EvMessage, Msg: &protocol.Message{Conv: "c1", Seq: 11, From: "bob", Body: json.RawMessage(`{}`)}})
	eventually(t, "message 11 unread", func() bool { return reflect.DeepEqual(c.Unread(), map[string]int64{"c1": 1}) })
	// Reading a conversation the client knows nothing of changes nothing.
	if err := c.MarkRead(ctx, "c2", 5); err != nil {
		t.Fatal(err)
	}
	if got := c.Unread(); !reflect.DeepEqual(got, map[string]int64{"c1": 1}) {
		t.Fatalf("unread after reading c2 = %v", got)
	}
	// Sending reads the conversation up to the message sent.
	if _, err := c.Send(ctx, "c1", "hi"); err != nil {
		t.Fatal(err)
	}
	if got := c.Unread(); len(got) != 0 {
		t.Fatalf("unread after sending = %v", got)
	}
}

func TestMarkReadError(t *testing.T) {
	c, _, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply {
		return fakeReply{reason: 0x87, events: []protocol.Event{{Type: protocol.EvError, Error: &protocol.Error{Code: protocol.CodeNotMember}}}}
	})
	c.unreadMu.Lock()
	c.unread.set("c1", 0, 3, 3)
	c.unreadMu.Unlock()
	err := c.MarkRead(context.Background(), "c1", 3)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotMember {
		t.Fatalf("err = %v, want not_member", err)
	}
	if got := c.Unread(); !reflect.DeepEqual(got, map[string]int64{"c1": 3}) {
		t.Fatalf("a failed read changed the counts: %v", got)
	}
}

func TestReceiptsPresenceSettings(t *testing.T) {
	receipts := []protocol.Receipt{{Conv: "c1", User: "alice", Delivered: 9, Read: 9}, {Conv: "c1", User: "bob", Delivered: 7, Read: 5}}
	presence := []protocol.Presence{{User: "bob", Online: true}, {User: "carol", LastSeen: 1764451200123}, {User: "dave", Hidden: true}}
	c, fb, _ := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		switch op {
		case protocol.OpReceipts:
			return fakeReply{events: []protocol.Event{{Type: protocol.EvReceipts, Receipts: receipts}}}
		case protocol.OpPresence:
			return fakeReply{events: []protocol.Event{{Type: protocol.EvPresence, Presence: presence}}}
		case protocol.OpSettings:
			s := protocol.Settings{Presence: PresenceContacts, ReadReceipts: true}
			if req.Presence != "" {
				s.Presence = req.Presence
			}
			if req.ReadReceipts != nil {
				s.ReadReceipts = *req.ReadReceipts
			}
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSettings, Settings: &s}}}
		}
		t.Errorf("unexpected %s", op)
		return fakeReply{}
	})
	ctx := context.Background()

	gotReceipts, err := c.Receipts(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotReceipts, receipts) {
		t.Errorf("receipts = %+v", gotReceipts)
	}
	if reqs := fb.requests(protocol.OpReceipts); len(reqs) != 1 || reqs[0].Conv != "c1" {
		t.Errorf("receipts requests %+v", reqs)
	}

	gotPresence, err := c.Presence(ctx, "bob", "carol", "dave")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotPresence, presence) {
		t.Errorf("presence = %+v", gotPresence)
	}
	if reqs := fb.requests(protocol.OpPresence); len(reqs) != 1 || !slices.Equal(reqs[0].Users, []string{"bob", "carol", "dave"}) {
		t.Errorf("presence requests %+v", reqs)
	}

	s, err := c.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s != (protocol.Settings{Presence: PresenceContacts, ReadReceipts: true}) {
		t.Errorf("settings = %+v", s)
	}
	off := false
	s, err = c.SetSettings(ctx, PresenceNobody, &off)
	if err != nil {
		t.Fatal(err)
	}
	if s != (protocol.Settings{Presence: PresenceNobody, ReadReceipts: false}) {
		t.Errorf("settings after set = %+v", s)
	}
	if _, err := c.SetSettings(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	reqs := fb.requests(protocol.OpSettings)
	if len(reqs) != 3 || reqs[0].Presence != "" || reqs[0].ReadReceipts != nil ||
		reqs[1].Presence != PresenceNobody || reqs[1].ReadReceipts == nil || *reqs[1].ReadReceipts ||
		reqs[2].Presence != "" || reqs[2].ReadReceipts != nil {
		t.Errorf("settings requests %+v", reqs)
	}
}

func TestUnexpectedReplies(t *testing.T) {
	// A reply of the wrong type is a broker bug, reported, not retried.
	c, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return ok() })
	ctx := context.Background()
	calls := map[protocol.Op]func() error{
		protocol.OpReceipts: func() error { _, err := c.Receipts(ctx, "c1"); return err },
		protocol.OpPresence: func() error { _, err := c.Presence(ctx, "bob"); return err },
		protocol.OpSettings: func() error { _, err := c.Settings(ctx); return err },
	}
	for op, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: no error for an ok reply", op)
		}
		if n := len(fb.requests(op)); n != 1 {
			t.Errorf("%s: %d attempts", op, n)
		}
	}
}

func TestTyping(t *testing.T) {
	rateLimited := fakeReply{reason: 0x96, events: []protocol.Event{{Type: protocol.EvError, Error: &protocol.Error{Code: protocol.CodeRateLimited, Message: "slow down"}}}}
	tests := []struct {
		name  string
		reply fakeReply
		want  protocol.Code // "" for success
	}{
		{"taken", fakeReply{}, ""},
		{"rate limited", rateLimited, protocol.CodeRateLimited},
		{"refused without event", fakeReply{reason: 0x96}, protocol.CodeRateLimited},
		{"not a member", fakeReply{reason: 0x87, events: []protocol.Event{{Type: protocol.EvError, Error: &protocol.Error{Code: protocol.CodeNotMember}}}}, protocol.CodeNotMember},
		{"no puback", fakeReply{err: context.DeadlineExceeded}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A long request timeout: success must not wait for a reply.
			c, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return tt.reply },
				func(cfg *Config) { cfg.RequestTimeout = time.Minute })
			start := time.Now()
			err := c.Typing(context.Background(), "c1")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Typing took %v", d)
			}
			var pe *protocol.Error
			switch {
			case tt.name == "no puback":
				if !errors.Is(err, ErrNoReply) {
					t.Errorf("err = %v, want ErrNoReply", err)
				}
			case tt.want == "":
				if err != nil {
					t.Errorf("err = %v", err)
				}
			case !errors.As(err, &pe) || pe.Code != tt.want:
				t.Errorf("err = %v, want code %s", err, tt.want)
			}
			reqs := fb.requests(protocol.OpTyping)
			if len(reqs) != 1 || reqs[0].Conv != "c1" {
				t.Errorf("typing requests %+v, want one, not retried", reqs)
			}
		})
	}
}

// notices records the handlers' calls in order.
type notices struct {
	mu    sync.Mutex
	calls []string
}

func (n *notices) add(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf(format, args...))
}

func (n *notices) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.calls)
}

func TestInboxNotices(t *testing.T) {
	n := &notices{}
	_, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return ok() }, func(cfg *Config) {
		cfg.OnMessage = func(m protocol.Message) { n.add("message %s/%d", m.Conv, m.Seq) }
		cfg.OnReceipt = func(r protocol.Receipt) { n.add("receipt %s %s %d/%d", r.Conv, r.User, r.Delivered, r.Read) }
		cfg.OnPresence = func(p protocol.Presence) { n.add("presence %s %v %d", p.User, p.Online, p.LastSeen) }
		cfg.OnTyping = func(ty protocol.Typing) { n.add("typing %s %s %d", ty.Conv, ty.User, ty.TTL) }
	})
	inbox := protocol.InboxTopic("alice")
	m := msg("c1", 1)
	fb.push(inbox, protocol.Event{Type: protocol.EvTyping, Typing: &protocol.Typing{Conv: "c1", User: "bob", TTL: 5000}})
	fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &m})
	fb.push(inbox, protocol.Event{Type: protocol.EvReceipt, Receipt: &protocol.Receipt{Conv: "c1", User: "bob", Delivered: 3, Read: 2, AllDelivered: 3, AllRead: 2}})
	fb.push(inbox, protocol.Event{Type: protocol.EvPresence, Presence: []protocol.Presence{{User: "bob", Online: true}, {User: "carol", LastSeen: 99}}})
	// Not events for the inbox handlers: on the device topic, or empty.
	fb.push(protocol.DeviceTopic("alice", "phone"), protocol.Event{Type: protocol.EvTyping, Typing: &protocol.Typing{Conv: "c1", User: "mallory"}})
	fb.push(inbox, protocol.Event{Type: protocol.EvReceipt})
	fb.push(inbox, protocol.Event{Type: protocol.EvPresence})
	fb.push(inbox, protocol.Event{Type: "reaction"})
	fb.push(inbox, protocol.Event{Type: protocol.EvTyping, Typing: &protocol.Typing{Conv: "c1", User: "bob", TTL: 5000}})

	want := []string{
		"typing c1 bob 5000",
		"message c1/1",
		"receipt c1 bob 3/2",
		"presence bob true 0",
		"presence carol false 99",
		"typing c1 bob 5000",
	}
	eventually(t, "notices", func() bool { return len(n.all()) >= len(want) })
	time.Sleep(50 * time.Millisecond) // room for a stray call
	if got := n.all(); !slices.Equal(got, want) {
		t.Errorf("calls\n%q\nwant\n%q", got, want)
	}
}

func TestUnreadFollowsEvents(t *testing.T) {
	c, fb, col := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return ok() })
	inbox := protocol.InboxTopic("alice")
	device := protocol.DeviceTopic("alice", "phone")
	live := func(conv string, seq int64, from string) {
		m := msg(conv, seq)
		m.From = from
		fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &m})
	}
	waitUnread := func(what string, want map[string]int64) {
		t.Helper()
		eventually(t, what, func() bool { return reflect.DeepEqual(c.Unread(), want) })
	}

	// The last sync page counts what this device saw before (c1 up to 5)
	// and what it did not.
	fb.push(device, protocol.Event{Type: protocol.EvSync, Msgs: []protocol.Message{msg("c2", 1), msg("c2", 2)}, Unread: []protocol.Unread{
		{Conv: "c1", LastSeq: 5, Read: 2, Count: 3},
		{Conv: "c2", LastSeq: 2, Read: 0, Count: 2},
	}})
	waitUnread("sync counts", map[string]int64{"c1": 3, "c2": 2})

	// A message the count covered, arriving late, is not counted twice;
	// newer ones from others are.
	live("c1", 5, "bob")
	live("c1", 6, "bob")
	live("c3", 1, "carol")
	eventually(t, "messages", func() bool { return len(col.seqs()) == 5 })
	waitUnread("live messages", map[string]int64{"c1": 4, "c2": 2, "c3": 1})
	// alice wrote in c2 on another device: she has read it.
	live("c2", 3, "alice")
	waitUnread("own message", map[string]int64{"c1": 4, "c3": 1})

	// Another device of alice's read c1 up to 5: only 6 is left.
	fb.push(inbox, protocol.Event{Type: protocol.EvReceipt, Receipt: &protocol.Receipt{Conv: "c1", User: "alice", Delivered: 6, Read: 5}})
	// bob reading is no news for alice's counts.
	fb.push(inbox, protocol.Event{Type: protocol.EvReceipt, Receipt: &protocol.Receipt{Conv: "c3", User: "bob", Delivered: 1, Read: 1}})
	live("c3", 2, "carol") // a marker: both receipts are handled before it
	waitUnread("own receipt", map[string]int64{"c1": 1, "c3": 2})

	// The next sync's count wins: conversations it leaves out have nothing
	// unread (read elsewhere while this device was away).
	fb.push(device, protocol.Event{Type: protocol.EvSync, Unread: []protocol.Unread{{Conv: "c3", LastSeq: 4, Read: 1, Count: 3}}})
	waitUnread("second sync", map[string]int64{"c3": 3})
}

func TestUnreadCounts(t *testing.T) {
	m := func(conv string, seq int64, from string) protocol.Message {
		return protocol.Message{Conv: conv, Seq: seq, From: from, Body: json.RawMessage(`{}`)}
	}
	uc := newUnreadCounts()
	check := func(step string, want map[string]int64) {
		t.Helper()
		if got := uc.counts(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v, want %v", step, got, want)
		}
	}
	check("empty", map[string]int64{})

	// New conversation, nothing known: messages from others count.
	uc.message(m("a", 1, "bob"), "alice")
	uc.message(m("a", 1, "bob"), "alice") // redelivered
	uc.message(m("a", 2, ""), "alice")    // system message
	check("live", map[string]int64{"a": 2})
	// The user's own message: she has read everything up to it.
	uc.message(m("a", 3, "alice"), "alice")
	check("own message", map[string]int64{})

	// The broker's count replaces what it covers and keeps what is newer.
	uc.message(m("a", 4, "bob"), "alice")
	uc.message(m("a", 6, "bob"), "alice")
	uc.set("a", 3, 5, 2)
	check("set", map[string]int64{"a": 3})
	// An older count (a reply that crossed messages) only moves read.
	uc.set("a", 4, 4, 0)
	check("stale set", map[string]int64{"a": 2})

	// Reading part of the broker's count caps it by what is left.
	uc.markRead("a", 5)
	check("read into the count", map[string]int64{"a": 1})
	uc.markRead("a", 2) // backwards: ignored
	check("read backwards", map[string]int64{"a": 1})
	uc.markRead("a", 100)
	check("read all", map[string]int64{})
	uc.message(m("a", 6, "bob"), "alice") // read already
	check("read message again", map[string]int64{})
	uc.message(m("a", 101, "bob"), "alice")
	check("new message", map[string]int64{"a": 1})
	uc.sent("a", 102)
	check("sent", map[string]int64{})

	// replace: listed conversations take the counts, others drop to 0.
	uc.message(m("b", 9, "bob"), "alice")
	uc.replace([]protocol.Unread{{Conv: "c", LastSeq: 10, Read: 7, Count: 3}})
	check("replace", map[string]int64{"c": 3})
	uc.message(m("b", 10, "bob"), "alice")
	check("after replace", map[string]int64{"b": 1, "c": 3})

	// Reading up to a seq the client has not seen stops at the newest it
	// knows of; a conversation it knows nothing of is left alone.
	uc.markReadKnown("b", 1000)
	uc.markReadKnown("z", 5)
	check("read beyond the newest", map[string]int64{"c": 3})
	uc.message(m("b", 11, "bob"), "alice")
	check("after reading beyond the newest", map[string]int64{"b": 1, "c": 3})
	if _, ok := uc.convs["z"]; ok {
		t.Error("unknown conversation recorded")
	}

	// Many unread messages stay counted when folded into the count.
	for seq := int64(11); seq <= 11+maxLiveUnread; seq++ {
		uc.message(m("c", seq, "bob"), "alice")
	}
	if u := uc.convs["c"]; len(u.live) > maxLiveUnread {
		t.Fatalf("%d live seqs kept", len(u.live))
	}
	check("folded", map[string]int64{"b": 1, "c": 3 + maxLiveUnread + 1})
	uc.markRead("c", 10+maxLiveUnread)
	check("folded, read", map[string]int64{"b": 1, "c": 1})
}

func TestStatusOf(t *testing.T) {
	r := protocol.Receipt{Conv: "c", User: "alice", AllDelivered: 7, AllRead: 5}
	for seq, want := range map[int64]Status{4: StatusRead, 5: StatusRead, 6: StatusDelivered, 7: StatusDelivered, 8: StatusSent} {
		if got := StatusOf(seq, r); got != want {
			t.Errorf("StatusOf(%d) = %v, want %v", seq, got, want)
		}
	}
	if s := []string{StatusSent.String(), StatusDelivered.String(), StatusRead.String(), Status(0).String()}; !slices.Equal(s, []string{"sent", "delivered", "read", "unknown"}) {
		t.Errorf("names %v", s)
	}
}

func TestReceiptFor(t *testing.T) {
	group := []protocol.Receipt{
		{Conv: "g", User: "alice", Delivered: 9, Read: 9},
		{Conv: "g", User: "bob", Delivered: 8, Read: 6},
		{Conv: "g", User: "carol", Delivered: 7, Read: 7},
	}
	tests := []struct {
		name     string
		user     string
		receipts []protocol.Receipt
		want     protocol.Receipt
	}{
		{"group", "alice", group, protocol.Receipt{Conv: "g", User: "alice", Delivered: 9, Read: 9, AllDelivered: 7, AllRead: 6}},
		{"other member", "carol", group, protocol.Receipt{Conv: "g", User: "carol", Delivered: 7, Read: 7, AllDelivered: 8, AllRead: 6}},
		// Hidden reads are 0: nothing is read by all.
		{"hidden read", "alice", []protocol.Receipt{{Conv: "d", User: "alice", Delivered: 3, Read: 3}, {Conv: "d", User: "bob", Delivered: 3}},
			protocol.Receipt{Conv: "d", User: "alice", Delivered: 3, Read: 3, AllDelivered: 3}},
		{"alone", "alice", []protocol.Receipt{{Conv: "g", User: "alice", Delivered: 4, Read: 4}}, protocol.Receipt{Conv: "g", User: "alice", Delivered: 4, Read: 4}},
	}
	for _, tt := range tests {
		if got := ReceiptFor(tt.user, tt.receipts); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got := StatusOf(7, ReceiptFor("alice", group)); got != StatusDelivered {
		t.Errorf("status of 7 in the group: %v", got)
	}
}
