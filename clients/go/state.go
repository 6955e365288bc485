package msgr

import (
	"context"
	"sync"

	"github.com/eclipse/paho.golang/paho"
	"github.com/msgrhq/msgr/protocol"
)

// publisher is the part of the MQTT connection requests need;
// *autopaho.ConnectionManager implements it.
type publisher interface {
	Publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error)
}

// link is one MQTT connection on which the client is subscribed.
type link struct {
	pub  publisher
	down chan struct{} // closed when the connection is lost
}

// linkState tracks whether requests can be sent: a connection is up and its
// subscriptions are in place, so that replies on the device topic arrive.
type linkState struct {
	mu    sync.Mutex
	gen   uint64        // bumped by every connection up and down
	up    *link         // non-nil while connected and subscribed
	ready chan struct{} // closed when up becomes non-nil
}

func newLinkState() *linkState {
	return &linkState{ready: make(chan struct{})}
}

// connected records a new connection and returns its generation, to be
// passed to subscribed once its subscriptions are in place.
func (s *linkState) connected() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return s.gen
}

// subscribed makes connection gen usable, unless it was lost meanwhile.
func (s *linkState) subscribed(gen uint64, pub publisher) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.up != nil {
		return false
	}
	s.up = &link{pub: pub, down: make(chan struct{})}
	close(s.ready)
	return true
}

// isCurrent reports whether gen is the latest connection and still up.
func (s *linkState) isCurrent(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen == gen
}

// lost records that the current connection dropped.
func (s *linkState) lost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if s.up != nil {
		close(s.up.down)
		s.up = nil
		s.ready = make(chan struct{})
	}
}

// current returns the usable link, or nil and a channel closed when there
// is one.
func (s *linkState) current() (*link, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.ready
}

// pendingRequests routes replies to the requests waiting for them.
type pendingRequests struct {
	mu sync.Mutex
	m  map[string]chan *protocol.Event
}

func (p *pendingRequests) add(id string) <-chan *protocol.Event {
	ch := make(chan *protocol.Event, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]chan *protocol.Event)
	}
	p.m[id] = ch
	return ch
}

func (p *pendingRequests) remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}

// deliver hands ev to the request id and reports whether one was waiting.
// It never blocks: it runs on the MQTT client's receive goroutine.
func (p *pendingRequests) deliver(id string, ev *protocol.Event) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.m[id]
	if !ok {
		return false
	}
	delete(p.m, id)
	ch <- ev // buffered, and each id is delivered at most once
	return true
}

// queued is work for the client's event loop: exactly one field is set.
type queued struct {
	msg    *protocol.Message // live message from the inbox
	page   *protocol.Event   // sync page the broker pushed unasked
	notice *protocol.Event   // receipt, presence or typing event from the inbox
	sync   bool              // run a sync (a gap did not close)
	ack    func()            // acknowledges msg or page to the broker once handled
}

// eventQueue is an unbounded FIFO. The MQTT receive goroutine must never
// block on the application (the application's handler may itself send
// requests, whose replies arrive on that same goroutine), so inbound events
// are queued here and handled on the client's own goroutine.
type eventQueue struct {
	mu    sync.Mutex
	items []queued
	wake  chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1)}
}

func (q *eventQueue) push(it queued) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, waiting for one until ctx is done.
func (q *eventQueue) pop(ctx context.Context) (queued, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = queued{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return queued{}, false
		}
	}
}
