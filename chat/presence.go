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

// presenceStore is what presence needs from the store.
type presenceStore interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
	SetLastSeen(ctx context.Context, id string, t time.Time) error
	Contacts(ctx context.Context, id string) ([]string, error)
	SharesConversation(ctx context.Context, a, b string) (bool, error)
}

// Conn identifies one connection of a device. Presence counts connections,
// not client ids: on a session takeover mochi establishes the new
// connection before it reports the old one gone, so the user never drops
// to zero connections.
type Conn any

// presence tracks which users have a device connected to this node and
// tells their direct contacts when they come online or go offline.
// Transitions are queued in order and handled by one goroutine, so that
// contacts never see "offline" overtake a later "online"; the queue is a
// slice, not a bounded channel, so that a slow store never stalls mochi's
// connect and disconnect paths (a backlog costs a few bytes a transition).
type presence struct {
	store   presenceStore
	pub     Publisher
	cluster Cluster
	now     func() time.Time
	log     *slog.Logger

	// stripes serialise one user's registry changes, so that Attach and
	// Detach reach the cluster in the order this node decided them.
	seed    maphash.Seed
	stripes [256]sync.Mutex

	mu     sync.Mutex
	conns  map[Device]map[Conn]struct{}
	users  map[string]int // devices with a connection here, per user
	queue  []presenceEvent
	closed bool

	wake chan struct{}
	done chan struct{}
}

// clusterTimeout bounds one registry call on the connect and disconnect
// paths; past it the node decides from what it knows locally.
const clusterTimeout = 2 * time.Second

type presenceEvent struct {
	user   string
	online bool
	at     time.Time
}

func newPresence(store presenceStore, pub Publisher, cluster Cluster, now func() time.Time, log *slog.Logger) *presence {
	p := &presence{
		store:   store,
		pub:     pub,
		cluster: cluster,
		now:     now,
		log:     log,
		seed:    maphash.MakeSeed(),
		conns:   make(map[Device]map[Conn]struct{}),
		users:   make(map[string]int),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go p.run()
	return p
}

func (p *presence) stripe(user string) *sync.Mutex {
	return &p.stripes[maphash.String(p.seed, user)%uint64(len(p.stripes))]
}

// connect records a connection. A device's first connection here attaches
// it to the cluster registry; the user comes online with their first
// device anywhere.
func (p *presence) connect(dev Device, c Conn) {
	st := p.stripe(dev.User)
	st.Lock()
	defer st.Unlock()
	p.mu.Lock()
	set := p.conns[dev]
	if set == nil {
		set = make(map[Conn]struct{})
		p.conns[dev] = set
	}
	_, known := set[c]
	set[c] = struct{}{}
	up := len(set) == 1 && !known
	if up {
		p.users[dev.User]++
	}
	alone := p.users[dev.User] == 1
	p.mu.Unlock()
	if !up {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	first, err := p.cluster.Attach(ctx, dev.User, dev.Device)
	cancel()
	if err != nil {
		p.log.Warn("presence: cluster registry unavailable, deciding locally", "user", dev.User, "error", err)
		first = alone
	}
	if first {
		p.mu.Lock()
		p.enqueue(presenceEvent{user: dev.User, online: true, at: p.now()})
		p.mu.Unlock()
	}
}

// enqueue adds a transition; p.mu is held.
func (p *presence) enqueue(ev presenceEvent) {
	p.queue = append(p.queue, ev)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// disconnect forgets a connection; a device's last connection here
// detaches it, and the user goes offline with their last device anywhere.
func (p *presence) disconnect(dev Device, c Conn) {
	st := p.stripe(dev.User)
	st.Lock()
	defer st.Unlock()
	p.mu.Lock()
	set := p.conns[dev]
	_, known := set[c]
	delete(set, c)
	down := known && len(set) == 0
	if down {
		delete(p.conns, dev)
		if p.users[dev.User]--; p.users[dev.User] <= 0 {
			delete(p.users, dev.User)
		}
	}
	alone := p.users[dev.User] == 0
	p.mu.Unlock()
	if !down {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	last, err := p.cluster.Detach(ctx, dev.User, dev.Device)
	cancel()
	if err != nil {
		p.log.Warn("presence: cluster registry unavailable, deciding locally", "user", dev.User, "error", err)
		last = alone
	}
	if last {
		p.mu.Lock()
		p.enqueue(presenceEvent{user: dev.User, online: false, at: p.now()})
		p.mu.Unlock()
	}
}

func (p *presence) online(ctx context.Context, user string) bool {
	on, err := p.cluster.Online(ctx, user)
	if err != nil {
		p.log.Warn("presence: cluster registry unavailable, answering locally", "user", user, "error", err)
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.users[user] > 0
	}
	return on
}

func (p *presence) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		batch, closed := p.queue, p.closed
		p.queue = nil
		p.mu.Unlock()
		for _, ev := range batch {
			p.transition(ev)
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-p.wake
		}
	}
}

// close handles what is queued and stops; later transitions are dropped.
func (p *presence) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-p.done
}

// transition stores last seen (on connect too, so that after a crash last
// seen is at worst the last connect, never "online forever") and tells the
// user's direct contacts, unless the user hides presence.
func (p *presence) transition(ev presenceEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.store.SetLastSeen(ctx, ev.user, ev.at); err != nil {
		p.log.Warn("presence: store last seen", "user", ev.user, "error", err)
	}
	u, err := p.store.GetUser(ctx, ev.user)
	if err != nil {
		p.log.Warn("presence: read settings", "user", ev.user, "error", err)
		return
	}
	if u.Settings.Presence == storage.VisibleNobody {
		return
	}
	contacts, err := p.store.Contacts(ctx, ev.user)
	if err != nil {
		p.log.Warn("presence: list contacts", "user", ev.user, "error", err)
		return
	}
	state := protocol.Presence{User: ev.user, Online: ev.online}
	if !ev.online {
		state.LastSeen = ev.at.UnixMilli()
	}
	payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvPresence, Presence: []protocol.Presence{state}})
	if err != nil {
		p.log.Error("presence: encode", "error", err)
		return
	}
	for _, c := range contacts {
		if err := p.pub.Notify(protocol.InboxTopic(c), payload); err != nil {
			p.log.Warn("presence: publish", "user", c, "error", err)
		}
	}
}

