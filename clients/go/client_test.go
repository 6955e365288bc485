package msgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/msgrhq/msgr/protocol"
)

// fakeReply is how the fake broker answers one request.
type fakeReply struct {
	err    error            // Publish fails (no PUBACK), like a paho timeout
	reason byte             // PUBACK reason code
	events []protocol.Event // on the device topic; Req is filled in
	delay  time.Duration    // before the events are published
}

type request struct {
	op  protocol.Op
	req protocol.Request
}

// fakeBroker stands in for the MQTT connection: it checks what the client
// publishes and answers through Client.receive, as paho would.
type fakeBroker struct {
	t      *testing.T
	c      *Client
	handle func(op protocol.Op, req protocol.Request) fakeReply

	mu   sync.Mutex
	reqs []request
}

func (f *fakeBroker) Publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error) {
	prefix := protocol.CommandTopic("alice", "")
	if !strings.HasPrefix(p.Topic, prefix) || p.QoS != 1 {
		f.t.Errorf("publish to %q at QoS %d", p.Topic, p.QoS)
	}
	op := protocol.Op(strings.TrimPrefix(p.Topic, prefix))
	dec := json.NewDecoder(bytes.NewReader(p.Payload))
	dec.DisallowUnknownFields()
	var req protocol.Request
	if err := dec.Decode(&req); err != nil {
		f.t.Errorf("request %s: %v", p.Payload, err)
	}
	if req.V != protocol.Version || req.ID == "" {
		f.t.Errorf("request without version or id: %s", p.Payload)
	}
	if p.Properties == nil || p.Properties.ResponseTopic != protocol.DeviceTopic("alice", "phone") ||
		string(p.Properties.CorrelationData) != req.ID {
		f.t.Errorf("response topic / correlation data: %+v", p.Properties)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, request{op, req})
	f.mu.Unlock()

	r := f.handle(op, req)
	if r.err != nil {
		return nil, r.err
	}
	if len(r.events) > 0 {
		go func() {
			time.Sleep(r.delay)
			for _, ev := range r.events {
				ev.Req = req.ID
				f.push(protocol.DeviceTopic("alice", "phone"), ev)
			}
		}()
	}
	resp := &paho.PublishResponse{ReasonCode: r.reason}
	if r.reason >= 0x80 {
		return resp, errors.New("error publishing")
	}
	return resp, nil
}

// push publishes ev to the client as the broker would.
func (f *fakeBroker) push(topic string, ev protocol.Event) {
	ev.V = protocol.Version
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	f.c.receive(topic, b, nil, func() {})
}

func (f *fakeBroker) requests(op protocol.Op) []protocol.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []protocol.Request
	for _, r := range f.reqs {
		if r.op == op {
			rs = append(rs, r.req)
		}
	}
	return rs
}

// collector records what the client hands to OnMessage.
type collector struct {
	mu   sync.Mutex
	msgs []protocol.Message
}

func (c *collector) add(m protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

func (c *collector) seqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []int64
	for _, m := range c.msgs {
		s = append(s, m.Seq)
	}
	return s
}

