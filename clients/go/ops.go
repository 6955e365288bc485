package msgr

import (
	"context"

	"github.com/msgrhq/msgr/protocol"
)

// Member roles in a group.
const (
	RoleOwner  = protocol.RoleOwner
	RoleAdmin  = protocol.RoleAdmin
	RoleMember = protocol.RoleMember
)

// Outgoing is a text or media message to send.
type Outgoing struct {
	// Conv is the conversation to send to; or
	Conv string
	// To is a user: the direct conversation with them, created on first use.
	To string
	// CMID is the idempotency key: the broker stores a message once per
	// (user, conversation, CMID). NewCMID is used if empty.
	CMID string
	// Text is the message text, or a media message's optional caption.
	Text string
	// Media, when set, is the id of an upload (Upload) to send as a media
	// message; recipients get its thumbnail inline and Download the rest.
	Media string
}

// Send sends text to conversation conv. See SendMessage.
func (c *Client) Send(ctx context.Context, conv, text string) (protocol.Sent, error) {
	return c.SendMessage(ctx, Outgoing{Conv: conv, Text: text})
}

// SendTo sends text to the direct conversation with user. See SendMessage.
func (c *Client) SendTo(ctx context.Context, user, text string) (protocol.Sent, error) {
	return c.SendMessage(ctx, Outgoing{To: user, Text: text})
}

// SendMessage sends m and returns once the broker has stored it. After a
// timeout, a disconnection or a retryable error it sends m again with the
// same CMID until ctx is done; the broker stores it once and then answers
// with Sent.Dup set. Errors from the broker are *protocol.Error. Sending
// marks the conversation read up to the message.
func (c *Client) SendMessage(ctx context.Context, m Outgoing) (protocol.Sent, error) {
	if m.CMID == "" {
		m.CMID = NewCMID()
	}
	req := protocol.Request{
		Conv: m.Conv,
		To:   m.To,
		CMID: m.CMID,
		Body: &protocol.Body{Type: protocol.BodyText, Text: m.Text},
	}
	if m.Media != "" {
		req.Body = &protocol.Body{Type: protocol.BodyMedia, Text: m.Text, Media: &protocol.Media{ID: m.Media}}
	}
	ev, err := c.do(ctx, protocol.OpSend, req, idempotent)
	if err != nil {
		return protocol.Sent{}, err
	}
	if ev.Type != protocol.EvSent || ev.Sent == nil {
		return protocol.Sent{}, unexpected(protocol.OpSend, ev)
	}
	// Sending reads the conversation up to the message.
	c.unreadMu.Lock()
	c.unread.sent(ev.Sent.Conv, ev.Sent.Seq)
	c.unreadMu.Unlock()
	return *ev.Sent, nil
}

// History returns up to limit messages of conv with seq < before (0: the
// newest), oldest first, and whether older ones exist. limit 0 lets the
// broker choose.
func (c *Client) History(ctx context.Context, conv string, before int64, limit int) ([]protocol.Message, bool, error) {
	req := protocol.Request{Conv: conv, Before: before, Limit: limit}
	ev, err := c.do(ctx, protocol.OpHistory, req, idempotent)
	if err != nil {
		return nil, false, err
	}
	if ev.Type != protocol.EvHistory {
		return nil, false, unexpected(protocol.OpHistory, ev)
	}
	return ev.Msgs, ev.More, nil
}

// Direct returns the direct conversation with user, creating it on first use.
func (c *Client) Direct(ctx context.Context, user string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpDirect, protocol.Request{User: user}, idempotent)
}

// Conversation returns conversation conv with its members.
func (c *Client) Conversation(ctx context.Context, conv string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpConversation, protocol.Request{Conv: conv}, idempotent)
}

// Conversations returns up to limit of the user's conversations, most
// recently active first, with the user's read position and unread count
// (which also update Unread). limit 0 lets the broker choose.
func (c *Client) Conversations(ctx context.Context, limit int) ([]protocol.Conversation, error) {
	ev, err := c.do(ctx, protocol.OpConversations, protocol.Request{Limit: limit}, idempotent)
	if err != nil {
		return nil, err
	}
	if ev.Type != protocol.EvConversations {
		return nil, unexpected(protocol.OpConversations, ev)
	}
	c.unreadMu.Lock()
	for _, cv := range ev.Convs {
		c.unread.set(cv.ID, cv.Read, cv.LastSeq, cv.Unread)
	}
	c.unreadMu.Unlock()
	return ev.Convs, nil
}

// The group operations below change state and are not idempotent, so they
// are not repeated after a timeout or disconnection: the error then wraps
// ErrNoReply and the operation may or may not have happened.

// CreateGroup creates a group owned by the user with the given other members.
func (c *Client) CreateGroup(ctx context.Context, title string, members ...string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpGroupCreate, protocol.Request{Title: title, Members: members}, once)
}

// AddMember adds user to group conv with role RoleMember or RoleAdmin
// (empty: RoleMember).
func (c *Client) AddMember(ctx context.Context, conv, user, role string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpGroupAdd, protocol.Request{Conv: conv, User: user, Role: role}, once)
}

// RemoveMember removes user from group conv.
func (c *Client) RemoveMember(ctx context.Context, conv, user string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpGroupRemove, protocol.Request{Conv: conv, User: user}, once)
}

// Leave leaves group conv.
func (c *Client) Leave(ctx context.Context, conv string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpGroupLeave, protocol.Request{Conv: conv}, once)
}

// SetRole makes user RoleAdmin or RoleMember of group conv.
func (c *Client) SetRole(ctx context.Context, conv, user, role string) (protocol.Conversation, error) {
	return c.conversation(ctx, protocol.OpGroupRole, protocol.Request{Conv: conv, User: user, Role: role}, once)
}

func (c *Client) conversation(ctx context.Context, op protocol.Op, req protocol.Request, policy retryPolicy) (protocol.Conversation, error) {
	ev, err := c.do(ctx, op, req, policy)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if ev.Type != protocol.EvConversation || ev.Conv == nil {
		return protocol.Conversation{}, unexpected(op, ev)
	}
	return *ev.Conv, nil
}
