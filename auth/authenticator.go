package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/msgrhq/msgr/storage"
)

// Reasons an authentication is refused. Callers map them to protocol
// errors; all but ErrUnavailable look the same to an MQTT 3.1.1 client.
var (
	// ErrBadCredentials: unknown or deleted user, wrong password, or an
	// invalid token (forged, expired, another user's or device's).
	ErrBadCredentials = errors.New("bad username, password or token")
	// ErrDisabled: an operator disabled the account.
	ErrDisabled = errors.New("account disabled")
	// ErrBanned: the user or the client's address is banned.
	ErrBanned = errors.New("banned")
	// ErrRevoked: the device was revoked.
	ErrRevoked = storage.ErrRevoked
	// ErrUnavailable: the store could not answer; not the client's fault.
	ErrUnavailable = errors.New("authentication unavailable")
)

// Accounts is what authentication reads from the store.
type Accounts interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
	GetDevice(ctx context.Context, userID, deviceID string) (storage.Device, error)
}

// Authenticator is the single place that decides whether credentials are
// good, for MQTT CONNECT and for HTTP alike.
type Authenticator struct {
	Accounts  Accounts
	Passwords *Hasher
	Tokens    *Tokens // nil: access tokens are not configured
	Bans      *Bans   // nil: no bans
	// UnknownUserHash is verified against for unknown users so that
	// refusing them costs as much as refusing a wrong password.
	UnknownUserHash string
}

// Credentials are what a client presented.
type Credentials struct {
	User   string // may be empty with a token (taken from its subject)
	Device string // empty for HTTP requests, which are not a device's
	Secret string // password or access token
	// PasswordOnly refuses tokens: logging in must take the password, or
	// a token could renew itself forever.
	PasswordOnly bool
	IP           netip.Addr // zero when unknown
}

// Identity is an authenticated user (and device, when one was named).
type Identity struct {
	User, Device string
	Token        bool   // authenticated by access token
	TokenID      string // the token's jti
	TokenGen     int64  // the user's token generation, for tokens issued to this identity
}

// Authenticate checks c: bans, password or token, account state and
// device revocation. Errors wrap the sentinels above.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	if err := a.CheckIP(ctx, c.IP); err != nil {
		return Identity{}, err
	}
	id := Identity{User: c.User, Device: c.Device}
	var user storage.User
	if a.Tokens != nil && !c.PasswordOnly && LooksLikeJWT(c.Secret) {
		claims, err := a.Tokens.Verify(c.Secret)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		if (c.User != "" && claims.Subject != c.User) || (c.Device != "" && claims.Device != c.Device) {
			return Identity{}, fmt.Errorf("%w: token is for %s/%s", ErrBadCredentials, claims.Subject, claims.Device)
		}
		id = Identity{User: claims.Subject, Device: claims.Device, Token: true, TokenID: claims.ID}
		user, err = a.Accounts.GetUser(ctx, id.User)
		if errors.Is(err, storage.ErrNotFound) {
			return Identity{}, fmt.Errorf("%w: token of unknown user", ErrBadCredentials)
		}
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if claims.Gen < user.TokenGen {
			// The password changed after the token was issued: whoever
			// held the old password may hold the token too.
			return Identity{}, fmt.Errorf("%w: token issued before the password changed", ErrBadCredentials)
		}
	} else {
		var err error
		user, err = a.Accounts.GetUser(ctx, c.User)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if a.UnknownUserHash != "" {
				// Spend what a real check costs, so that the refusal's
				// timing does not tell which accounts exist.
				_ = a.Passwords.Verify(ctx, a.UnknownUserHash, c.Secret)
			}
			return Identity{}, fmt.Errorf("%w: unknown user", ErrBadCredentials)
		case err != nil:
			return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !user.DeletedAt.IsZero() {
			// A deleted user's hash is empty: spend the same time anyway.
			if a.UnknownUserHash != "" {
				_ = a.Passwords.Verify(ctx, a.UnknownUserHash, c.Secret)
			}
			return Identity{}, fmt.Errorf("%w: deleted user", ErrBadCredentials)
		}
		if err := a.Passwords.Verify(ctx, user.PasswordHash, c.Secret); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return Identity{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
	}
	if err := a.CheckAccount(ctx, user, id.Device, id.Token); err != nil {
		return Identity{}, err
	}
	id.TokenGen = user.TokenGen
	return id, nil
}

// CheckIP refuses a banned address (ErrBanned).
func (a *Authenticator) CheckIP(ctx context.Context, ip netip.Addr) error {
	if a.Bans == nil {
		return nil
	}
	if _, banned, err := a.Bans.IP(ctx, ip); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	} else if banned {
		return fmt.Errorf("address %s: %w", ip, ErrBanned)
	}
	return nil
}

// CheckAccount refuses deleted, disabled or banned users and revoked
// devices. device may be empty (an HTTP request); with mustExist, a device
// the store does not know is refused too (a token's device always exists:
// logging in creates it).
func (a *Authenticator) CheckAccount(ctx context.Context, user storage.User, device string, mustExist bool) error {
	if !user.DeletedAt.IsZero() {
		return fmt.Errorf("%w: deleted user", ErrBadCredentials)
	}
	if a.Bans != nil {
		if _, banned, err := a.Bans.User(ctx, user.ID); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		} else if banned {
			return fmt.Errorf("user %s: %w", user.ID, ErrBanned)
		}
	}
	if !user.DisabledAt.IsZero() {
		return fmt.Errorf("user %s: %w", user.ID, ErrDisabled)
	}
	if device == "" {
		return nil
	}
	d, err := a.Accounts.GetDevice(ctx, user.ID, device)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if mustExist {
			return fmt.Errorf("%w: unknown device %s/%s", ErrBadCredentials, user.ID, device)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case !d.RevokedAt.IsZero():
		return fmt.Errorf("device %s/%s: %w", user.ID, device, ErrRevoked)
	}
	return nil
}

// Recheck reloads the user and checks the account and device again, for a
// connection that authenticated while a revocation may have been running.
func (a *Authenticator) Recheck(ctx context.Context, userID, device string) error {
	u, err := a.Accounts.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: unknown user", ErrBadCredentials)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return a.CheckAccount(ctx, u, device, false)
}
