package chat

import (
	"context"
	"errors"
	"path/filepath"
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
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "msgr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := db.CreateUser(ctx, storage.User{ID: u, PasswordHash: "x", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
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