func newTestClient(t *testing.T, handle func(protocol.Op, protocol.Request) fakeReply, opts ...func(*Config)) (*Client, *fakeBroker, *collector) {
	t.Helper()
	col := &collector{}
	cfg := Config{
		User: "alice", Device: "phone",
		RequestTimeout: 300 * time.Millisecond,
		AckInterval:    20 * time.Millisecond,
		OnMessage:      col.add,
	}
	for _, o := range opts {
		o(&cfg)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(cfg)
	c.refusalGrace = 200 * time.Millisecond
	c.gapWait = 100 * time.Millisecond
	fb := &fakeBroker{t: t, c: c, handle: handle}
	c.link.subscribed(c.link.connected(), fb)
	c.start()
	t.Cleanup(func() { _ = c.Close() })
	return c, fb, col
}

func ok() fakeReply { return fakeReply{events: []protocol.Event{{Type: protocol.EvOK}}} }

func msg(conv string, seq int64) protocol.Message {
	return protocol.Message{Conv: conv, Seq: seq, ID: "m", From: "bob", Body: json.RawMessage(`{"type":"text","text":"hi"}`)}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRequestsMatchReplies(t *testing.T) {
	// Replies arrive in the reverse order of the requests.
	c, _, _ := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		delay := 100 * time.Millisecond
		if req.Conv == "c2" {
			delay = 10 * time.Millisecond
		}
		return fakeReply{delay: delay, events: []protocol.Event{{Type: protocol.EvConversation, Op: op, Conv: &protocol.Conversation{ID: req.Conv}}}}
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, conv := range []string{"c1", "c2"} {
		wg.Go(func() {
			got, err := c.Conversation(ctx, conv)
			if err != nil || got.ID != conv {
				t.Errorf("Conversation(%s) = %+v, %v", conv, got, err)
			}
		})
	}
	wg.Wait()
}

func TestRequestErrors(t *testing.T) {
	notMember := &protocol.Error{Code: protocol.CodeNotMember, Message: "not a member"}
	tests := []struct {
		name  string
		reply fakeReply
		want  protocol.Code
	}{
		{"error event", fakeReply{events: []protocol.Event{{Type: protocol.EvError, Error: notMember}}}, protocol.CodeNotMember},
		// 0x87 alone would say forbidden; the event is more precise.
		{"refusal with event", fakeReply{reason: 0x87, events: []protocol.Event{{Type: protocol.EvError, Error: notMember}}}, protocol.CodeNotMember},
		{"refusal with late event", fakeReply{reason: 0x87, delay: 50 * time.Millisecond, events: []protocol.Event{{Type: protocol.EvError, Error: notMember}}}, protocol.CodeNotMember},
		{"refusal without event", fakeReply{reason: 0x95}, protocol.CodeTooLarge},
		{"error event without error", fakeReply{events: []protocol.Event{{Type: protocol.EvError}}}, protocol.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return tt.reply })
			_, err := c.Leave(context.Background(), "c1")
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tt.want {
				t.Fatalf("err = %v, want code %s", err, tt.want)
			}
			if n := len(fb.requests(protocol.OpGroupLeave)); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestSendRetriesWithSameCMID(t *testing.T) {
	var mu sync.Mutex
	n := 0
	c, fb, _ := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch n {
		case 1: // stored nothing
			return fakeReply{reason: 0x80, events: []protocol.Event{{Type: protocol.EvError, Error: &protocol.Error{Code: protocol.CodeUnavailable}}}}
		case 2: // no PUBACK in time
			return fakeReply{err: context.DeadlineExceeded}
		case 3: // stored, but the reply is lost
			return fakeReply{}
		default:
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSent, Sent: &protocol.Sent{Conv: "c1", Seq: 7, CMID: req.CMID, Dup: true}}}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sent, err := c.SendTo(ctx, "bob", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Seq != 7 || !sent.Dup {
		t.Errorf("sent = %+v", sent)
	}
	reqs := fb.requests(protocol.OpSend)
	if len(reqs) != 4 {
		t.Fatalf("%d attempts, want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.CMID != reqs[0].CMID || r.CMID == "" || r.To != "bob" || r.Body == nil || r.Body.Text != "hello" || r.Body.Type != protocol.BodyText {
			t.Errorf("attempt %+v differs from first %+v", r, reqs[0])
		}
	}
	if reqs[0].ID == reqs[1].ID {
		t.Error("request ids reused across attempts")
	}
}

func TestSendStopsOnPermanentError(t *testing.T) {
	c, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply {
		return fakeReply{reason: 0x95, events: []protocol.Event{{Type: protocol.EvError, Error: &protocol.Error{Code: protocol.CodeTooLarge}}}}
	})
	_, err := c.SendMessage(context.Background(), Outgoing{Conv: "c1", CMID: "my-id", Text: "x"})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeTooLarge || pe.Code.Retryable() {
		t.Fatalf("err = %v", err)
	}
	if reqs := fb.requests(protocol.OpSend); len(reqs) != 1 || reqs[0].CMID != "my-id" || reqs[0].Conv != "c1" {
		t.Fatalf("requests = %+v", reqs)
	}
}

func TestMutationNotRetriedWithoutReply(t *testing.T) {
	c, fb, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return fakeReply{} })
	_, err := c.CreateGroup(context.Background(), "trip", "bob", "carol")
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("err = %v, want ErrNoReply", err)
	}
	reqs := fb.requests(protocol.OpGroupCreate)
	if len(reqs) != 1 || reqs[0].Title != "trip" || !reflect.DeepEqual(reqs[0].Members, []string{"bob", "carol"}) {
		t.Fatalf("requests = %+v", reqs)
	}
}

