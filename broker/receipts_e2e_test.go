package broker_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// nextReceipt returns the next receipt event about user.
func (c *v3) nextReceipt(user string) protocol.Receipt {
	c.t.Helper()
	for {
		ev := c.next(protocol.EvReceipt)
		if ev.Receipt.User == user {
			return *ev.Receipt
		}
	}
}

func TestDeliveredAndReadReceiptsDirect(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bobTablet := dialV3(t, b, "bob", "tablet", "pw-bob", v3Options{})

	s := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi")})
	bob.next(protocol.EvMessage) // bob's client PUBACKs the delivery: delivered
	r := alice.nextReceipt("bob")
	if r.Conv != s.Conv || r.Delivered != 1 || r.Read != 0 || r.AllDelivered != 1 {
		t.Fatalf("delivered receipt: %+v", r)
	}

	bob.request(protocol.OpRead, protocol.Request{Conv: s.Conv, Seq: 1})
	bob.next(protocol.EvOK)
	if r := alice.nextReceipt("bob"); r.Read != 1 || r.AllRead != 1 {
		t.Fatalf("read receipt: %+v", r)
	}
	// bob's other device learns the read position (unread counts agree).
	if r := bobTablet.nextReceipt("bob"); r.Read != 1 {
		t.Fatalf("own read receipt on the other device: %+v", r)
	}
	// Reading again is idempotent: no second receipt.
	bob.request(protocol.OpRead, protocol.Request{Conv: s.Conv, Seq: 1})
	bob.next(protocol.EvOK)
	alice.quiet(300*time.Millisecond, protocol.EvReceipt)

	alice.request(protocol.OpReceipts, protocol.Request{Conv: s.Conv})
	ev := alice.next(protocol.EvReceipts)
	got := map[string]protocol.Receipt{}
	for _, r := range ev.Receipts {
		got[r.User] = r
	}
	if got["bob"].Delivered != 1 || got["bob"].Read != 1 {
		t.Fatalf("receipts: %+v", ev.Receipts)
	}
}

func TestReceiptsSurviveRestart(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	s := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi")})
	bob.next(protocol.EvMessage)
	bob.request(protocol.OpRead, protocol.Request{Conv: s.Conv, Seq: 1})
	bob.next(protocol.EvOK)
	alice.nextReceipt("bob")

	b.Restart(t)
	alice = dialV3(t, b, "alice", "phone2", "pw-alice", v3Options{})
	alice.request(protocol.OpReceipts, protocol.Request{Conv: s.Conv})
	for _, r := range alice.next(protocol.EvReceipts).Receipts {
		if r.User == "bob" && (r.Delivered != 1 || r.Read != 1) {
			t.Fatalf("after restart: %+v", r)
		}
	}
}

func TestGroupReceiptsAllDelivered(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob", "carol")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	alice.request(protocol.OpGroupCreate, protocol.Request{Title: "g", Members: []string{"bob", "carol"}})
	conv := alice.next(protocol.EvConversation).Conv.ID
	s := alice.send(protocol.Request{Conv: conv, CMID: "m1", Body: text("hi all")})

	// bob (online) gets it; carol (offline) does not yet.
	for {
		r := alice.nextReceipt("bob")
		if r.Delivered >= s.Seq {
			if r.AllDelivered >= s.Seq {
				t.Fatalf("all delivered while carol is offline: %+v", r)
			}
			break
		}
	}
	carol := dialV3(t, b, "carol", "phone", "pw-carol", v3Options{})
	page := carol.next(protocol.EvSync) // the push; its PUBACK is the delivery
	if len(page.Msgs) == 0 {
		t.Fatal("carol synced nothing")
	}
	for {
		r := alice.nextReceipt("carol")
		if r.AllDelivered >= s.Seq {
			break
		}
	}
	bob.quiet(100 * time.Millisecond) // keep bob connected until here
}

