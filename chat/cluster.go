package chat

import (
	"context"
	"sync"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// Cluster is what the chat core shares with the other nodes of a
// multi-node deployment: which devices are connected where (for presence
// and routing) and the inbox events for users whose devices are on other
// nodes. A single node uses the in-memory implementation (Config.Cluster
// nil); package cluster implements it on Redis.
type Cluster interface {
	// Attach records that device now has a connection to this node; first
	// reports that no other device of the user is connected anywhere.
	Attach(ctx context.Context, user, device string) (first bool, err error)
	// Detach records that device has no connection to this node any more;
	// last reports that no device of the user is connected anywhere.
	Detach(ctx context.Context, user, device string) (last bool, err error)
	// Online reports whether any device of user is connected anywhere.
	Online(ctx context.Context, user string) (bool, error)
	// Forward hands an event this node published to user's inbox to the
	// nodes holding the user's other devices (qos as published). It must
	// not block for long: fan-out calls it for every inbox event.
	Forward(user string, payload []byte, qos byte)
	// MembersChanged tells the other nodes to drop their cached member
	// list of conv.
	MembersChanged(convID string)
}

// localCluster is the single-node Cluster: a user is online while one of
// their devices is connected to this process; nothing is forwarded.
type localCluster struct {
	mu      sync.Mutex
	devices map[string]map[string]struct{}
}

func newLocalCluster() *localCluster {
	return &localCluster{devices: make(map[string]map[string]struct{})}
}

func (l *localCluster) Attach(_ context.Context, user, device string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.devices[user]
	if set == nil {
		set = make(map[string]struct{})
		l.devices[user] = set
	}
	set[device] = struct{}{}
	return len(set) == 1, nil
}

func (l *localCluster) Detach(_ context.Context, user, device string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set, ok := l.devices[user]
	if !ok {
		return false, nil
	}
	delete(set, device)
	if len(set) == 0 {
		delete(l.devices, user)
		return true, nil
	}
	return false, nil
}

func (l *localCluster) Online(_ context.Context, user string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.devices[user]) > 0, nil
}

func (l *localCluster) Forward(string, []byte, byte) {}

func (l *localCluster) MembersChanged(string) {}

// routedPublisher publishes on this node and forwards inbox events to the
// nodes holding the user's other devices.
type routedPublisher struct {
	local   Publisher
	cluster Cluster
}

func (p routedPublisher) Publish(topic string, payload []byte) error {
	err := p.local.Publish(topic, payload)
	if user, ok := inboxUser(topic); ok {
		p.cluster.Forward(user, payload, 1)
	}
	return err
}

func (p routedPublisher) Notify(topic string, payload []byte) error {
	err := p.local.Notify(topic, payload)
	if user, ok := inboxUser(topic); ok {
		p.cluster.Forward(user, payload, 0)
	}
	return err
}

// inboxUser returns USER for msgr/u/USER/in.
func inboxUser(topic string) (string, bool) {
	t := protocol.ParseTopic(topic)
	return t.User, t.Kind == protocol.TopicInbox
}

// InvalidateMembers drops the cached member list of conv; another node
// changed its membership.
func (s *Service) InvalidateMembers(convID string) { s.fanout.members.invalidate(convID) }

// Departed records that user went offline at at without this node seeing
// a disconnect: the node that held the user's last device died and its
// registry entries were reaped (see package cluster). Contacts are told
// and last seen stored as for a disconnect.
func (s *Service) Departed(user string, at time.Time) {
	s.presence.mu.Lock()
	s.presence.enqueue(presenceEvent{user: user, online: false, at: at})
	s.presence.mu.Unlock()
}