// Connected records that dev connected (conn identifies the connection,
// e.g. the mochi client). In a cluster it registers the device before it
// returns, so that messages stored from then on are routed to this node.
func (s *Service) Connected(dev Device, conn Conn) { s.presence.connect(dev, conn) }

// Disconnected records that the connection is gone.
func (s *Service) Disconnected(dev Device, conn Conn) { s.presence.disconnect(dev, conn) }

// maxPresenceQuery bounds one presence request.
const maxPresenceQuery = 100

// Presence reports users' presence as dev's user may see it.
func (s *Service) Presence(ctx context.Context, dev Device, users []string) ([]protocol.Presence, error) {
	if len(users) == 0 || len(users) > maxPresenceQuery {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "presence: 1-%d users required", maxPresenceQuery)
	}
	out := make([]protocol.Presence, 0, len(users))
	for _, id := range users {
		if !protocol.ValidID(id) {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "presence: invalid user id %q", id)
		}
		u, err := s.store.GetUser(ctx, id)
		if err != nil {
			// An unknown user looks like a hidden one: presence does not
			// reveal which accounts exist.
			if isNotFound(err) {
				out = append(out, protocol.Presence{User: id, Hidden: true})
				continue
			}
			return nil, s.storeError("presence", err)
		}
		visible, err := s.canSee(ctx, dev.User, u)
		if err != nil {
			return nil, err
		}
		if !visible {
			out = append(out, protocol.Presence{User: id, Hidden: true})
			continue
		}
		p := protocol.Presence{User: id, Online: s.presence.online(ctx, id)}
		if !u.LastSeen.IsZero() {
			p.LastSeen = u.LastSeen.UnixMilli()
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Service) canSee(ctx context.Context, me string, u storage.User) (bool, error) {
	switch {
	case u.ID == me:
		return true, nil
	case u.Settings.Presence == storage.VisibleEveryone:
		return true, nil
	case u.Settings.Presence == storage.VisibleNobody:
		return false, nil
	}
	shares, err := s.store.SharesConversation(ctx, me, u.ID)
	if err != nil {
		return false, s.storeError("presence", err)
	}
	return shares, nil
}
