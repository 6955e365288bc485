package storage

import (
	"context"
	"errors"
	"time"
)

// ErrRevoked means the device has been revoked: it may not connect, log in
// or refresh tokens again.
var ErrRevoked = errors.New("device revoked")

// BanKind tells what a ban matches.
type BanKind string

// Ban kinds.
const (
	BanUser BanKind = "user" // Value is a user id
	BanIP   BanKind = "ip"   // Value is a canonical CIDR prefix (a single address is /32 or /128)
)

// Ban refuses connections and logins of a user or from an address range.
type Ban struct {
	Kind      BanKind
	Value     string
	Reason    string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never expires
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool {
	return b.ExpiresAt.IsZero() || now.Before(b.ExpiresAt)
}

// RefreshToken is the single refresh token a device holds: only its hash is
// stored, so a database leak does not hand out sessions.
type RefreshToken struct {
	Hash      string
	ExpiresAt time.Time
}

// Security stores what device revocation, account control, bans and the
// admin API need.
type Security interface {
	// GetDevice returns one device or ErrNotFound.
	GetDevice(ctx context.Context, userID, deviceID string) (Device, error)
	// RevokeDevice marks a device revoked at t and forgets its refresh
	// token; ErrNotFound if it does not exist. Revoking again keeps the
	// first time.
	RevokeDevice(ctx context.Context, userID, deviceID string, t time.Time) error
	// SetRefreshToken gives a device a new refresh token, replacing any
	// other; ErrNotFound if the device does not exist, ErrRevoked if it is
	// revoked.
	SetRefreshToken(ctx context.Context, userID, deviceID string, tok RefreshToken) error
	// RotateRefreshToken replaces the device's refresh token by next if its
	// current one has hash oldHash and has not expired at now; ErrNotFound
	// otherwise (unknown device, other token, expired, or revoked). Of two
	// concurrent rotations of the same token only one succeeds.
	RotateRefreshToken(ctx context.Context, userID, deviceID, oldHash string, next RefreshToken, now time.Time) error
	// ClearRefreshTokens voids the refresh tokens of all of a user's
	// devices (after a password reset); no error for a user without any.
	ClearRefreshTokens(ctx context.Context, userID string) error
	// SetDisabled disables (at t) or re-enables a user; ErrNotFound if the
	// user does not exist or was deleted. Disabling again keeps the first time.
	SetDisabled(ctx context.Context, id string, disabled bool, t time.Time) error
	// DeleteUser deletes a user at t: the row stays as a tombstone (its id
	// appears in conversations and is never reused), the password hash is
	// cleared and every device is revoked. ErrNotFound if absent or
	// already deleted.
	DeleteUser(ctx context.Context, id string, t time.Time) error
	// ListUsers returns up to limit users with ID > after, ordered by ID,
	// deleted ones included.
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)
	// ListConversations returns up to limit conversations with ID > after,
	// ordered by ID.
	ListConversations(ctx context.Context, after string, limit int) ([]Conversation, error)
	// DeleteConversation deletes a conversation with its messages,
	// memberships and cursors; ErrNotFound if it does not exist.
	DeleteConversation(ctx context.Context, id string) error
	// AddBan stores a ban; ErrExists if one of that kind and value exists.
	AddBan(ctx context.Context, b Ban) error
	// RemoveBan deletes a ban; ErrNotFound if there is none.
	RemoveBan(ctx context.Context, kind BanKind, value string) error
	// ListBans returns every ban, expired ones included, ordered by kind
	// and value.
	ListBans(ctx context.Context) ([]Ban, error)
}
