package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/cluster"
	chathook "github.com/msgrhq/msgr/hooks/chat"
	"github.com/msgrhq/msgr/protocol"
)

// newClusterNode connects to the cluster's Redis when cfg names one.
func newClusterNode(cfg Config, log *slog.Logger) (*cluster.Node, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	id := cfg.Security.NodeID
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := cluster.New(ctx, cluster.Options{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, NodeID: id, TTL: cfg.ClusterTTL, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return node, nil
}

// startCluster registers the node before its listeners accept anyone.
func (b *Broker) startCluster(pub *publisher, hook *chathook.Hook) error {
	if b.node == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.node.Start(ctx, clusterLocal{pub: pub, hook: hook, svc: b.svc, kick: b.kickLocal}); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	b.log.Info("cluster node started", "node", b.node.ID())
	return nil
}

// abort releases what New built before it failed.
func (b *Broker) abort() {
	b.svc.Close()
	if b.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.node.Close(ctx)
	}
}

// NodeID is the cluster node id, or "" for a single node.
func (b *Broker) NodeID() string {
	if b.node == nil {
		return ""
	}
	return b.node.ID()
}

// Crash stops the node as abruptly as a process can short of exiting: it
// leaves the cluster without removing its registry entries and closes
// every connection without a DISCONNECT, then releases its resources. For
// tests of node failure; the store stays open.
func (b *Broker) Crash(ctx context.Context) {
	if b.node != nil {
		b.node.Crash()
		b.node = nil
	}
	for _, id := range []string{tcpListenerID, wsListenerID} {
		b.mqtt.Listeners.Close(id, func(string) {})
	}
	_ = b.conns.closeAll(ctx)
	_ = b.Close(ctx)
}

// clusterLocal is what the cluster node does on this broker.
type clusterLocal struct {
	pub  *publisher
	hook *chathook.Hook
	svc  *chat.Service
	kick func(selector string, reason byte) int // Broker.kickLocal (security.go)
}

func (l clusterLocal) Deliver(user string, payload []byte, qos byte) error {
	if qos == 0 {
		return l.pub.Notify(protocol.InboxTopic(user), payload)
	}
	return l.pub.Publish(protocol.InboxTopic(user), payload)
}

func (l clusterLocal) Nudge(user, device string) {
	l.hook.PushSync(chat.Device{User: user, Device: device})
}

func (l clusterLocal) InvalidateMembers(convID string) { l.svc.InvalidateMembers(convID) }

func (l clusterLocal) Departed(user string, at time.Time) { l.svc.Departed(user, at) }

func (l clusterLocal) Kick(selector string, reason byte) { l.kick(selector, reason) }