func TestContextEndsRetries(t *testing.T) {
	c, _, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return fakeReply{} },
		func(cfg *Config) { cfg.RequestTimeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.SendTo(ctx, "bob", "hello")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("returned after %v", d)
	}
}

func TestClosedClient(t *testing.T) {
	c, _, _ := newTestClient(t, func(protocol.Op, protocol.Request) fakeReply { return ok() })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendTo(context.Background(), "bob", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	if err := c.Sync(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestSyncPagesAndLiveDedup(t *testing.T) {
	page2 := []protocol.Message{msg("a", 3), msg("b", 1)}
	_, fb, col := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		switch op {
		case protocol.OpSync:
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSync, Msgs: page2}}}
		case protocol.OpAck:
			return ok()
		}
		t.Errorf("unexpected %s", op)
		return fakeReply{}
	})
	device := protocol.DeviceTopic("alice", "phone")
	inbox := protocol.InboxTopic("alice")

	// Live a/3 races ahead of the pushed first page; the page repeats a/2.
	fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &protocol.Message{Conv: "a", Seq: 3, Body: json.RawMessage(`{}`)}})
	fb.push(device, protocol.Event{Type: protocol.EvSync, Msgs: []protocol.Message{msg("a", 1), msg("a", 2)}, More: true})
	fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &protocol.Message{Conv: "a", Seq: 2, Body: json.RawMessage(`{}`)}})

	eventually(t, "final ack", func() bool { return len(fb.requests(protocol.OpAck)) > 0 })
	if got, want := col.seqs(), []int64{3, 1, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered seqs %v, want %v (a/3, a/1, a/2, b/1)", got, want)
	}
	syncs := fb.requests(protocol.OpSync)
	if len(syncs) != 1 || !reflect.DeepEqual(syncs[0].Ack, []protocol.Cursor{{Conv: "a", From: 0, Seq: 2}}) {
		t.Fatalf("sync requests %+v", syncs)
	}
	// The last page is acknowledged by itself; a/3 live is acknowledged by
	// the flusher (possibly in the same range).
	eventually(t, "acks", func() bool {
		var all []protocol.Cursor
		for _, r := range fb.requests(protocol.OpAck) {
			all = append(all, r.Ack...)
		}
		has := func(c protocol.Cursor) bool {
			for _, a := range all {
				if a == c {
					return true
				}
			}
			return false
		}
		return has(protocol.Cursor{Conv: "a", From: 2, Seq: 3}) && has(protocol.Cursor{Conv: "b", From: 0, Seq: 1})
	})
}

func TestExplicitSync(t *testing.T) {
	var mu sync.Mutex
	pages := [][]protocol.Message{{msg("a", 5), msg("a", 6)}, {msg("a", 7)}}
	c, fb, col := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		mu.Lock()
		defer mu.Unlock()
		if op == protocol.OpAck {
			return ok()
		}
		if len(pages) == 0 {
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSync}}}
		}
		p := pages[0]
		pages = pages[1:]
		return fakeReply{events: []protocol.Event{{Type: protocol.EvSync, Msgs: p, More: len(pages) > 0}}}
	}, func(cfg *Config) { cfg.SyncLimit = 2 })
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := col.seqs(); !reflect.DeepEqual(got, []int64{5, 6, 7}) {
		t.Fatalf("delivered %v", got)
	}
	syncs := fb.requests(protocol.OpSync)
	if len(syncs) != 2 || syncs[0].Ack != nil || syncs[0].Limit != 2 ||
		!reflect.DeepEqual(syncs[1].Ack, []protocol.Cursor{{Conv: "a", From: 4, Seq: 6}}) {
		t.Fatalf("sync requests %+v", syncs)
	}
	acks := fb.requests(protocol.OpAck)
	if len(acks) != 1 || !reflect.DeepEqual(acks[0].Ack, []protocol.Cursor{{Conv: "a", From: 6, Seq: 7}}) {
		t.Fatalf("ack requests %+v", acks)
	}
}

