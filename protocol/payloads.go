package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the payload version this package speaks; every payload carries
// it as "v".
const Version = 1

// Default limits; the broker's effective limits are configurable.
const (
	DefaultMaxTextBytes = 16 * 1024 // UTF-8 bytes of a text body
	MaxCMIDLen          = 64        // client message id length
	DefaultSyncLimit    = 100       // messages per sync or history page
	MaxSyncLimit        = 500
	MaxAcks             = 1000 // cursor updates per request
)

// Request is the envelope every command shares. Fields that a command does
// not use must be absent. docs/PROTOCOL.md lists which fields each op takes.
type Request struct {
	V  int    `json:"v"`
	ID string `json:"id,omitempty"` // request id, echoed as Event.Req

	Conv    string   `json:"conv,omitempty"`    // send, history, group.*, conversation
	To      string   `json:"to,omitempty"`      // send: direct conversation with this user
	CMID    string   `json:"cmid,omitempty"`    // send: client message id (idempotency key)
	Body    *Body    `json:"body,omitempty"`    // send
	User    string   `json:"user,omitempty"`    // direct, group.add, group.remove, group.role
	Role    string   `json:"role,omitempty"`    // group.add, group.role
	Title   string   `json:"title,omitempty"`   // group.create
	Members []string `json:"members,omitempty"` // group.create
	Before  int64    `json:"before,omitempty"`  // history: messages with seq < before (0 = newest)
	Limit   int      `json:"limit,omitempty"`   // sync, history, conversations
	Ack     []Cursor `json:"ack,omitempty"`     // sync, ack: "I have everything up to seq"
	Seq     int64    `json:"seq,omitempty"`     // read: everything up to seq is read
	Users   []string `json:"users,omitempty"`   // presence: whose presence to report

	// settings: fields to change; absent fields stay as they are.
	Presence     string `json:"presence,omitempty"`      // everyone, contacts, nobody
	ReadReceipts *bool  `json:"read_receipts,omitempty"` // share and see read receipts
}

// Cursor says a device has every message of Conv with From < seq <= Seq.
// The broker advances the device's durable cursor to Seq only if it already
// is at least From, so acknowledging a range after a gap never skips the
// gap. From 0 asserts the device has everything up to Seq.
type Cursor struct {
	Conv string `json:"conv"`
	From int64  `json:"from,omitempty"`
	Seq  int64  `json:"seq"`
}

// Body types.
const (
	BodyText   = "text"
	BodySystem = "system"
)

// Body is a message body. Type selects which other fields are set; new types
// (media) add fields without changing existing ones.
type Body struct {
	Type  string `json:"type"`
	Text  string `json:"text,omitempty"`  // text; media: optional caption
	Media *Media `json:"media,omitempty"` // media

	// system: what happened to the conversation.
	Event string `json:"event,omitempty"` // group_created, member_added, member_removed, member_left, role_changed
	User  string `json:"user,omitempty"`  // the member concerned
	By    string `json:"by,omitempty"`    // who did it
	Role  string `json:"role,omitempty"`  // role_changed, member_added
	Title string `json:"title,omitempty"` // group_created
}

// System event names carried in Body.Event.
const (
	SysGroupCreated  = "group_created"
	SysMemberAdded   = "member_added"
	SysMemberRemoved = "member_removed"
	SysMemberLeft    = "member_left"
	SysRoleChanged   = "role_changed"
)

// EventType names what an Event carries.
type EventType string

// Event types.
const (
	EvMessage       EventType = "message"       // Msg: a new message (inbox)
	EvSent          EventType = "sent"          // Sent: reply to send
	EvSync          EventType = "sync"          // Msgs, More: reply to sync, or pushed on subscribe
	EvHistory       EventType = "history"       // Msgs, More: reply to history
	EvConversation  EventType = "conversation"  // Conv: reply to direct, group.*, conversation
	EvConversations EventType = "conversations" // Convs: reply to conversations
	EvOK            EventType = "ok"            // reply to ack, read
	EvError         EventType = "error"         // Error: a request failed
	EvReceipt       EventType = "receipt"       // Receipt: a member received or read messages (inbox)
	EvReceipts      EventType = "receipts"      // Receipts: reply to receipts
	EvPresence      EventType = "presence"      // Presence: contacts came online or went offline (inbox, QoS 0), reply to presence
	EvTyping        EventType = "typing"        // Typing: a member is typing (inbox, QoS 0)
	EvSettings      EventType = "settings"      // Settings: reply to settings
)

// Event is every payload the broker publishes.
type Event struct {
	V     int            `json:"v"`
	Type  EventType      `json:"type"`
	Op    Op             `json:"op,omitempty"`  // the request's op, on replies
	Req   string         `json:"req,omitempty"` // the request's id, on replies
	Msg   *Message       `json:"msg,omitempty"`
	Msgs  []Message      `json:"msgs,omitempty"`
	More  bool           `json:"more,omitempty"`
	Sent  *Sent          `json:"sent,omitempty"`
	Conv  *Conversation  `json:"conv,omitempty"`
	Convs []Conversation `json:"convs,omitempty"`
	Error *Error         `json:"error,omitempty"`

	Unread   []Unread   `json:"unread,omitempty"` // sync (last page): conversations with unread messages
	Receipt  *Receipt   `json:"receipt,omitempty"`
	Receipts []Receipt  `json:"receipts,omitempty"`
	Presence []Presence `json:"presence,omitempty"`
	Typing   *Typing    `json:"typing,omitempty"`
	Settings *Settings  `json:"settings,omitempty"`
}

