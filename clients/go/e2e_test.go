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
	back, err := (func() (protocol.Sent, error) {
		bob, _ := dial(t, b, "bob", "laptop")
		return bob.Send(ctx, sent.Conv, "hi alice")
	})()
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

var _ = errors.New
