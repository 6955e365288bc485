package chat

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/msgrhq/msgr/storage"
)

var errClosed = errors.New("chat: writer closed")

// commitTimeout bounds one batch transaction.
const commitTimeout = 15 * time.Second

// appender is the store call the writer batches.
type appender interface {
	AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error)
}

// writer group-commits messages: concurrent senders queue their message and
// wait; one goroutine stores everything queued so far in a single
// transaction, hands the stored messages to onStored in commit order, and
// then wakes the senders. There is no timer: a batch is whatever arrived
// while the previous one was committing, so a lone sender pays one commit
// and a busy broker pays one commit per batch.
type writer struct {
	store    appender
	maxBatch int
	onStored func([]storage.Message)

	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	closed  bool
	stopped chan struct{}
}

type pending struct {
	msg  storage.NewMessage
	res  storage.AppendResult
	err  error
	done chan struct{}
}

func newWriter(store appender, maxBatch int, onStored func([]storage.Message)) *writer {
	w := &writer{
		store:    store,
		maxBatch: maxBatch,
		onStored: onStored,
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
	}
	go w.run()
	return w
}

// append queues m and waits until its batch is committed or ctx is done.
// When ctx ends first the message may still be stored: clients retry with
// the same client message id, which the store deduplicates.
func (w *writer) append(ctx context.Context, m storage.NewMessage) (storage.AppendResult, error) {
	p := &pending{msg: m, done: make(chan struct{})}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return storage.AppendResult{}, errClosed
	}
	w.queue = append(w.queue, p)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return storage.AppendResult{}, ctx.Err()
	}
}

func (w *writer) run() {
	defer close(w.stopped)
	for {
		batch, closed := w.take()
		if len(batch) > 0 {
			w.commit(batch)
			continue
		}
		if closed {
			return
		}
		<-w.wake
	}
}

// take removes up to maxBatch queued messages.
func (w *writer) take() ([]*pending, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.queue), w.maxBatch)
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	return batch, w.closed
}

func (w *writer) commit(batch []*pending) {
	msgs := make([]storage.NewMessage, len(batch))
	for i, p := range batch {
		msgs[i] = p.msg
	}
	// The senders' contexts do not cancel the commit: one sender giving up
	// must not fail the others. The timeout bounds a hung database; senders
	// then see a retryable error and retransmit with the same client message
	// id, which the store deduplicates should the commit have succeeded.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	results, err := w.store.AppendMessages(ctx, msgs)
	if err == nil && len(results) != len(batch) {
		err = errors.New("chat: store returned a result count that does not match the batch")
	}
	if err == nil {
		stored := make([]storage.Message, 0, len(results))
		for _, r := range results {
			if r.Err == nil && !r.Duplicate {
				stored = append(stored, r.Message)
			}
		}
		if len(stored) > 0 {
			w.onStored(stored)
		}
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.res = results[i]
		}
		close(p.done)
	}
}

// close stops accepting messages and waits until everything queued is committed.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.stopped
		return
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.stopped
}
