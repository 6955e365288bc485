// Package storage defines msgr's durable data model and the contract every
// store implementation (embedded SQLite, PostgreSQL) satisfies.
//
// The database is the source of truth for chat delivery: MQTT sessions are a
// fast path only. Every conversation has a gapless sequence (1, 2, 3, ...);
// every device has a per-conversation cursor saying "I have everything up to
// seq N". Storage grows with messages, not messages x members.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors callers handle with errors.Is.
var (
	// ErrNotFound means the user, conversation or message does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a user, device or member with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrNotMember means the user is not an active member of the conversation.
	ErrNotMember = errors.New("not a member of the conversation")
	// ErrGroupFull means adding a member would exceed the group size limit.
	ErrGroupFull = errors.New("group is full")
	// ErrNotGroup means a group-only operation was applied to a direct conversation.
	ErrNotGroup = errors.New("not a group conversation")
)

// ConvKind tells direct (exactly two users) from group conversations.
type ConvKind string

// Conversation kinds.
const (
	KindDirect ConvKind = "direct"
	KindGroup  ConvKind = "group"
)

// Role is a member's role in a group. Direct conversation members are RoleMember.
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// User is an account. ID is the login name and appears in topics, so it is
// restricted to protocol.ValidID characters.
type User struct {
	ID           string
	PasswordHash string // PHC-formatted argon2id hash
	CreatedAt    time.Time
	Settings     Settings  // CreateUser stores DefaultSettings() when zero
	LastSeen     time.Time // zero until the user's last device first disconnects
	DisabledAt   time.Time // non-zero while an operator has disabled the account
	DeletedAt    time.Time // non-zero once deleted; the id is never reused
	TokenGen     int64     // raised by SetPassword: access tokens issued under an older one are refused
}

// Visibility says who may see a user's presence (online, last seen).
type Visibility string

// Visibilities.
const (
	VisibleEveryone Visibility = "everyone"
	VisibleContacts Visibility = "contacts" // users sharing a conversation
	VisibleNobody   Visibility = "nobody"
)

// Settings are a user's privacy choices.
type Settings struct {
	Presence Visibility
	// ReadReceipts off hides the user's read receipts from others and
	// others' read receipts from the user, as WhatsApp does. Delivery
	// receipts are unaffected.
	ReadReceipts bool
}

// DefaultSettings are a new user's settings.
func DefaultSettings() Settings {
	return Settings{Presence: VisibleContacts, ReadReceipts: true}
}

// Device is one client of a user; its MQTT client id is "user/device".
type Device struct {
	UserID    string
	DeviceID  string
	CreatedAt time.Time
	LastSeen  time.Time
	RevokedAt time.Time // non-zero once revoked; a revoked device never connects again
}

// Conversation is a direct chat or a group.
type Conversation struct {
	ID        string
	Kind      ConvKind
	Title     string // groups only
	CreatedBy string
	CreatedAt time.Time
	LastSeq   int64 // sequence of the newest message, 0 when empty
}

// Member is a user's membership of a conversation. The member may read
// messages with FromSeq <= seq, and while UntilSeq is 0 (active) every later
// one; after leaving or removal, UntilSeq is the last visible seq.
type Member struct {
	ConvID   string
	UserID   string
	Role     Role
	FromSeq  int64
	UntilSeq int64 // 0 while the membership is active
	JoinedAt time.Time
	// Delivered is the highest cursor of any of the user's devices: the
	// user has received every message up to it. Read is the highest seq
	// the user reported read, 0 until the first report. Read <= Delivered
	// always holds: reading implies receiving. Sending implies both, so
	// the user's own messages raise them too (see AppendMessages).
	Delivered int64
	Read      int64
}

// Active reports whether the membership is current.
func (m Member) Active() bool { return m.UntilSeq == 0 }

// Message kinds stored in Message.Kind.
const (
	MsgText   = "text"
	MsgSystem = "system" // membership changes, group creation, title changes
)

// Message is one entry of a conversation's log.
type Message struct {
	ConvID       string
	Seq          int64  // gapless per conversation, starts at 1
	ID           string // globally unique (ULID), assigned by the broker
	SenderID     string
	SenderDevice string
	ClientMsgID  string // idempotency key chosen by the sending client
	Kind         string
	Body         []byte // JSON body as validated by the broker; opaque to stores
	CreatedAt    time.Time
}

// NewMessage is a message to append; the store assigns Seq.
type NewMessage struct {
	ConvID       string
	ID           string
	SenderID     string
	SenderDevice string
	ClientMsgID  string // must be non-empty; unique per (conversation, sender)
	Kind         string
	Body         []byte
	CreatedAt    time.Time
}

