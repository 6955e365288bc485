package broker

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// connectTimeout bounds how long a new connection may take to send its
// CONNECT. mochi sets no deadline until it has read one, so a silent
// connection would otherwise hold its goroutines forever and block
// shutdown (mochi waits for every connection it was handed).
const connectTimeout = 10 * time.Second

var errShuttingDown = errors.New("broker shutting down")

// connTracker knows every connection the listeners hand to mochi, so that
// Close can end the ones mochi does not know yet (still before CONNECT) and
// wait for all of them. Admission and the close flag share a mutex, so
// every mochi ClientsWg.Add happens before Close waits: waiting on mochi's
// WaitGroup while a connection is being admitted is a data race.
type connTracker struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newConnTracker() *connTracker {
	return &connTracker{conns: map[net.Conn]struct{}{}}
}

// wrap returns l with its connections tracked and their CONNECT bounded.
func (t *connTracker) wrap(l listeners.Listener) listeners.Listener {
	return &trackedListener{Listener: l, t: t}
}

func (t *connTracker) enter(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *connTracker) leave(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

// closeAll admits no more connections, closes those still open and waits
// until mochi has finished with every one, or ctx ends.
func (t *connTracker) closeAll(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type trackedListener struct {
	listeners.Listener
	t *connTracker
}

func (l *trackedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		if !l.t.enter(c) {
			_ = c.Close()
			return errShuttingDown
		}
		defer l.t.leave(c)
		// mochi replaces the deadline with the client's keepalive once it
		// has read the CONNECT.
		_ = c.SetDeadline(time.Now().Add(connectTimeout))
		return establish(id, c)
	})
}
