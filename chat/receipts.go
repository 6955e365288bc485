package chat

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// MarkRead records that the user has read conv up to seq and tells the
// senders concerned and the user's other devices.
func (s *Service) MarkRead(ctx context.Context, dev Device, convID string, seq int64) error {
	if seq < 1 {
		return protocol.Errorf(protocol.CodeBadRequest, "read: seq must be >= 1")
	}
	before, err := s.memberOf(ctx, convID, dev.User)
	if err != nil {
		return err
	}
	r, changed, err := s.store.MarkRead(ctx, dev.User, convID, seq)
	if err != nil {
		return s.convError(err, convID)
	}
	if changed {
		s.notifyReceipt(ctx, r, before.Read, true)
	}
	return nil
}

// Receipts returns the members' positions as the asking user may see them.
func (s *Service) Receipts(ctx context.Context, dev Device, convID string) ([]protocol.Receipt, error) {
	if _, err := s.activeMemberOf(ctx, convID, dev.User); err != nil {
		return nil, err
	}
	rs, err := s.store.Receipts(ctx, convID)
	if err != nil {
		return nil, s.storeError("receipts", err)
	}
	shares, err := s.readSharing(ctx, rs)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Receipt, len(rs))
	for i, r := range rs {
		out[i] = protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered}
		if r.UserID == dev.User || (shares[dev.User] && shares[r.UserID]) {
			out[i].Read = r.Read
		} else {
			out[i].ReadHidden = true
		}
	}
	return out, nil
}

// readSharing tells, for the given members, who shares read receipts.
// Settings come from a short-lived cache: without it every receipt in a
// large group would read every member's user row.
func (s *Service) readSharing(ctx context.Context, rs []storage.Receipt) (map[string]bool, error) {
	shares := make(map[string]bool, len(rs))
	for _, r := range rs {
		set, err := s.settings.get(ctx, r.UserID)
		if err != nil {
			return nil, s.storeError("receipts", err)
		}
		shares[r.UserID] = set.ReadReceipts
	}
	return shares, nil
}

// settingsCache remembers users' settings for a short time. This node drops
// an entry when the user changes settings here; the TTL bounds staleness
// for changes made on other nodes.
type settingsCache struct {
	users interface {
		GetUser(ctx context.Context, id string) (storage.User, error)
	}
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]settingsEntry
}

type settingsEntry struct {
	set     storage.Settings
	expires time.Time
}

func newSettingsCache(users interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
}, ttl time.Duration, now func() time.Time) *settingsCache {
	return &settingsCache{users: users, ttl: ttl, now: now, entries: make(map[string]settingsEntry)}
}

func (c *settingsCache) get(ctx context.Context, user string) (storage.Settings, error) {
	c.mu.Lock()
	e, ok := c.entries[user]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.set, nil
	}
	u, err := c.users.GetUser(ctx, user)
	if err != nil {
		return storage.Settings{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedConversations {
		clear(c.entries)
	}
	c.entries[user] = settingsEntry{set: u.Settings, expires: c.now().Add(c.ttl)}
	return u.Settings, nil
}

func (c *settingsCache) invalidate(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, user)
}

// notifyReceipt tells the senders of messages in (prev, now] that the
// subject's delivered (or, when read, read) position moved, and, for reads,
// the subject's own devices. Receipts are best effort: the positions are
// stored and the receipts command returns them, so failures are logged.
func (s *Service) notifyReceipt(ctx context.Context, r storage.Receipt, prev int64, read bool) {
	s.newReceiptBatch().notify(ctx, r, prev, read)
}

// receiptBatch sends the receipts of a batch of position changes that are
// all stored already, reading each conversation's positions and each
// range's senders from the store once for the whole batch. In a group every
// member's device acknowledges the same messages in the same flush, so
// without it each of N changes read all N members' positions and the same
// senders again: N² rows per flush.
type receiptBatch struct {
	s         *Service
	senders   map[senderRange][]string
	positions map[string]convPositions
}

type senderRange struct {
	conv       string
	prev, upTo int64
}

// convPositions is a conversation's members' positions and who of them
// shares read receipts.
type convPositions struct {
	all    []storage.Receipt
	shares map[string]bool
}

func (s *Service) newReceiptBatch() *receiptBatch {
	return &receiptBatch{s: s, senders: make(map[senderRange][]string), positions: make(map[string]convPositions)}
}

func (b *receiptBatch) notify(ctx context.Context, r storage.Receipt, prev int64, read bool) {
	s := b.s
	upTo := r.Delivered
	if read {
		upTo = r.Read
	}
	key := senderRange{r.ConvID, prev, upTo}
	senders, ok := b.senders[key]
	if !ok {
		var err error
		if senders, err = s.store.Senders(ctx, r.ConvID, prev, upTo); err != nil {
			s.log.Warn("receipt: list senders", "conv", r.ConvID, "error", err)
			return
		}
		b.senders[key] = senders
	}
	var recipients []string
	for _, u := range senders {
		if u != r.UserID {
			recipients = append(recipients, u)
		}
	}
	if len(recipients) == 0 && !read {
		return
	}
	pos, ok := b.positions[r.ConvID]
	if !ok {
		all, err := s.store.Receipts(ctx, r.ConvID)
		if err != nil {
			s.log.Warn("receipt: read positions", "conv", r.ConvID, "error", err)
			return
		}
		shares, err := s.readSharing(ctx, all)
		if err != nil {
			s.log.Warn("receipt: read settings", "conv", r.ConvID, "error", err)
			return
		}
		pos = convPositions{all: all, shares: shares}
		b.positions[r.ConvID] = pos
	}
	all, shares := pos.all, pos.shares
	for _, to := range recipients {
		ev := protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered}
		seeReads := shares[to] && shares[r.UserID]
		if seeReads {
			ev.Read = r.Read
		} else {
			ev.ReadHidden = true
		}
		ev.AllDelivered, ev.AllRead = othersPositions(all, to, shares)
		if !shares[to] {
			ev.AllRead = 0
		}
		if read && !seeReads {
			continue // a read nobody may see: nothing new for this sender
		}
		s.publishReceipt(to, ev)
	}
	if read {
		// The reader's other devices update their unread counts.
		s.publishReceipt(r.UserID, protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered, Read: r.Read})
	}
}

// othersPositions returns how far every active member other than user has
// received and read. A member hiding read receipts never counts as having
// read.
func othersPositions(all []storage.Receipt, user string, shares map[string]bool) (delivered, read int64) {
	first := true
	for _, m := range all {
		if m.UserID == user {
			continue
		}
		mr := m.Read
		if !shares[m.UserID] {
			mr = 0
		}
		if first || m.Delivered < delivered {
			delivered = m.Delivered
		}
		if first || mr < read {
			read = mr
		}
		first = false
	}
	return delivered, read
}

func (s *Service) publishReceipt(user string, r protocol.Receipt) {
	payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvReceipt, Receipt: &r})
	if err != nil {
		s.log.Error("receipt: encode", "error", err)
		return
	}
	if err := s.pub.Publish(protocol.InboxTopic(user), payload); err != nil {
		s.log.Warn("receipt: publish", "user", user, "error", err)
	}
}
