package broker_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

func TestDirectMessageBothOnline(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice2 := dialV3(t, b, "alice", "laptop", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	for _, c := range []*v3{alice, alice2, bob} {
		c.next(protocol.EvSync) // the push on subscribe: nothing missed yet
	}

	sent := alice.send(protocol.Request{ID: "r1", To: "bob", CMID: "m1", Body: text("hi bob")})
	if sent.Seq != 1 || sent.Conv == "" || sent.ID == "" || sent.CMID != "m1" || sent.Dup {
		t.Fatalf("sent = %+v", sent)
	}
	for _, c := range []*v3{bob, alice, alice2} {
		ev := c.next(protocol.EvMessage)
		m := ev.Msg
		if m.Conv != sent.Conv || m.Seq != 1 || m.From != "alice" || m.Dev != "phone" || bodyText(t, *m) != "hi bob" || m.ID != sent.ID {
			t.Fatalf("%s/%s got %+v", c.user, c.device, m)
		}
	}
	reply := bob.send(protocol.Request{Conv: sent.Conv, CMID: "b1", Body: text("hi alice")})
	if reply.Seq != 2 || reply.Conv != sent.Conv {
		t.Fatalf("reply = %+v", reply)
	}
	for _, c := range []*v3{alice, alice2, bob} {
		if m := c.next(protocol.EvMessage).Msg; m.Seq != 2 || m.From != "bob" {
			t.Fatalf("%s/%s got %+v", c.user, c.device, m)
		}
	}
	bob.quiet(300*time.Millisecond, protocol.EvMessage, protocol.EvSent)
}

func TestOfflineDeliveryInOrder(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	const n = 230 // more than two sync pages
	var conv string
	for i := 1; i <= n; i++ {
		s := alice.send(protocol.Request{To: "bob", CMID: fmt.Sprintf("m%d", i), Body: text(fmt.Sprintf("msg %d", i))})
		if s.Seq != int64(i) {
			t.Fatalf("message %d got seq %d", i, s.Seq)
		}
		conv = s.Conv
	}

	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	var got []protocol.Message
	page := bob.next(protocol.EvSync)
	for {
		got = append(got, page.Msgs...)
		if !page.More {
			break
		}
		last := page.Msgs[len(page.Msgs)-1]
		bob.request(protocol.OpSync, protocol.Request{ID: "s", Ack: []protocol.Cursor{{Conv: conv, From: page.Msgs[0].Seq - 1, Seq: last.Seq}}})
		page = bob.next(protocol.EvSync)
	}
	if len(got) != n {
		t.Fatalf("synced %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m.Seq != int64(i+1) || bodyText(t, m) != fmt.Sprintf("msg %d", i+1) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	// Acknowledge the last page: a reconnect then has nothing to sync.
	bob.request(protocol.OpAck, protocol.Request{Ack: []protocol.Cursor{{Conv: conv, Seq: n}}})
	bob.next(protocol.EvOK)
	bob.c.Disconnect(0)
	bob = dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	if ev := bob.next(protocol.EvSync); len(ev.Msgs) != 0 || ev.More {
		t.Fatalf("after ack, sync pushed %d messages (more=%v)", len(ev.Msgs), ev.More)
	}
	// Another device of bob's has its own cursor and gets everything.
	tablet := dialV3(t, b, "bob", "tablet", "pw-bob", v3Options{})
	if ev := tablet.next(protocol.EvSync); len(ev.Msgs) != protocol.DefaultSyncLimit || !ev.More {
		t.Fatalf("new device got %d messages (more=%v)", len(ev.Msgs), ev.More)
	}
}

func TestAckAfterGapDoesNotSkip(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	var conv string
	for i := 1; i <= 3; i++ {
		conv = alice.send(protocol.Request{To: "bob", CMID: fmt.Sprintf("m%d", i), Body: text("x")}).Conv
	}
	// At QoS 0 the pushed sync page gets no PUBACK, which would otherwise
	// acknowledge it 200 ms later and race the acks below (seen on a
	// loaded machine).
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{noSub: true})
	if tok := bob.c.Subscribe(protocol.DeviceTopic("bob", "phone"), 0, bob.handler); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	bob.next(protocol.EvSync)
	// bob claims (2,3] without having 1..2: the cursor must not move.
	bob.request(protocol.OpSync, protocol.Request{Ack: []protocol.Cursor{{Conv: conv, From: 2, Seq: 3}}})
	if ev := bob.next(protocol.EvSync); len(ev.Msgs) != 3 {
		t.Fatalf("after a gapped ack, sync returned %d messages, want 3", len(ev.Msgs))
	}
	bob.request(protocol.OpSync, protocol.Request{Ack: []protocol.Cursor{{Conv: conv, From: 0, Seq: 2}}})
	if ev := bob.next(protocol.EvSync); len(ev.Msgs) != 1 || ev.Msgs[0].Seq != 3 {
		t.Fatalf("after ack up to 2, sync returned %+v", ev.Msgs)
	}
}

func TestGroupOfThree(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob", "carol", "dave")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	carol := dialV3(t, b, "carol", "phone", "pw-carol", v3Options{})
	dave := dialV3(t, b, "dave", "phone", "pw-dave", v3Options{})

	alice.request(protocol.OpGroupCreate, protocol.Request{ID: "g", Title: "Trip", Members: []string{"bob", "carol"}})
	ev := alice.next(protocol.EvConversation, protocol.EvError)
	if ev.Type != protocol.EvConversation || ev.Req != "g" || len(ev.Conv.Members) != 3 || ev.Conv.Kind != "group" {
		t.Fatalf("group.create: %+v", ev)
	}
	conv := ev.Conv.ID
	for _, c := range []*v3{alice, bob, carol} {
		if m := c.next(protocol.EvMessage).Msg; m.Seq != 1 || m.Conv != conv {
			t.Fatalf("%s: creation note %+v", c.user, m)
		}
	}
	s := bob.send(protocol.Request{Conv: conv, CMID: "hello", Body: text("hello all")})
	for _, c := range []*v3{alice, bob, carol} {
		if m := c.next(protocol.EvMessage).Msg; m.Seq != s.Seq || bodyText(t, *m) != "hello all" {
			t.Fatalf("%s: %+v", c.user, m)
		}
	}
	dave.quiet(200*time.Millisecond, protocol.EvMessage)

	// A non-member can neither send nor read.
	dave.request(protocol.OpSend, protocol.Request{Conv: conv, CMID: "x", Body: text("let me in")})
	if ev := dave.next(protocol.EvError, protocol.EvSent); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeNotMember {
		t.Fatalf("non-member send: %+v", ev)
	}
	dave.request(protocol.OpHistory, protocol.Request{Conv: conv})
	if ev := dave.next(protocol.EvError, protocol.EvHistory); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeNotMember {
		t.Fatalf("non-member history: %+v", ev)
	}

	// Members (not admins) cannot add; the owner can. The new member sees
	// messages from the note that added them on, not earlier ones.
	bob.request(protocol.OpGroupAdd, protocol.Request{Conv: conv, User: "dave"})
	if ev := bob.next(protocol.EvError, protocol.EvConversation); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeForbidden {
		t.Fatalf("member adds: %+v", ev)
	}
	alice.request(protocol.OpGroupAdd, protocol.Request{Conv: conv, User: "dave"})
	if ev := alice.next(protocol.EvConversation, protocol.EvError); ev.Type != protocol.EvConversation || len(ev.Conv.Members) != 4 {
		t.Fatalf("owner adds: %+v", ev)
	}
	if m := dave.next(protocol.EvMessage).Msg; m.Seq != 3 {
		t.Fatalf("dave's first message is seq %d, want the note (3)", m.Seq)
	}
	dave.request(protocol.OpHistory, protocol.Request{Conv: conv})
	if ev := dave.next(protocol.EvHistory, protocol.EvError); ev.Type != protocol.EvHistory || len(ev.Msgs) != 1 || ev.Msgs[0].Seq != 3 {
		t.Fatalf("dave's history: %+v", ev)
	}

	// Removal: carol learns it, then gets nothing more.
	alice.request(protocol.OpGroupRemove, protocol.Request{Conv: conv, User: "carol"})
	alice.next(protocol.EvConversation)
	for _, seq := range []int64{3, 4} { // dave added, carol removed
		if m := carol.next(protocol.EvMessage).Msg; m.Seq != seq {
			t.Fatalf("carol got seq %d, want %d", m.Seq, seq)
		}
	}
	alice.send(protocol.Request{Conv: conv, CMID: "after", Body: text("carol is gone")})
	carol.quiet(300*time.Millisecond, protocol.EvMessage)
	carol.request(protocol.OpSend, protocol.Request{Conv: conv, CMID: "y", Body: text("wait")})
	if ev := carol.next(protocol.EvError, protocol.EvSent); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeNotMember {
		t.Fatalf("removed member send: %+v", ev)
	}
	// Nor does she see the group as it is now: no receipts, no member
	// list, and the conversation ends where her membership did.
	carol.request(protocol.OpReceipts, protocol.Request{Conv: conv})
	if ev := carol.next(protocol.EvError, protocol.EvReceipts); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeNotMember {
		t.Fatalf("removed member receipts: %+v", ev)
	}
	carol.request(protocol.OpConversation, protocol.Request{Conv: conv})
	if ev := carol.next(protocol.EvConversation, protocol.EvError); ev.Type != protocol.EvConversation || len(ev.Conv.Members) != 0 || ev.Conv.LastSeq != 4 {
		t.Fatalf("removed member's view of the conversation: %+v", ev.Conv)
	}
}

func TestRetransmissionStoredOnce(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	first := alice.send(protocol.Request{To: "bob", CMID: "same", Body: text("once")})
	again := alice.send(protocol.Request{Conv: first.Conv, CMID: "same", Body: text("once")})
	if !again.Dup || again.Seq != first.Seq || again.ID != first.ID {
		t.Fatalf("retransmission: first %+v, again %+v", first, again)
	}
	next := alice.send(protocol.Request{Conv: first.Conv, CMID: "other", Body: text("twice")})
	if next.Seq != first.Seq+1 {
		t.Fatalf("next seq %d, want %d (a duplicate consumed a seq)", next.Seq, first.Seq+1)
	}
}

func TestBadInputGetsClearErrors(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.MaxTextBytes = 100 }))
	users(t, b, "alice", "bob", "carol")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	conv := alice.send(protocol.Request{To: "bob", CMID: "ok", Body: text("fine")}).Conv
	unknownConv := "01JDZZZZZZZZZZZZZZZZZZZZZZ"

	tests := []struct {
		name    string
		op      protocol.Op
		payload string
		code    protocol.Code
	}{
		{"not json", protocol.OpSend, `hello`, protocol.CodeBadRequest},
		{"trailing data", protocol.OpSend, `{"v":1}{}`, protocol.CodeBadRequest},
		{"unknown field", protocol.OpSend, `{"v":1,"to":"bob","cmid":"a","body":{"type":"text","text":"x"},"x":1}`, protocol.CodeBadRequest},
		{"wrong version", protocol.OpSend, `{"v":2,"to":"bob","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeBadVersion},
		{"no cmid", protocol.OpSend, `{"v":1,"to":"bob","body":{"type":"text","text":"x"}}`, protocol.CodeBadRequest},
		{"both conv and to", protocol.OpSend, `{"v":1,"to":"bob","conv":"` + conv + `","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeBadRequest},
		{"empty text", protocol.OpSend, `{"v":1,"to":"bob","cmid":"a","body":{"type":"text","text":""}}`, protocol.CodeBadRequest},
		{"system body", protocol.OpSend, `{"v":1,"to":"bob","cmid":"a","body":{"type":"system","event":"member_added"}}`, protocol.CodeBadRequest},
		{"oversize text", protocol.OpSend, `{"v":1,"to":"bob","cmid":"a","body":{"type":"text","text":"` + string(make101()) + `"}}`, protocol.CodeTooLarge},
		{"unknown conversation", protocol.OpSend, `{"v":1,"conv":"` + unknownConv + `","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeNotFound},
		{"garbage conversation id", protocol.OpSend, `{"v":1,"conv":"../../etc","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeBadRequest},
		{"unknown user", protocol.OpSend, `{"v":1,"to":"nobody","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeNotFound},
		{"to self", protocol.OpSend, `{"v":1,"to":"alice","cmid":"a","body":{"type":"text","text":"x"}}`, protocol.CodeBadRequest},
		{"unknown op", protocol.Op("launch"), `{"v":1}`, protocol.CodeUnknownOp},
		{"field of another op", protocol.OpSync, `{"v":1,"conv":"` + conv + `"}`, protocol.CodeBadRequest},
		{"bad limit", protocol.OpSync, `{"v":1,"limit":100000}`, protocol.CodeBadRequest},
		{"bad ack", protocol.OpAck, `{"v":1,"ack":[{"conv":"` + conv + `","from":5,"seq":2}]}`, protocol.CodeBadRequest},
		{"history unknown conv", protocol.OpHistory, `{"v":1,"conv":"` + unknownConv + `"}`, protocol.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 3.1.1: a permanent error is acknowledged (no retransmission).
			if !alice.command(tt.op, []byte(tt.payload)) {
				t.Fatal("no PUBACK for a permanent error")
			}
			ev := alice.next(protocol.EvError, protocol.EvSent, protocol.EvSync, protocol.EvOK, protocol.EvHistory)
			if ev.Type != protocol.EvError || ev.Error.Code != tt.code || ev.Error.Message == "" {
				t.Fatalf("got %+v (error %+v), want error %s", ev, ev.Error, tt.code)
			}
		})
	}
	// Nothing of that was stored: the conversation still has one message.
	c, err := b.Store().GetConversation(t.Context(), conv)
	if err != nil || c.LastSeq != 1 {
		t.Fatalf("conversation after bad input: %+v, %v", c, err)
	}
	if next := alice.send(protocol.Request{Conv: conv, CMID: "ok2", Body: text("still fine")}); next.Seq != 2 {
		t.Fatalf("next seq %d, want 2", next.Seq)
	}
}

func make101() []byte {
	b := make([]byte, 101)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

// When the owner leaves, the longest-standing admin becomes owner first;
// everyone learns both changes, in that order.
func TestOwnerLeavesHandsOver(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob", "carol")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	carol := dialV3(t, b, "carol", "phone", "pw-carol", v3Options{})
	alice.request(protocol.OpGroupCreate, protocol.Request{Title: "g", Members: []string{"bob", "carol"}})
	conv := alice.next(protocol.EvConversation).Conv.ID
	alice.request(protocol.OpGroupRole, protocol.Request{Conv: conv, User: "carol", Role: "admin"})
	alice.next(protocol.EvConversation)

	alice.request(protocol.OpGroupLeave, protocol.Request{Conv: conv})
	ev := alice.next(protocol.EvConversation, protocol.EvError)
	if ev.Type != protocol.EvConversation {
		t.Fatalf("leave: %+v", ev.Error)
	}
	roles := map[string]string{}
	for _, m := range ev.Conv.Members {
		roles[m.User] = m.Role
	}
	if len(roles) != 2 || roles["carol"] != protocol.RoleOwner || roles["bob"] != protocol.RoleMember {
		t.Fatalf("members after the owner left: %+v", ev.Conv.Members)
	}
	var events []string
	for len(events) < 4 {
		var body protocol.Body
		m := carol.next(protocol.EvMessage).Msg
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatal(err)
		}
		events = append(events, body.Event)
	}
	want := []string{protocol.SysGroupCreated, protocol.SysRoleChanged, protocol.SysRoleChanged, protocol.SysMemberLeft}
	if !slices.Equal(events, want) {
		t.Fatalf("carol saw %v, want %v", events, want)
	}
}
