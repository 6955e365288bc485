package chat

import (
	"testing"

	"github.com/msgrhq/msgr/protocol"
)

// TestSendToUserAfterConversationDeleted: sends addressed to a user reuse
// the cached direct conversation, and one deleted behind the cache's back
// is replaced by a new one instead of failing.
func TestSendToUserAfterConversationDeleted(t *testing.T) {
	ctx := t.Context()
	db := openStore(t, "alice", "bob")
	s := New(db, nopPublisher{}, Config{})
	t.Cleanup(s.Close)
	alice := Device{User: "alice", Device: "phone"}
	send := func(cmid string) protocol.Sent {
		t.Helper()
		sent, err := s.Send(ctx, alice, protocol.Request{To: "bob", CMID: cmid, Body: &protocol.Body{Type: protocol.BodyText, Text: "hi " + cmid}})
		if err != nil {
			t.Fatalf("send %s: %v", cmid, err)
		}
		return sent
	}
	first, second := send("1"), send("2")
	if second.Conv != first.Conv || second.Seq != first.Seq+1 {
		t.Fatalf("second send %+v, first %+v: want the same conversation, next seq", second, first)
	}
	if _, ok := s.directs.get("bob", "alice"); !ok {
		t.Fatal("the direct conversation is not cached")
	}

	if err := db.DeleteConversation(ctx, first.Conv); err != nil {
		t.Fatal(err)
	}
	third := send("3")
	if third.Conv == first.Conv || third.Seq != 1 {
		t.Fatalf("send after the conversation was deleted: %+v, want seq 1 of a new conversation", third)
	}
	msgs, err := db.MessagesAfter(ctx, third.Conv, 0, 10, 10)
	if err != nil || len(msgs) != 1 || msgs[0].ClientMsgID != "3" {
		t.Fatalf("new conversation holds %+v, %v", msgs, err)
	}
	if got := send("4"); got.Conv != third.Conv {
		t.Errorf("later send went to %s, want the new conversation %s", got.Conv, third.Conv)
	}
}
