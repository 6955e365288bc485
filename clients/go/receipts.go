package msgr

import (
	"context"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// Who may see the user's presence (Settings.Presence).
const (
	PresenceEveryone = protocol.PresenceEveryone
	PresenceContacts = protocol.PresenceContacts
	PresenceNobody   = protocol.PresenceNobody
)

// TypingInterval is the least time between two Typing calls for one
// conversation; the broker refuses more frequent ones with rate_limited.
const TypingInterval = 2 * time.Second

// MarkRead tells the user's contacts and other devices that the user has
// read conversation conv up to seq (the broker caps it at the newest
// message), and updates Unread. Read positions never move back, so
// marking an older seq is harmless.
func (c *Client) MarkRead(ctx context.Context, conv string, seq int64) error {
	ev, err := c.do(ctx, protocol.OpRead, protocol.Request{Conv: conv, Seq: seq}, idempotent)
	if err != nil {
		return err
	}
	if ev.Type != protocol.EvOK {
		return unexpected(protocol.OpRead, ev)
	}
	c.unreadMu.Lock()
	c.unread.markReadKnown(conv, seq)
	c.unreadMu.Unlock()
	return nil
}

// Unread returns the number of unread messages of each conversation that
// has any. It starts from the broker's counts (sent at the end of every
// sync, and in Conversations replies) and follows the messages from
// others that arrive and what the user's devices mark read or send.
func (c *Client) Unread() map[string]int64 {
	c.unreadMu.Lock()
	defer c.unreadMu.Unlock()
	return c.unread.counts()
}

// Receipts returns how far every active member of conv has received and
// read it. Read is 0 for members who do not share read receipts, and for
// everyone when the user does not. ReceiptFor sums them up.
func (c *Client) Receipts(ctx context.Context, conv string) ([]protocol.Receipt, error) {
	ev, err := c.do(ctx, protocol.OpReceipts, protocol.Request{Conv: conv}, idempotent)
	if err != nil {
		return nil, err
	}
	if ev.Type != protocol.EvReceipts {
		return nil, unexpected(protocol.OpReceipts, ev)
	}
	return ev.Receipts, nil
}

// Typing tells the other members of conv that the user is typing. It is
// sent once, not retried, and returns when the broker has taken it; the
// broker answers nothing on success. Call it at most every TypingInterval
// while the user types: more often fails with a *protocol.Error of code
// rate_limited.
func (c *Client) Typing(ctx context.Context, conv string) error {
	return c.notify(ctx, protocol.OpTyping, protocol.Request{Conv: conv})
}

// Presence returns the presence of users (at most 100) as the user may
// see it: users who do not share it with the user are Hidden.
func (c *Client) Presence(ctx context.Context, users ...string) ([]protocol.Presence, error) {
	ev, err := c.do(ctx, protocol.OpPresence, protocol.Request{Users: users}, idempotent)
	if err != nil {
		return nil, err
	}
	if ev.Type != protocol.EvPresence {
		return nil, unexpected(protocol.OpPresence, ev)
	}
	return ev.Presence, nil
}

// Settings returns the user's privacy settings.
func (c *Client) Settings(ctx context.Context) (protocol.Settings, error) {
	return c.settings(ctx, protocol.Request{})
}

// SetSettings changes the user's privacy settings and returns them:
// presence is PresenceEveryone, PresenceContacts or PresenceNobody, or ""
// to keep it; readReceipts nil keeps that setting.
func (c *Client) SetSettings(ctx context.Context, presence string, readReceipts *bool) (protocol.Settings, error) {
	return c.settings(ctx, protocol.Request{Presence: presence, ReadReceipts: readReceipts})
}

func (c *Client) settings(ctx context.Context, req protocol.Request) (protocol.Settings, error) {
	// Setting values, not toggling them: repeating is harmless.
	ev, err := c.do(ctx, protocol.OpSettings, req, idempotent)
	if err != nil {
		return protocol.Settings{}, err
	}
	if ev.Type != protocol.EvSettings || ev.Settings == nil {
		return protocol.Settings{}, unexpected(protocol.OpSettings, ev)
	}
	return *ev.Settings, nil
}

// Status is how far one of the user's own messages has got.
type Status int

// Statuses, in order.
const (
	StatusSent      Status = iota + 1 // stored by the broker: ✓
	StatusDelivered                   // every other member has it: ✓✓
	StatusRead                        // every other member has read it
)

// String returns "sent", "delivered" or "read".
func (s Status) String() string {
	switch s {
	case StatusSent:
		return "sent"
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	return "unknown"
}

// StatusOf tells the status of the user's message seq from the latest
// receipt of its conversation: an OnReceipt event, or ReceiptFor of a
// Receipts reply. Without read receipts on both sides a message is at
// most delivered.
func StatusOf(seq int64, r protocol.Receipt) Status {
	switch {
	case r.AllRead >= seq:
		return StatusRead
	case r.AllDelivered >= seq:
		return StatusDelivered
	}
	return StatusSent
}

// ReceiptFor sums up a Receipts reply for user, as a receipt event would:
// user's own positions, and in AllDelivered and AllRead how far every
// other member has got. Both are 0 when user is the only member.
func ReceiptFor(user string, receipts []protocol.Receipt) protocol.Receipt {
	var sum protocol.Receipt
	others := 0
	for _, r := range receipts {
		sum.Conv = r.Conv
		if r.User == user {
			sum.User, sum.Delivered, sum.Read = r.User, r.Delivered, r.Read
			continue
		}
		if others == 0 {
			sum.AllDelivered, sum.AllRead = r.Delivered, r.Read
		} else {
			sum.AllDelivered, sum.AllRead = min(sum.AllDelivered, r.Delivered), min(sum.AllRead, r.Read)
		}
		others++
	}
	sum.User = user
	return sum
}
