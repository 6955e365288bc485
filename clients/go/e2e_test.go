package msgr_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker/brokertest"
	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

const password = "secret-password"

// inbox collects what a client's OnMessage receives.
type inbox struct {
	mu   sync.Mutex
	msgs []protocol.Message
	news chan struct{}
}

func newInbox() *inbox { return &inbox{news: make(chan struct{}, 1)} }

func (in *inbox) add(m protocol.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.news <- struct{}{}:
	default:
	}
}

func (in *inbox) all() []protocol.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// texts returns the texts of the text messages received in conv.
func (in *inbox) texts(t testing.TB, conv string) []string {
	t.Helper()
	var ts []string
	for _, m := range in.all() {
		if m.Conv != conv {
			continue
		}
		if b := body(t, m); b.Type == protocol.BodyText {
			ts = append(ts, b.Text)
		}
	}
	return ts
}

// wait waits until cond holds for the messages received so far.
func (in *inbox) wait(t testing.TB, what string, cond func([]protocol.Message) bool) []protocol.Message {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		msgs := in.all()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-in.news:
		case <-time.After(50 * time.Millisecond):
		case <-timeout:
			t.Fatalf("timed out waiting for %s; have %d messages", what, len(msgs))
		}
	}
}

func body(t testing.TB, m protocol.Message) protocol.Body {
	t.Helper()
	var b protocol.Body
	if err := json.Unmarshal(m.Body, &b); err != nil {
		t.Fatalf("message body %s: %v", m.Body, err)
	}
	return b
}