// AppendResult is the outcome of one NewMessage of a batch.
type AppendResult struct {
	Message   Message // the stored message (the earlier one when Duplicate)
	Duplicate bool    // (ConvID, SenderID, ClientMsgID) was already stored
	Err       error   // ErrNotFound (conversation), ErrNotMember; other errors are internal
}

// ConvCursor describes, for one device and one conversation the user can
// see, how far the device has caught up.
type ConvCursor struct {
	ConvID  string
	LastSeq int64 // newest seq visible to the member (min(conv last seq, UntilSeq))
	Cursor  int64 // device has everything up to here (at least FromSeq-1)
	FromSeq int64
}

// Receipt is how far a member has received and read a conversation.
type Receipt struct {
	ConvID    string
	UserID    string
	Delivered int64
	Read      int64
}

// DeliveredChange is a member's Delivered moving up from Prev.
type DeliveredChange struct {
	Receipt
	Prev int64
}

// Unread is a conversation with messages the user has not read.
type Unread struct {
	ConvID  string
	LastSeq int64 // newest seq visible to the member
	Read    int64 // max(member Read, FromSeq-1)
}

// CursorUpdate reports that a device has every message of ConvID with
// From < seq <= Seq. The cursor moves to Seq only if it is already at least
// From (a device without a cursor row is at its membership's FromSeq-1), so
// acknowledging a range after a gap never skips the gap. From 0 means
// unconditionally (the client asserts it has everything up to Seq). Seq is
// capped at the newest seq the member can see.
type CursorUpdate struct {
	ConvID string
	From   int64
	Seq    int64
}

// Users stores accounts.
type Users interface {
	// CreateUser inserts a user; ErrExists if the id is taken.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// SetPassword replaces a user's password hash and raises its TokenGen;
	// ErrNotFound if absent.
	SetPassword(ctx context.Context, id, hash string) error
	// SetSettings replaces a user's settings; ErrNotFound if absent.
	SetSettings(ctx context.Context, id string, s Settings) error
	// SetLastSeen records when the user was last online; ErrNotFound if absent.
	SetLastSeen(ctx context.Context, id string, t time.Time) error
	// Contacts lists, ordered, the users sharing an active direct
	// conversation with id in which id has engaged (id's Read > 0: id wrote
	// or read there). Anyone can open a conversation with anyone, so mere
	// membership would let strangers make themselves contacts.
	Contacts(ctx context.Context, id string) ([]string, error)
	// SharesConversation reports whether a and b are both active members of
	// at least one conversation in which b has engaged (b's Read > 0).
	SharesConversation(ctx context.Context, a, b string) (bool, error)
}

// Devices stores the devices (MQTT client ids) of users.
type Devices interface {
	// TouchDevice creates the device on first use and updates LastSeen.
	TouchDevice(ctx context.Context, userID, deviceID string, now time.Time) error
	// ListDevices returns a user's devices ordered by DeviceID.
	ListDevices(ctx context.Context, userID string) ([]Device, error)
}

// Conversations stores conversations and memberships. Membership changes of
// groups append a system message in the same transaction so that every
// member (including the removed one) learns about them through sync. As for
// AppendMessages, the note's sender (the acting user) has received and read
// everything up to it: if the sender has a members row in the conversation
// once the change is made, its Read and Delivered are raised to at least the
// note's seq in the same transaction.
type Conversations interface {
	// DirectConversation returns the single direct conversation between a and
	// b, creating it with id newID when none exists (created reports which).
	// Both users must exist (ErrNotFound otherwise). a != b.
	DirectConversation(ctx context.Context, a, b, newID string, now time.Time) (c Conversation, created bool, err error)
	// CreateGroup creates a group whose creator (conv.CreatedBy) becomes owner
	// and the other users members; note (Kind system) becomes seq 1 and every
	// initial member has FromSeq 1. ErrNotFound if a user does not exist,
	// ErrGroupFull if len(members)+1 > maxMembers.
	CreateGroup(ctx context.Context, conv Conversation, members []string, maxMembers int, note NewMessage) (Conversation, Message, error)
	// GetConversation returns a conversation or ErrNotFound.
	GetConversation(ctx context.Context, id string) (Conversation, error)
	// GetMember returns the membership (active or past) or ErrNotMember.
	GetMember(ctx context.Context, convID, userID string) (Member, error)
	// ActiveMembers lists the active members of a conversation ordered by UserID.
	ActiveMembers(ctx context.Context, convID string) ([]Member, error)
	// AddMember adds (or re-adds) userID to a group with role, appending note;
	// the new member's FromSeq is the note's seq. ErrNotGroup, ErrNotFound
	// (conversation or user), ErrExists (already active), ErrGroupFull.
	AddMember(ctx context.Context, convID, userID string, role Role, maxMembers int, note NewMessage) (Message, error)
	// RemoveMember ends userID's membership of a group, appending note; the
	// member's UntilSeq becomes the note's seq so they still see it.
	// ErrNotGroup, ErrNotFound, ErrNotMember.
	RemoveMember(ctx context.Context, convID, userID string, note NewMessage) (Message, error)
	// SetRole changes an active member's role. ErrNotGroup, ErrNotMember.
	SetRole(ctx context.Context, convID, userID string, role Role) error
	// UserConversations lists the conversations the user is or was a member
	// of, newest activity first, at most limit (0 = no limit).
	UserConversations(ctx context.Context, userID string, limit int) ([]Conversation, error)
}