// Unread tells how many messages of a conversation the user has not read.
type Unread struct {
	Conv    string `json:"conv"`
	LastSeq int64  `json:"last_seq"`
	Read    int64  `json:"read"`
	Count   int64  `json:"count"`
}

// Receipt is how far a member has received and read a conversation.
type Receipt struct {
	Conv      string `json:"conv"`
	User      string `json:"user"`
	Delivered int64  `json:"delivered"`      // the member has every message up to here
	Read      int64  `json:"read,omitempty"` // ... and has read up to here
	// ReadHidden says Read is withheld (read receipts off on either side),
	// as opposed to "has read nothing".
	ReadHidden bool `json:"read_hidden,omitempty"`
	// On receipt events: every other member has received (read) every
	// message up to here — for the recipient's own messages, "delivered to
	// all" / "read by all".
	AllDelivered int64 `json:"all_delivered,omitempty"`
	AllRead      int64 `json:"all_read,omitempty"`
}

// Presence is a user's online state as the asker may see it.
type Presence struct {
	User     string `json:"user"`
	Online   bool   `json:"online"`
	LastSeen int64  `json:"last_seen,omitempty"` // Unix milliseconds; absent when unknown or hidden
	Hidden   bool   `json:"hidden,omitempty"`    // the user does not share presence with the asker
}

// Typing says a member is typing; it expires after TTL unless repeated.
type Typing struct {
	Conv string `json:"conv"`
	User string `json:"user"`
	TTL  int64  `json:"ttl_ms"`
}

// Presence visibilities (Settings.Presence, Request.Presence).
const (
	PresenceEveryone = "everyone"
	PresenceContacts = "contacts" // users sharing a conversation with the user
	PresenceNobody   = "nobody"
)

// Settings are the user's privacy settings.
type Settings struct {
	Presence     string `json:"presence"` // everyone, contacts, nobody
	ReadReceipts bool   `json:"read_receipts"`
}

// Message is a stored message as clients see it.
type Message struct {
	Conv string          `json:"conv"`
	Seq  int64           `json:"seq"`
	ID   string          `json:"id"`
	From string          `json:"from"`
	Dev  string          `json:"dev,omitempty"`
	CMID string          `json:"cmid,omitempty"`
	TS   int64           `json:"ts"` // server time, Unix milliseconds
	Body json.RawMessage `json:"body"`
}

// Sent acknowledges that a message is stored durably.
type Sent struct {
	Conv string `json:"conv"`
	Seq  int64  `json:"seq"`
	ID   string `json:"id"`
	CMID string `json:"cmid"`
	TS   int64  `json:"ts"`
	Dup  bool   `json:"dup,omitempty"` // it had been stored before (retransmission)
}

// Conversation is a conversation as clients see it.
type Conversation struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"` // direct, group
	Title     string   `json:"title,omitempty"`
	CreatedBy string   `json:"created_by"`
	Created   int64    `json:"created"` // Unix milliseconds
	LastSeq   int64    `json:"last_seq"`
	Members   []Member `json:"members,omitempty"`
	Read      int64    `json:"read,omitempty"`   // conversations: your read position (the end when nothing is unread)
	Unread    int64    `json:"unread,omitempty"` // conversations: messages after it
}

// Conversation kinds (Conversation.Kind).
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Member roles (Member.Role, Request.Role).
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Member is an active member of a conversation.
type Member struct {
	User    string `json:"user"`
	Role    string `json:"role"`
	FromSeq int64  `json:"from_seq"`
}

// Code is a machine-readable error code.
type Code string

// Error codes carried in Error.Code.
const (
	CodeBadRequest  Code = "bad_request"  // malformed JSON, missing or invalid field
	CodeBadVersion  Code = "bad_version"  // unsupported "v"
	CodeUnknownOp   Code = "unknown_op"   // no such command
	CodeTooLarge    Code = "too_large"    // payload or body over the limit
	CodeNotFound    Code = "not_found"    // conversation or user does not exist
	CodeNotMember   Code = "not_member"   // not an active member of the conversation
	CodeForbidden   Code = "forbidden"    // role does not allow it
	CodeExists      Code = "exists"       // already a member
	CodeGroupFull   Code = "group_full"   // group size limit reached
	CodeRateLimited Code = "rate_limited" // too many requests of this kind: slow down
	CodeUnavailable Code = "unavailable"  // store unavailable: retry later with the same cmid
	CodeInternal    Code = "internal"     // unexpected server error
)

// Retryable reports whether the same request may succeed later.
func (c Code) Retryable() bool { return c == CodeUnavailable || c == CodeInternal }

// Error describes why a request failed.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, or an internal error.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}