func logger(t testing.TB) *slog.Logger {
	if os.Getenv("MSGR_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("client", t.Name())
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects user/device; the client is closed when the test ends.
func dial(t testing.TB, b *brokertest.Broker, user, device string, opts ...func(*msgr.Config)) (*msgr.Client, *inbox) {
	t.Helper()
	in := newInbox()
	cfg := msgr.Config{
		ServerURL: "mqtt://" + b.MQTTAddr,
		User:      user,
		Device:    device,
		Password:  password,
		OnMessage: in.add,
		Logger:    logger(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := msgr.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s/%s: %v", user, device, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, in
}

func startBroker(t testing.TB, users ...string) *brokertest.Broker {
	t.Helper()
	b := brokertest.Start(t)
	for _, u := range users {
		b.AddUser(t, u, password)
	}
	return b
}

func TestE2EDirectBothOnline(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	alice, aliceIn := dial(t, b, "alice", "phone")
	_, bobIn := dial(t, b, "bob", "phone")

	sent, err := alice.SendTo(ctx, "bob", "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Seq < 1 || sent.Conv == "" || sent.Dup {
		t.Fatalf("sent = %+v", sent)
	}
	bobIn.wait(t, "bob's message", func(ms []protocol.Message) bool { return len(ms) > 0 })
	aliceIn.wait(t, "alice's own message", func(ms []protocol.Message) bool { return len(ms) > 0 })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up

	for name, in := range map[string]*inbox{"bob": bobIn, "alice": aliceIn} {
		msgs := in.all()
		if len(msgs) != 1 {
			t.Fatalf("%s received %d messages, want exactly 1: %+v", name, len(msgs), msgs)
		}
		m := msgs[0]
		if m.Conv != sent.Conv || m.Seq != sent.Seq || m.ID != sent.ID || m.From != "alice" || m.Dev != "phone" || body(t, m).Text != "hi bob" {
			t.Errorf("%s received %+v, sent %+v", name, m, sent)
		}
	}

	// The reply goes both ways in the same conversation.
	bobLaptop, _ := dial(t, b, "bob", "laptop")
	back, err := bobLaptop.Send(ctx, sent.Conv, "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	if back.Conv != sent.Conv || back.Seq != sent.Seq+1 {
		t.Fatalf("reply %+v after %+v", back, sent)
	}
	aliceIn.wait(t, "bob's reply", func(ms []protocol.Message) bool { return len(ms) == 2 })
}

func TestE2EOfflineSyncPages(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	// bob's device exists (has connected once) and goes away.
	bob, _ := dial(t, b, "bob", "phone")
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}

	alice, _ := dial(t, b, "alice", "phone")
	const n = 250
	var conv string
	for i := range n {
		sent, err := alice.SendTo(ctx, "bob", fmt.Sprintf("m%03d", i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		conv = sent.Conv
	}

	_, bobIn := dial(t, b, "bob", "phone")
	msgs := bobIn.wait(t, "250 messages", func(ms []protocol.Message) bool { return len(bobTexts(t, ms, conv)) >= n })
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%03d", i))
	}
	if got := bobTexts(t, msgs, conv); !slices.Equal(got, want) {
		t.Fatalf("bob got %d messages out of order or duplicated: %v", len(got), got)
	}
	var last int64
	for _, m := range msgs {
		if m.Conv == conv {
			if m.Seq <= last {
				t.Fatalf("seq %d after %d", m.Seq, last)
			}
			last = m.Seq
		}
	}
	// Every page was acknowledged: the device is not behind anywhere, and
	// connecting again brings nothing new.
	waitCaughtUp(t, b, "bob", "phone")
	_, again := dial(t, b, "bob", "phone")
	time.Sleep(500 * time.Millisecond)
	if n := len(again.all()); n != 0 {
		t.Fatalf("reconnected device got %d messages again", n)
	}
}

// waitCaughtUp waits until the broker's durable cursors say user's device
// has acknowledged every message.
func waitCaughtUp(t testing.TB, b *brokertest.Broker, user, device string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := b.Store().PendingConversations(context.Background(), user, device)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s still behind: %+v", user, device, pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bobTexts(t testing.TB, msgs []protocol.Message, conv string) []string {
	t.Helper()
	var ts []string
	for _, m := range msgs {
		if b := body(t, m); m.Conv == conv && b.Type == protocol.BodyText {
			ts = append(ts, b.Text)
		}
	}
	return ts
}

func TestE2EGroupOfThree(t *testing.T) {
	b := startBroker(t, "alice", "bob", "carol", "dave")
	ctx := testCtx(t)
	alice, aliceIn := dial(t, b, "alice", "phone")
	bob, bobIn := dial(t, b, "bob", "phone")
	_, carolIn := dial(t, b, "carol", "phone")
	dave, daveIn := dial(t, b, "dave", "phone")

	g, err := alice.CreateGroup(ctx, "Trip", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind != "group" || g.Title != "Trip" || g.CreatedBy != "alice" || len(g.Members) != 3 {
		t.Fatalf("group = %+v", g)
	}
	if _, err := alice.Send(ctx, g.ID, "where to?"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g.ID, "the sea"); err != nil {
		t.Fatal(err)
	}
	want := []string{"where to?", "the sea"}
	for name, in := range map[string]*inbox{"alice": aliceIn, "bob": bobIn, "carol": carolIn} {
		in.wait(t, name+"'s group messages", func([]protocol.Message) bool { return len(in.texts(t, g.ID)) == 2 })
		if got := in.texts(t, g.ID); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
		if first := in.all()[0]; body(t, first).Event != protocol.SysGroupCreated || first.Seq != 1 {
			t.Errorf("%s's first message %+v, want group_created at seq 1", name, first)
		}
	}

	// Outsiders cannot write; members cannot add; the owner decides roles.
	_, err = dave.Send(ctx, g.ID, "let me in")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotMember || pe.Code.Retryable() {
		t.Fatalf("outsider send: %v, want not_member", err)
	}
	if _, err := bob.AddMember(ctx, g.ID, "dave", msgr.RoleMember); !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("member adds: %v, want forbidden", err)
	}
	if _, err := alice.SetRole(ctx, g.ID, "bob", msgr.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	g, err = bob.AddMember(ctx, g.ID, "dave", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 4 {
		t.Fatalf("members after add: %+v", g.Members)
	}
	if _, err := bob.AddMember(ctx, g.ID, "dave", ""); !errors.As(err, &pe) || pe.Code != protocol.CodeExists {
		t.Fatalf("adding twice: %v, want exists", err)
	}
	if _, err := dave.Send(ctx, g.ID, "hi all"); err != nil {
		t.Fatal(err)
	}
	carolIn.wait(t, "dave's message", func([]protocol.Message) bool { return len(carolIn.texts(t, g.ID)) == 3 })

	// A newcomer does not see what was said before.
	hist, _, err := dave.History(ctx, g.ID, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if body(t, m).Text == "where to?" {
			t.Fatalf("dave sees an earlier message: %+v", m)
		}
	}
	if got := daveIn.texts(t, g.ID); slices.Contains(got, "where to?") {
		t.Fatalf("dave received an earlier message: %v", got)
	}

	// Leaving is a system message everyone sees; the leaver can no longer send.
	if _, err := dave.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	aliceIn.wait(t, "member_left", func(ms []protocol.Message) bool {
		return slices.ContainsFunc(ms, func(m protocol.Message) bool { return body(t, m).Event == protocol.SysMemberLeft })
	})
	if _, err := dave.Send(ctx, g.ID, "bye"); !errors.As(err, &pe) || pe.Code != protocol.CodeNotMember {
		t.Fatalf("send after leaving: %v, want not_member", err)
	}
	if _, err := alice.RemoveMember(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	got, err := alice.Conversation(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, m := range got.Members {
		members = append(members, m.User+":"+m.Role)
	}
	slices.Sort(members)
	if want := []string{"alice:owner", "bob:admin"}; !slices.Equal(members, want) {
		t.Fatalf("members %v, want %v", members, want)
	}
	removed := bobIn.wait(t, "member_removed", func(ms []protocol.Message) bool {
		return slices.ContainsFunc(ms, func(m protocol.Message) bool { return body(t, m).Event == protocol.SysMemberRemoved })
	})
	convs, err := bob.Conversations(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 || convs[0].ID != g.ID || convs[0].LastSeq != removed[len(removed)-1].Seq {
		t.Fatalf("bob's conversations: %+v; last message %+v", convs, removed[len(removed)-1])
	}
	// bob saw every message of the group, in order, without gaps.
	for i, m := range removed {
		if m.Seq != int64(i+1) {
			t.Fatalf("bob's message %d has seq %d", i, m.Seq)
		}
	}
}

// docs/PROTOCOL.md §4: "Every change is a system message". group.role
// must produce a role_changed message that every member receives.
func TestE2ERoleChangeIsSystemMessage(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	alice, _ := dial(t, b, "alice", "phone")
	_, bobIn := dial(t, b, "bob", "phone")
	g, err := alice.CreateGroup(ctx, "Roles", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetRole(ctx, g.ID, "bob", msgr.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, g.ID, "after the change"); err != nil {
		t.Fatal(err)
	}
	msgs := bobIn.wait(t, "the text after the role change", func([]protocol.Message) bool {
		return len(bobIn.texts(t, g.ID)) == 1
	})
	if !slices.ContainsFunc(msgs, func(m protocol.Message) bool {
		b := body(t, m)
		return b.Event == protocol.SysRoleChanged && b.User == "bob" && b.Role == msgr.RoleAdmin && b.By == "alice"
	}) {
		t.Fatalf("no role_changed system message among %d messages", len(msgs))
	}
}

func TestE2ESameCMIDStoredOnce(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	alice, _ := dial(t, b, "alice", "phone")
	_, bobIn := dial(t, b, "bob", "phone")

	cmid := msgr.NewCMID()
	first, err := alice.SendMessage(ctx, msgr.Outgoing{To: "bob", CMID: cmid, Text: "once"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := alice.SendMessage(ctx, msgr.Outgoing{To: "bob", CMID: cmid, Text: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Dup || !second.Dup || second.Seq != first.Seq || second.ID != first.ID || second.CMID != cmid {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	third, err := alice.SendMessage(ctx, msgr.Outgoing{Conv: first.Conv, Text: "twice"})
	if err != nil {
		t.Fatal(err)
	}
	if third.Seq != first.Seq+1 {
		t.Fatalf("next message got seq %d after %d", third.Seq, first.Seq)
	}
	msgs, more, err := alice.History(ctx, first.Conv, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if more || len(msgs) != 2 || msgs[0].CMID != cmid || msgs[1].Seq != third.Seq {
		t.Fatalf("history %+v (more %v)", msgs, more)
	}
	bobIn.wait(t, "both messages", func(ms []protocol.Message) bool { return len(ms) >= 2 })
	time.Sleep(300 * time.Millisecond)
	if got := bobIn.texts(t, first.Conv); !slices.Equal(got, []string{"once", "twice"}) {
		t.Fatalf("bob got %v", got)
	}
}

func TestE2EMultipleDevices(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	alicePhone, alicePhoneIn := dial(t, b, "alice", "phone")
	_, aliceLaptopIn := dial(t, b, "alice", "laptop")
	_, bobPhoneIn := dial(t, b, "bob", "phone")
	_, bobLaptopIn := dial(t, b, "bob", "laptop")

	sent, err := alicePhone.SendTo(ctx, "bob", "to all your devices")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]*inbox{
		"bob/phone": bobPhoneIn, "bob/laptop": bobLaptopIn,
		"alice/laptop": aliceLaptopIn, "alice/phone": alicePhoneIn,
	} {
		in.wait(t, name, func(ms []protocol.Message) bool { return len(ms) > 0 })
		time.Sleep(100 * time.Millisecond)
		ms := in.all()
		if len(ms) != 1 || ms[0].Seq != sent.Seq || ms[0].Conv != sent.Conv || ms[0].From != "alice" || ms[0].Dev != "phone" {
			t.Errorf("%s got %+v", name, ms)
		}
	}
	for _, d := range []struct{ user, device string }{{"bob", "phone"}, {"bob", "laptop"}, {"alice", "laptop"}, {"alice", "phone"}} {
		waitCaughtUp(t, b, d.user, d.device)
	}
}

func TestE2EPersistentSession(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	dir := t.TempDir()
	persistent := func(cfg *msgr.Config) { cfg.SessionDir = dir }
	bob, _ := dial(t, b, "bob", "phone", persistent)
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}

	alice, _ := dial(t, b, "alice", "phone")
	var want []string
	var conv string
	for i := range 20 {
		text := fmt.Sprintf("while away %d", i)
		sent, err := alice.SendTo(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		want, conv = append(want, text), sent.Conv
	}

	// The broker redelivers its queue and the sync page repeats it: each
	// message must still reach the application once.
	_, bobIn := dial(t, b, "bob", "phone", persistent)
	bobIn.wait(t, "messages sent while away", func([]protocol.Message) bool { return len(bobIn.texts(t, conv)) >= len(want) })
	time.Sleep(500 * time.Millisecond)
	got := bobIn.texts(t, conv)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("bob got %v, want each of %v once", got, want)
	}
	waitCaughtUp(t, b, "bob", "phone")

	// Live delivery keeps working on the resumed session.
	if _, err := alice.SendTo(ctx, "bob", "welcome back"); err != nil {
		t.Fatal(err)
	}
	bobIn.wait(t, "live message", func([]protocol.Message) bool { return slices.Contains(bobIn.texts(t, conv), "welcome back") })
}

func TestE2EBrokerRestart(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	fast := func(cfg *msgr.Config) { cfg.RequestTimeout = 2 * time.Second }
	alice, _ := dial(t, b, "alice", "phone", fast)
	_, bobIn := dial(t, b, "bob", "phone", fast)

	const n = 60
	sentc := make(chan protocol.Sent, n)
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			sent, err := alice.SendTo(ctx, "bob", fmt.Sprintf("m%02d", i))
			if err != nil {
				errc <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			sentc <- sent
		}
		close(sentc)
	}()
	var sent []protocol.Sent
	for s := range sentc {
		sent = append(sent, s)
		if len(sent) == n/3 {
			b.Restart(t)
		}
		select {
		case err := <-errc:
			t.Fatal(err)
		default:
		}
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if len(sent) != n {
		t.Fatalf("%d messages sent", len(sent))
	}
	conv := sent[0].Conv
	for i, s := range sent {
		if s.Conv != conv || s.Seq != sent[0].Seq+int64(i) {
			t.Fatalf("message %d: %+v (first %+v)", i, s, sent[0])
		}
	}

	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	bobIn.wait(t, "all messages after the restart", func([]protocol.Message) bool { return len(bobIn.texts(t, conv)) >= n })
	time.Sleep(300 * time.Millisecond)
	got := bobIn.texts(t, conv)
	if len(got) != n {
		t.Fatalf("bob got %d messages, want %d: %v", len(got), n, got)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("bob got %v", got)
	}
	waitCaughtUp(t, b, "bob", "phone")
}

func TestE2EWebSocket(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	ctx := testCtx(t)
	ws := func(cfg *msgr.Config) { cfg.ServerURL = "ws://" + b.WSAddr + "/" }
	alice, _ := dial(t, b, "alice", "web", ws)
	_, bobIn := dial(t, b, "bob", "phone")
	sent, err := alice.SendTo(ctx, "bob", "over websocket")
	if err != nil {
		t.Fatal(err)
	}
	bobIn.wait(t, "message", func([]protocol.Message) bool { return len(bobIn.texts(t, sent.Conv)) == 1 })
}

func TestE2EDialErrors(t *testing.T) {
	b := startBroker(t, "alice")
	tests := []struct {
		name string
		cfg  msgr.Config
	}{
		{"wrong password", msgr.Config{ServerURL: "mqtt://" + b.MQTTAddr, User: "alice", Device: "phone", Password: "wrong"}},
		{"unknown user", msgr.Config{ServerURL: "mqtt://" + b.MQTTAddr, User: "mallory", Device: "phone", Password: password}},
		{"invalid device", msgr.Config{ServerURL: "mqtt://" + b.MQTTAddr, User: "alice", Device: "Phone/1", Password: password}},
		{"bad scheme", msgr.Config{ServerURL: "http://" + b.MQTTAddr, User: "alice", Device: "phone", Password: password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			c, err := msgr.Dial(ctx, tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			// Refusals are reported at once, not when ctx expires.
			if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
				t.Fatalf("err %v after %v", err, time.Since(start))
			}
		})
	}
}

// The SDK acknowledges a message only after OnMessage returns: while the
// application is still handling it, the broker must not count it as
// delivered or move the device's sync cursor past it.
func TestE2EAcknowledgedOnlyAfterHandling(t *testing.T) {
	b := startBroker(t, "alice", "bob")
	alice, _ := dial(t, b, "alice", "phone")
	release := make(chan struct{})
	handling := make(chan struct{}, 1)
	dial(t, b, "bob", "phone", func(c *msgr.Config) {
		c.OnMessage = func(protocol.Message) {
			handling <- struct{}{}
			<-release
		}
	})
	// Registered after dial, so it runs before the client's Close, which
	// waits for the handler.
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	ctx := testCtx(t)
	if _, err := alice.SendTo(ctx, "bob", "hold on"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handling:
	case <-time.After(10 * time.Second):
		t.Fatal("bob's handler never ran")
	}
	// Longer than the broker's acknowledgement flush (200 ms) and the
	// SDK's live ack interval (200 ms).
	time.Sleep(700 * time.Millisecond)
	pending, err := b.Store().PendingConversations(ctx, "bob", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Cursor != 0 {
		t.Fatalf("while the handler runs, bob's cursor moved: %+v", pending)
	}
	unblock()
	waitCaughtUp(t, b, "bob", "phone")
}