func TestPresenceOnlineOfflineLastSeen(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob", "carol")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	befriend(t, b, "alice", "bob")

	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	if p := nextPresence(alice, "bob"); !p.Online {
		t.Fatalf("bob connected: %+v", p)
	}
	// A second device and a takeover of the first keep bob online.
	laptop := dialV3(t, b, "bob", "laptop", "pw-bob", v3Options{})
	dialV3(t, b, "bob", "phone", "pw-bob", v3Options{}) // takes over bob/phone
	_ = bob
	laptop.c.Disconnect(0)
	alice.quiet(500*time.Millisecond, protocol.EvPresence)

	b.Restart(t) // everyone disconnected: bob goes offline, last seen stored
	alice = dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.request(protocol.OpPresence, protocol.Request{Users: []string{"bob", "carol", "nobody"}})
	ps := alice.next(protocol.EvPresence).Presence
	if len(ps) != 3 || ps[0].User != "bob" || ps[0].Online || ps[0].LastSeen == 0 || ps[0].Hidden {
		t.Fatalf("bob after restart: %+v", ps)
	}
	if !ps[1].Hidden || !ps[2].Hidden {
		t.Fatalf("carol (no shared conversation) and an unknown user must be hidden: %+v", ps)
	}
}

func nextPresence(c *v3, user string) protocol.Presence {
	c.t.Helper()
	for {
		for _, p := range c.next(protocol.EvPresence).Presence {
			if p.User == user {
				return p
			}
		}
	}
}

func TestPresenceKeepaliveExpiry(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	befriend(t, b, "alice", "bob")

	// bob connects with a 1 s keepalive and then goes silent, no will.
	silent := dialSilent(t, b.MQTTAddr, "bob/phone", "bob", "pw-bob", 1)
	if p := nextPresence(alice, "bob"); !p.Online {
		t.Fatalf("bob connected: %+v", p)
	}
	start := time.Now()
	if p := nextPresence(alice, "bob"); p.Online || p.LastSeen == 0 {
		t.Fatalf("bob silent: %+v", p)
	}
	t.Logf("offline %v after going silent", time.Since(start))
	silent.Close()
}

func TestPresencePrivacy(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	befriend(t, b, "alice", "bob")
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	nextPresence(alice, "bob")

	bob.request(protocol.OpSettings, protocol.Request{Presence: "nobody"})
	if s := bob.next(protocol.EvSettings).Settings; s.Presence != "nobody" || !s.ReadReceipts {
		t.Fatalf("settings: %+v", s)
	}
	alice.request(protocol.OpPresence, protocol.Request{Users: []string{"bob"}})
	if p := alice.next(protocol.EvPresence).Presence[0]; !p.Hidden || p.Online || p.LastSeen != 0 {
		t.Fatalf("hidden bob: %+v", p)
	}
	bob.c.Disconnect(0)
	alice.quiet(500*time.Millisecond, protocol.EvPresence)
}

func TestReadReceiptsOffHidesBothWays(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	off := false
	bob.request(protocol.OpSettings, protocol.Request{ReadReceipts: &off})
	bob.next(protocol.EvSettings)

	s := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi")})
	bob.next(protocol.EvMessage)
	alice.nextReceipt("bob") // delivered still shows
	bob.request(protocol.OpRead, protocol.Request{Conv: s.Conv, Seq: 1})
	bob.next(protocol.EvOK)
	alice.quiet(300*time.Millisecond, protocol.EvReceipt)

	// And bob does not see alice's reads.
	r := bob.send(protocol.Request{Conv: s.Conv, CMID: "b1", Body: text("yo")})
	alice.next(protocol.EvMessage)
	alice.request(protocol.OpRead, protocol.Request{Conv: s.Conv, Seq: r.Seq})
	alice.next(protocol.EvOK)
	bob.request(protocol.OpReceipts, protocol.Request{Conv: s.Conv})
	for _, rc := range bob.next(protocol.EvReceipts).Receipts {
		if rc.User == "alice" && rc.Read != 0 {
			t.Fatalf("bob sees alice's read position: %+v", rc)
		}
	}
	alice.request(protocol.OpReceipts, protocol.Request{Conv: s.Conv})
	for _, rc := range alice.next(protocol.EvReceipts).Receipts {
		if rc.User == "bob" && rc.Read != 0 {
			t.Fatalf("alice sees bob's read position: %+v", rc)
		}
	}
}

func TestTypingIsEphemeralAndRateLimited(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	s := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi")})

	alice.request(protocol.OpTyping, protocol.Request{Conv: s.Conv})
	if ty := bob.next(protocol.EvTyping).Typing; ty.User != "alice" || ty.Conv != s.Conv || ty.TTL <= 0 {
		t.Fatalf("typing: %+v", ty)
	}
	alice.request(protocol.OpTyping, protocol.Request{Conv: s.Conv})
	if ev := alice.next(protocol.EvError); ev.Error.Code != protocol.CodeRateLimited {
		t.Fatalf("second typing: %+v", ev.Error)
	}
	alice.quiet(100*time.Millisecond, protocol.EvTyping) // not echoed to the typist
}

