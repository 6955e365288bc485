package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// failingBatches is a real store whose batch acknowledgement always fails.
type failingBatches struct{ *sqlite.Store }

func (failingBatches) AdvanceCursorsBatch(context.Context, []storage.DeviceCursors) ([][]storage.DeliveredChange, error) {
	return nil, errors.New("batch refused")
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, []byte) error { return nil }
func (nopPublisher) Notify(string, []byte) error  { return nil }

func TestAckManyBatchAndFallback(t *testing.T) {
	ctx := t.Context()
	db := openStore(t, "alice", "bob", "carol")
	now := time.Now()
	var convs []string
	for _, u := range []string{"bob", "carol"} {
		c, _, err := db.DirectConversation(ctx, "alice", u, ulid.Make().String(), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendMessages(ctx, []storage.NewMessage{{ConvID: c.ID, ID: "m-" + u, SenderID: "alice", SenderDevice: "d",
			ClientMsgID: "1", Kind: storage.MsgText, Body: []byte(`{"type":"text","text":"x"}`), CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
		convs = append(convs, c.ID)
	}
	pending := func(user string) int {
		t.Helper()
		p, err := db.PendingConversations(ctx, user, "phone")
		if err != nil {
			t.Fatal(err)
		}
		return len(p)
	}
	for _, tt := range []struct {
		name  string
		store Store
		user  string
		conv  string
	}{
		{"batch", db, "bob", convs[0]},
		{"fallback", failingBatches{db}, "carol", convs[1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.store, nopPublisher{}, Config{})
			defer s.Close()
			err := s.AckMany(ctx, []DeviceAcks{
				{Device: Device{User: tt.user, Device: "phone"}, Acks: []protocol.Cursor{{Conv: tt.conv, Seq: 1}}},
				// Invalid: named in the error, the valid one is still stored.
				{Device: Device{User: tt.user, Device: "tablet"}, Acks: []protocol.Cursor{{Conv: tt.conv, Seq: 0}}},
			})
			if err == nil {
				t.Error("the invalid acknowledgement was not reported")
			}
			if n := pending(tt.user); n != 0 {
				t.Errorf("%s/phone still has %d pending conversations", tt.user, n)
			}
		})
	}
}

// countingStore counts the store reads a receipt notification makes.
type countingStore struct {
	*sqlite.Store
	senders, receipts atomic.Int32
}

func (c *countingStore) Senders(ctx context.Context, convID string, after, upTo int64) ([]string, error) {
	c.senders.Add(1)
	return c.Store.Senders(ctx, convID, after, upTo)
}

func (c *countingStore) Receipts(ctx context.Context, convID string) ([]storage.Receipt, error) {
	c.receipts.Add(1)
	return c.Store.Receipts(ctx, convID)
}

// eventRecorder keeps every QoS 1 publish, decoded.
type eventRecorder struct {
	mu   sync.Mutex
	pubs []published
}

type published struct {
	topic string
	ev    protocol.Event
}

func (p *eventRecorder) Publish(topic string, payload []byte) error {
	var ev protocol.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pubs = append(p.pubs, published{topic, ev})
	return nil
}

func (p *eventRecorder) Notify(string, []byte) error { return nil }

func (p *eventRecorder) receipts(topic string) []protocol.Receipt {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []protocol.Receipt
	for _, pb := range p.pubs {
		if pb.topic == topic && pb.ev.Type == protocol.EvReceipt {
			out = append(out, *pb.ev.Receipt)
		}
	}
	return out
}

// In a group every member acknowledges the same messages in the same
// flush; the receipts of one AckMany read the conversation's positions and
// the range's senders once, and the sender still hears of every member.
func TestAckManyGroupReadsOnce(t *testing.T) {
	ctx := t.Context()
	members := []string{"bob", "carol", "dave", "erin"}
	db := openStore(t, append([]string{"alice"}, members...)...)
	store := &countingStore{Store: db}
	pub := &eventRecorder{}
	s := New(store, pub, Config{})
	t.Cleanup(s.Close)
	alice := Device{User: "alice", Device: "phone"}
	conv, err := s.CreateGroup(ctx, alice, "team", members)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 2 {
		sent, err := s.Send(ctx, alice, protocol.Request{Conv: conv.ID, CMID: fmt.Sprintf("m%d", i),
			Body: &protocol.Body{Type: protocol.BodyText, Text: "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		last = sent.Seq
	}
	store.senders.Store(0)
	store.receipts.Store(0)
	var acks []DeviceAcks
	for _, u := range members {
		acks = append(acks, DeviceAcks{Device: Device{User: u, Device: "phone"}, Acks: []protocol.Cursor{{Conv: conv.ID, Seq: last}}})
	}
	if err := s.AckMany(ctx, acks); err != nil {
		t.Fatal(err)
	}
	if n, m := store.senders.Load(), store.receipts.Load(); n != 1 || m != 1 {
		t.Errorf("one flush read senders %d times and positions %d times, want 1 and 1", n, m)
	}
	got := map[string]protocol.Receipt{}
	for _, r := range pub.receipts(protocol.InboxTopic("alice")) {
		got[r.User] = r
	}
	for _, u := range members {
		r, ok := got[u]
		if !ok {
			t.Errorf("alice got no receipt for %s (got %v)", u, got)
			continue
		}
		// Every member's position is stored before the receipts go out,
		// so each one already shows the whole group delivered.
		if r.Delivered != last || r.AllDelivered != last {
			t.Errorf("receipt for %s = %+v, want delivered and all delivered %d", u, r, last)
		}
	}
}