// Messages stores conversation logs.
type Messages interface {
	// AppendMessages stores a batch in one transaction: for each item, in
	// order, it checks the conversation exists and the sender is an active
	// member, returns the earlier message when (ConvID, SenderID,
	// ClientMsgID) was already stored, and otherwise assigns the next seq.
	// Per-item problems go in AppendResult.Err and do not affect other
	// items; a returned error means nothing of the batch was stored.
	//
	// Sending a message implies having received and read everything up to
	// it, so for each stored (non-duplicate) message the sender's member
	// Read and Delivered are raised to at least its seq in the same
	// transaction; the sender sees no unread badge for their own messages.
	// A duplicate changes nothing: the earlier append raised them already.
	AppendMessages(ctx context.Context, batch []NewMessage) ([]AppendResult, error)
	// MessagesAfter returns up to limit messages of a conversation with
	// after < seq <= upTo, ascending.
	MessagesAfter(ctx context.Context, convID string, after, upTo int64, limit int) ([]Message, error)
	// MessagesBefore returns up to limit messages with from <= seq < before,
	// descending (newest first), for history paging.
	MessagesBefore(ctx context.Context, convID string, before, from int64, limit int) ([]Message, error)
}

// Cursors stores per-device sync positions.
type Cursors interface {
	// PendingConversations returns, for every conversation the user can see,
	// the device's cursor where it is behind (Cursor < LastSeq), ordered by
	// ConvID. A device without a cursor row starts at FromSeq-1.
	PendingConversations(ctx context.Context, userID, deviceID string) ([]ConvCursor, error)
	// AdvanceCursors applies updates in order (see CursorUpdate for the
	// From condition); a cursor never moves backwards, so replays and
	// reordering are harmless. Updates for conversations the user never
	// belonged to are ignored. A member's Delivered follows the highest
	// cursor of the user's devices; AdvanceCursors returns the receipts
	// whose Delivered increased (new values, with the value before this
	// call in Prev, one per conversation, ordered by ConvID), so that the
	// senders of messages in (Prev, Delivered] can be told.
	AdvanceCursors(ctx context.Context, userID, deviceID string, updates []CursorUpdate) ([]DeliveredChange, error)
}

// Receipts stores what members have read and answers receipt queries.
type Receipts interface {
	// MarkRead raises the member's Read to seq, capped at the newest seq the
	// member can see, and raises Delivered to at least Read. It returns the
	// receipt afterwards and whether Read changed. ErrNotMember if the user
	// never belonged to the conversation.
	MarkRead(ctx context.Context, userID, convID string, seq int64) (Receipt, bool, error)
	// Receipts returns the active members' receipts, ordered by UserID.
	Receipts(ctx context.Context, convID string) ([]Receipt, error)
	// Senders returns the distinct senders of messages with after < seq <=
	// upTo, ordered.
	Senders(ctx context.Context, convID string, after, upTo int64) ([]string, error)
	// Unread lists the conversations the user can see with messages past
	// their Read (and past FromSeq-1), ordered by ConvID.
	Unread(ctx context.Context, userID string) ([]Unread, error)
}

// Store is everything msgr keeps durably. Implementations must pass
// storage/storetest.
type Store interface {
	Users
	Devices
	Conversations
	Messages
	Cursors
	CursorBatches
	Receipts
	Security
	Encryption
	MediaStore
	// Ping checks the store can serve requests.
	Ping(ctx context.Context) error
	// Close releases resources.
	Close() error
}
