package chat

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// memberLister is the store call fan-out needs.
type memberLister interface {
	ActiveMembers(ctx context.Context, convID string) ([]storage.Member, error)
}

// fanout publishes stored messages to every member's inbox. Messages are
// spread over lanes by conversation, and each lane works in order, so the
// members of a conversation receive its messages in sequence order while
// different conversations proceed in parallel.
type fanout struct {
	store   memberLister
	pub     Publisher
	cluster Cluster
	log     *slog.Logger
	seed    maphash.Seed
	lanes   []chan fanoutJob
	members *memberCache
	wg      sync.WaitGroup

	closeMu sync.RWMutex // held for reading while enqueuing, so close cannot race a send
	closed  bool
}

type fanoutJob struct {
	msg   storage.Message
	extra []string // recipients besides the active members (a removed member)
}

func newFanout(store memberLister, pub Publisher, cluster Cluster, lanes, queue int, ttl time.Duration, now func() time.Time, log *slog.Logger) *fanout {
	f := &fanout{
		store:   store,
		pub:     pub,
		cluster: cluster,
		log:     log,
		seed:    maphash.MakeSeed(),
		lanes:   make([]chan fanoutJob, lanes),
		members: newMemberCache(ttl, now),
	}
	for i := range f.lanes {
		f.lanes[i] = make(chan fanoutJob, queue)
		f.wg.Add(1)
		go f.work(f.lanes[i])
	}
	return f
}

func (f *fanout) lane(convID string) chan fanoutJob {
	return f.lanes[maphash.String(f.seed, convID)%uint64(len(f.lanes))]
}

// enqueue hands stored messages to their lanes, in the order given.
// After close, messages are dropped: they are stored, and members get them
// through sync.
func (f *fanout) enqueue(msgs []storage.Message) {
	f.closeMu.RLock()
	defer f.closeMu.RUnlock()
	if f.closed {
		return
	}
	for _, m := range msgs {
		f.lane(m.ConvID) <- fanoutJob{msg: m}
	}
}

// enqueueWith fans m out to the active members and to extra users.
func (f *fanout) enqueueWith(m storage.Message, extra ...string) {
	f.closeMu.RLock()
	defer f.closeMu.RUnlock()
	if f.closed {
		return
	}
	f.lane(m.ConvID) <- fanoutJob{msg: m, extra: extra}
}

func (f *fanout) work(jobs chan fanoutJob) {
	defer f.wg.Done()
	for j := range jobs {
		f.deliver(j)
	}
}

func (f *fanout) deliver(j fanoutJob) {
	if j.msg.Kind == storage.MsgSystem {
		// Membership changed: this and every later message of the
		// conversation (they are behind it in this lane) use the new list;
		// other nodes drop theirs too.
		f.members.invalidate(j.msg.ConvID)
		f.cluster.MembersChanged(j.msg.ConvID)
	}
	members, err := f.activeMembers(j.msg.ConvID)
	if err != nil {
		// The message is stored; members get it through sync.
		f.log.Warn("fan-out: cannot list members, members will sync", "conv", j.msg.ConvID, "seq", j.msg.Seq, "error", err)
		return
	}
	payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvMessage, Msg: wireMessage(j.msg)})
	if err != nil {
		f.log.Error("fan-out: encode", "error", err)
		return
	}
	for _, m := range members {
		// A member added after this message was committed (its fan-out
		// can lag behind the change) must not receive it.
		if m.fromSeq <= j.msg.Seq {
			f.publish(m.id, payload)
		}
	}
	for _, u := range j.extra {
		f.publish(u, payload)
	}
}

func (f *fanout) publish(user string, payload []byte) {
	if err := f.pub.Publish(protocol.InboxTopic(user), payload); err != nil {
		f.log.Warn("fan-out: publish", "user", user, "error", err)
	}
}

// memberRef is the part of a membership fan-out needs.
type memberRef struct {
	id      string
	fromSeq int64
}

func (f *fanout) activeMembers(convID string) ([]memberRef, error) {
	if ms, ok := f.members.get(convID); ok {
		return ms, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := f.store.ActiveMembers(ctx, convID)
	if err != nil {
		return nil, err
	}
	refs := make([]memberRef, len(ms))
	for i, m := range ms {
		refs[i] = memberRef{id: m.UserID, fromSeq: m.FromSeq}
	}
	f.members.put(convID, refs)
	return refs, nil
}

// close waits until every queued message is published.
func (f *fanout) close() {
	f.closeMu.Lock()
	if !f.closed {
		f.closed = true
		for _, l := range f.lanes {
			close(l)
		}
	}
	f.closeMu.Unlock()
	f.wg.Wait()
}

// memberCache remembers conversations' active members for a short time so
// that fan-out does not query the store for every message. This node drops
// an entry when it changes membership; the TTL bounds staleness for changes
// made elsewhere.
type memberCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]memberEntry
}

type memberEntry struct {
	members []memberRef
	expires time.Time
}

// maxCachedConversations bounds the cache; when full it starts over, which
// costs one query per active conversation.
const maxCachedConversations = 100_000

func newMemberCache(ttl time.Duration, now func() time.Time) *memberCache {
	return &memberCache{ttl: ttl, now: now, entries: make(map[string]memberEntry)}
}

func (c *memberCache) get(convID string) ([]memberRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[convID]
	if !ok || c.now().After(e.expires) {
		return nil, false
	}
	return e.members, true
}

func (c *memberCache) put(convID string, members []memberRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedConversations {
		clear(c.entries)
	}
	c.entries[convID] = memberEntry{members: members, expires: c.now().Add(c.ttl)}
}

func (c *memberCache) invalidate(convID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, convID)
}
