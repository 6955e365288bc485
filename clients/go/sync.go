package msgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// Sync fetches everything the broker has not seen this device acknowledge,
// page by page, hands new messages to OnMessage and acknowledges each page.
// It returns when the device is caught up. The Client already syncs by
// itself on every connection; Sync is for when the application must know it
// is caught up (and it must not be called from OnMessage).
func (c *Client) Sync(ctx context.Context) error {
	if c.isClosing() {
		return ErrClosed
	}
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	page, err := c.do(ctx, protocol.OpSync, protocol.Request{Limit: c.cfg.SyncLimit}, idempotent)
	if err != nil {
		return err
	}
	return c.syncPages(ctx, page)
}

// syncPages processes page and the ones after it: each page's messages go
// to the application, then one request acknowledges the page and asks for
// the next; the last page is acknowledged alone. Callers hold syncMu.
func (c *Client) syncPages(ctx context.Context, page *protocol.Event) error {
	for {
		if page.Type != protocol.EvSync {
			return unexpected(protocol.OpSync, page)
		}
		c.deliverPage(page.Msgs)
		if !page.More {
			// The last page tells how many messages are unread.
			c.unreadMu.Lock()
			c.unread.replace(page.Unread)
			c.unreadMu.Unlock()
		}
		cursors := pageCursors(page.Msgs)
		c.log.Debug("msgr: sync page", "msgs", len(page.Msgs), "convs", len(cursors), "more", page.More)
		if !page.More || len(page.Msgs) == 0 {
			if len(cursors) == 0 {
				return nil
			}
			ev, err := c.do(ctx, protocol.OpAck, protocol.Request{Ack: cursors}, idempotent)
			if err == nil && ev.Type != protocol.EvOK {
				err = unexpected(protocol.OpAck, ev)
			}
			if err != nil {
				c.ackLater(cursors)
			}
			return err
		}
		next, err := c.do(ctx, protocol.OpSync, protocol.Request{Limit: c.cfg.SyncLimit, Ack: cursors}, idempotent)
		if err != nil {
			c.ackLater(cursors)
			return err
		}
		page = next
	}
}

// ackLater hands the acknowledgement of a delivered page that could not be
// sent to the flusher (or Close), so a sync cut short does not make the
// next connection deliver the page again.
func (c *Client) ackLater(cursors []protocol.Cursor) {
	convs := make([]string, len(cursors))
	for i, cur := range cursors {
		convs[i] = cur.Conv
	}
	c.trackMu.Lock()
	defer c.trackMu.Unlock()
	c.track.markDirty(convs)
}

// eventLoop handles inbound messages and pushed sync pages in arrival
// order, on one goroutine, so OnMessage calls never overlap.
func (c *Client) eventLoop(ctx context.Context) {
	for {
		it, ok := c.queue.pop(ctx)
		if !ok {
			return
		}
		switch {
		case it.msg != nil:
			c.deliverLive(*it.msg)
		case it.notice != nil:
			c.deliverNotice(it.notice)
		case it.page != nil:
			c.syncMu.Lock()
			err := c.syncPages(ctx, it.page)
			c.syncMu.Unlock()
			c.logSyncError(ctx, err)
		case it.sync:
			c.log.Debug("msgr: syncing to fill a gap")
			c.logSyncError(ctx, c.Sync(ctx))
		}
		if it.ack != nil {
			it.ack()
		}
	}
}

func (c *Client) logSyncError(ctx context.Context, err error) {
	// A sync cut short is not lost: the broker pushes a new first page on
	// every connection and the next one starts from the durable cursor.
	if err != nil && ctx.Err() == nil {
		c.log.Warn("msgr: sync failed", "err", err)
	}
}

// deliverLive hands a live message to the application unless it already
// had it, and schedules its acknowledgement.
func (c *Client) deliverLive(m protocol.Message) {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.seen(m) {
		return
	}
	c.handle(m)
	c.trackMu.Lock()
	c.track.add(m.Conv, m.Seq-1, m.Seq, true)
	c.trackMu.Unlock()
}

// deliverPage hands a sync page's new messages to the application. The
// page's ranges are recorded as received but not marked for the flusher:
// syncPages acknowledges pages itself.
func (c *Client) deliverPage(msgs []protocol.Message) {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	for _, m := range msgs {
		if c.seen(m) {
			continue
		}
		c.handle(m)
		c.trackMu.Lock()
		c.track.add(m.Conv, m.Seq-1, m.Seq, false)
		c.trackMu.Unlock()
	}
	c.trackMu.Lock()
	defer c.trackMu.Unlock()
	for _, cur := range pageCursors(msgs) {
		c.track.add(cur.Conv, cur.From, cur.Seq, false)
	}
}

func (c *Client) seen(m protocol.Message) bool {
	c.trackMu.Lock()
	defer c.trackMu.Unlock()
	return c.track.seen(m.Conv, m.Seq)
}

func (c *Client) handle(m protocol.Message) {
	c.unreadMu.Lock()
	c.unread.message(m, c.cfg.User)
	c.unreadMu.Unlock()
	if c.cfg.OnMessage != nil {
		c.cfg.OnMessage(m)
	}
}

// deliverNotice hands a receipt, presence or typing event to the
// application. A receipt of the user's own read position (another device
// read) updates the unread counts first.
func (c *Client) deliverNotice(ev *protocol.Event) {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	switch ev.Type {
	case protocol.EvReceipt:
		if r := ev.Receipt; r.User == c.cfg.User {
			c.unreadMu.Lock()
			c.unread.markRead(r.Conv, r.Read)
			c.unreadMu.Unlock()
		}
		if c.cfg.OnReceipt != nil {
			c.cfg.OnReceipt(*ev.Receipt)
		}
	case protocol.EvPresence:
		if c.cfg.OnPresence != nil {
			for _, p := range ev.Presence {
				c.cfg.OnPresence(p)
			}
		}
	case protocol.EvTyping:
		if c.cfg.OnTyping != nil {
			c.cfg.OnTyping(*ev.Typing)
		}
	}
}

// flushLoop acknowledges live messages every AckInterval, so a burst (or
// out-of-order arrivals 6 then 5) becomes one range acknowledgement, and
// asks for a sync when a gap in a conversation does not close.
func (c *Client) flushLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		if err := c.flushAcks(fctx); err != nil && ctx.Err() == nil {
			c.log.Debug("msgr: acknowledgement failed; will retry", "err", err)
		}
		cancel()
		c.trackMu.Lock()
		gaps := c.track.gapsToSync(time.Now(), c.gapWait)
		c.trackMu.Unlock()
		if len(gaps) > 0 {
			c.log.Debug("msgr: gap in conversations", "convs", gaps)
			c.queue.push(queued{sync: true})
		}
	}
}

// flushAcks sends the pending range acknowledgements. What fails is marked
// pending again for the next flush.
func (c *Client) flushAcks(ctx context.Context) error {
	c.trackMu.Lock()
	cursors := c.track.takeDirty()
	c.trackMu.Unlock()
	for len(cursors) > 0 {
		n := min(len(cursors), protocol.MaxAcks)
		ev, err := c.doRetry(ctx, protocol.OpAck, protocol.Request{Ack: cursors[:n]}, idempotent)
		if err == nil && ev.Type != protocol.EvOK {
			err = unexpected(protocol.OpAck, ev)
		}
		if err != nil {
			c.ackLater(cursors)
			if errors.Is(err, ErrClosed) {
				return err
			}
			return fmt.Errorf("acknowledging %d ranges: %w", len(cursors), err)
		}
		cursors = cursors[n:]
	}
	return nil
}