func TestUnreadInSync(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	var conv string
	for _, id := range []string{"1", "2", "3"} {
		conv = alice.send(protocol.Request{To: "bob", CMID: id, Body: text("x")}).Conv
	}
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	page := bob.next(protocol.EvSync)
	if page.More || len(page.Unread) != 1 || page.Unread[0].Conv != conv || page.Unread[0].Count != 3 {
		t.Fatalf("unread: %+v", page.Unread)
	}
	bob.request(protocol.OpRead, protocol.Request{Conv: conv, Seq: 2})
	bob.next(protocol.EvOK)
	bob.request(protocol.OpConversations, protocol.Request{})
	if cs := bob.next(protocol.EvConversations).Convs; len(cs) != 1 || cs[0].Unread != 1 || cs[0].Read != 2 {
		t.Fatalf("conversations: %+v", cs)
	}
}

// dialSilent connects with MQTT 3.1.1 and a keepalive, then never sends
// another byte, as a device that lost its network would.
func dialSilent(t *testing.T, addr, clientID, user, password string, keepalive uint16) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4, 0xC2, byte(keepalive>>8), byte(keepalive)) // level 4; user, password, clean session
	body = append(body, str(clientID)...)
	body = append(body, str(user)...)
	body = append(body, str(password)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	ack := make([]byte, 4)
	if _, err := bufio.NewReader(conn).Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x: %v", ack, err)
	}
	return conn
}

// A user with three devices stays online until the last one goes, and a
// user who shares no conversation with them hears nothing of it.
func TestPresenceThreeDevicesAndNonContacts(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob", "carol")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	befriend(t, b, "alice", "bob")
	carol := dialV3(t, b, "carol", "phone", "pw-carol", v3Options{})

	var devices []*v3
	for _, d := range []string{"phone", "laptop", "tablet"} {
		devices = append(devices, dialV3(t, b, "bob", d, "pw-bob", v3Options{}))
	}
	if p := nextPresence(alice, "bob"); !p.Online {
		t.Fatalf("bob connected: %+v", p)
	}
	for _, d := range devices[:2] {
		d.c.Disconnect(0)
	}
	alice.quiet(300*time.Millisecond, protocol.EvPresence)
	devices[2].c.Disconnect(0)
	if p := nextPresence(alice, "bob"); p.Online || p.LastSeen == 0 {
		t.Fatalf("bob's last device gone: %+v", p)
	}
	carol.quiet(200*time.Millisecond, protocol.EvPresence)
}

// Acknowledging the same messages again (a redelivery) produces no second
// receipt and does not move anything backwards.
func TestReceiptsIdempotentUnderRedelivery(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	s := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi")})
	bob.next(protocol.EvMessage)
	if r := alice.nextReceipt("bob"); r.Delivered != 1 {
		t.Fatalf("first delivery: %+v", r)
	}
	for range 3 {
		bob.request(protocol.OpAck, protocol.Request{Ack: []protocol.Cursor{{Conv: s.Conv, Seq: 1}}})
		bob.next(protocol.EvOK)
	}
	alice.quiet(400*time.Millisecond, protocol.EvReceipt)
	alice.request(protocol.OpReceipts, protocol.Request{Conv: s.Conv})
	for _, r := range alice.next(protocol.EvReceipts).Receipts {
		if r.User == "bob" && r.Delivered != 1 {
			t.Fatalf("bob after redelivery: %+v", r)
		}
	}
}

// befriend makes x and y contacts: a direct conversation both have written
// in (presence goes only to users one has engaged with).
func befriend(t *testing.T, b *brokertest.Broker, x, y string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	c, _, err := b.Store().DirectConversation(ctx, x, y, ulid.Make().String(), now)
	if err != nil {
		t.Fatal(err)
	}
	var batch []storage.NewMessage
	for _, u := range []string{x, y} {
		batch = append(batch, storage.NewMessage{ConvID: c.ID, ID: ulid.Make().String(), SenderID: u, SenderDevice: "setup",
			ClientMsgID: "hello-" + u, Kind: storage.MsgText, Body: []byte(`{"type":"text","text":"hello"}`), CreatedAt: now})
	}
	res, err := b.Store().AppendMessages(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}