func TestLiveAcksCoalesce(t *testing.T) {
	c, fb, col := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply { return ok() },
		func(cfg *Config) { cfg.AckInterval = time.Hour }) // flushed by Close only
	inbox := protocol.InboxTopic("alice")
	for _, seq := range []int64{6, 5, 6} {
		m := msg("a", seq)
		fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &m})
	}
	eventually(t, "delivery", func() bool { return len(col.seqs()) == 2 })
	time.Sleep(50 * time.Millisecond) // a duplicate would have been delivered by now
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := col.seqs(); !reflect.DeepEqual(got, []int64{6, 5}) {
		t.Errorf("delivered %v, want [6 5]", got)
	}
	var all []protocol.Cursor
	for _, r := range fb.requests(protocol.OpAck) {
		all = append(all, r.Ack...)
	}
	if want := []protocol.Cursor{{Conv: "a", From: 4, Seq: 6}}; !reflect.DeepEqual(all, want) {
		t.Errorf("acks %v, want %v", all, want)
	}
}

func TestGapTriggersSync(t *testing.T) {
	_, fb, col := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		if op == protocol.OpSync {
			return fakeReply{events: []protocol.Event{{Type: protocol.EvSync, Msgs: []protocol.Message{msg("a", 2), msg("a", 3)}}}}
		}
		return ok()
	})
	inbox := protocol.InboxTopic("alice")
	for _, seq := range []int64{1, 3} { // 2 is lost
		m := msg("a", seq)
		fb.push(inbox, protocol.Event{Type: protocol.EvMessage, Msg: &m})
	}
	eventually(t, "gap filled", func() bool { return reflect.DeepEqual(col.seqs(), []int64{1, 3, 2}) })
	if n := len(fb.requests(protocol.OpSync)); n != 1 {
		t.Errorf("%d syncs, want 1", n)
	}
}

func TestConnectionLossEndsAttempt(t *testing.T) {
	var mu sync.Mutex
	blocked := make(chan struct{}, 10)
	hang := true
	c, fb, _ := newTestClient(t, func(op protocol.Op, req protocol.Request) fakeReply {
		mu.Lock()
		defer mu.Unlock()
		if hang {
			blocked <- struct{}{}
			return fakeReply{} // PUBACK, but the reply never comes
		}
		return fakeReply{events: []protocol.Event{{Type: protocol.EvSent, Sent: &protocol.Sent{Seq: 1, CMID: req.CMID}}}}
	}, func(cfg *Config) { cfg.RequestTimeout = time.Minute })

	// A mutation fails fast with ErrNoReply when the connection drops.
	errc := make(chan error, 1)
	go func() {
		_, err := c.Leave(context.Background(), "c1")
		errc <- err
	}()
	<-blocked
	c.link.lost()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNoReply) {
			t.Fatalf("err = %v, want ErrNoReply", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("attempt outlived its connection")
	}

	// A send waits for the next connection and goes again with its cmid.
	c.link.subscribed(c.link.connected(), fb)
	sentc := make(chan error, 1)
	go func() {
		_, err := c.SendTo(context.Background(), "bob", "hi")
		sentc <- err
	}()
	<-blocked
	mu.Lock()
	hang = false
	mu.Unlock()
	c.link.lost()
	time.Sleep(50 * time.Millisecond) // the retry waits for a connection
	c.link.subscribed(c.link.connected(), fb)
	select {
	case err := <-sentc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("send did not resume on the new connection")
	}
	sends := fb.requests(protocol.OpSend)
	if len(sends) != 2 || sends[0].CMID != sends[1].CMID {
		t.Fatalf("sends %+v", sends)
	}
}
