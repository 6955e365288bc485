package chat

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

type fakeMembers []storage.Member

func (f fakeMembers) ActiveMembers(context.Context, string) ([]storage.Member, error) { return f, nil }

type recordingPublisher struct {
	mu     sync.Mutex
	topics []string
}

func (p *recordingPublisher) Publish(topic string, _ []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topics = append(p.topics, topic)
	return nil
}

func (p *recordingPublisher) Notify(topic string, payload []byte) error {
	return p.Publish(topic, payload)
}

// A member whose membership starts after a message (added while the
// message waited in its lane) does not receive it; extra recipients do.
func TestFanoutRespectsFromSeq(t *testing.T) {
	members := fakeMembers{
		{UserID: "alice", FromSeq: 1},
		{UserID: "dave", FromSeq: 11},
	}
	pub := &recordingPublisher{}
	f := newFanout(members, pub, newLocalCluster(), 1, 10, time.Minute, time.Now, slog.New(slog.DiscardHandler))
	f.enqueue([]storage.Message{{ConvID: "c", Seq: 10, Kind: storage.MsgText, Body: []byte(`{}`)}})
	f.enqueueWith(storage.Message{ConvID: "c", Seq: 12, Kind: storage.MsgSystem, Body: []byte(`{}`)}, "carol")
	f.close()
	want := []string{
		protocol.InboxTopic("alice"),
		protocol.InboxTopic("alice"), protocol.InboxTopic("dave"), protocol.InboxTopic("carol"),
	}
	if !slices.Equal(pub.topics, want) {
		t.Fatalf("published to %v, want %v", pub.topics, want)
	}
}
