// Package auth is the mochi hook that authenticates MQTT connections: chat
// users by password with the client id "user/device", and, when the
// operator allows it, anonymous clients for the generic topic trees.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// Users is what authentication needs from the store.
type Users interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
	TouchDevice(ctx context.Context, userID, deviceID string, now time.Time) error
}

// Verifier checks a password against a stored hash (auth.Hasher).
type Verifier interface {
	Verify(ctx context.Context, hash, password string) error
}

// ConnackSender writes a CONNACK refusal (mqtt.Server.SendConnack).
type ConnackSender func(cl *mqtt.Client, reason packets.Code, present bool, props *packets.Properties) error

// Options configure the hook.
type Options struct {
	Users          Users
	Passwords      Verifier
	SendConnack    ConnackSender
	AllowAnonymous bool
	// UnknownUserHash, when set, is verified against for unknown users so
	// that refusing them costs as much as refusing a wrong password.
	UnknownUserHash string
	Timeout         time.Duration // bound on one authentication's store work
	Logger          *slog.Logger
	Now             func() time.Time
}

// Hook authenticates CONNECT packets.
type Hook struct {
	mqtt.HookBase
	opts Options
}

// New returns the authentication hook.
func New(opts Options) *Hook {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Hook{opts: opts}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-auth" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate
}

// errBadClientID closes a connection whose client id cannot name a device.
var errBadClientID = errors.New("client id must be USER/DEVICE with USER equal to the username")

// OnConnect refuses, with "client identifier not valid", users whose client
// id does not name one of their devices and anonymous clients whose client
// id names a chat device. It runs before authentication, so it learns
// nothing about the password.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	username := pk.Connect.Username
	user, _, ok := protocol.ParseClientID(cl.ID)
	if len(username) == 0 && !ok {
		return nil // anonymous: decided in OnConnectAuthenticate
	}
	// An anonymous client with a chat client id ("alice/phone") is refused
	// too: mochi would hand it that device's session, taking the device
	// over and resending it the deliveries queued for it.
	if ok && user == string(username) {
		return nil
	}
	if err := h.opts.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil); err != nil {
		return fmt.Errorf("refuse client id: %w", err)
	}
	return errBadClientID
}

// OnConnectAuthenticate verifies the password and records the device.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	username := pk.Connect.Username
	if len(username) == 0 {
		return h.opts.AllowAnonymous
	}
	user, device, _ := protocol.ParseClientID(cl.ID) // checked in OnConnect
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	log := h.opts.Logger.With("client", cl.ID, "remote", cl.Net.Remote)
	u, err := h.opts.Users.GetUser(ctx, user)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if h.opts.UnknownUserHash != "" {
			// Spend what a real check costs, so that the refusal's timing
			// does not tell which accounts exist.
			_ = h.opts.Passwords.Verify(ctx, h.opts.UnknownUserHash, string(pk.Connect.Password))
		}
		log.Info("connect refused: unknown user")
		return false
	case err != nil:
		log.Error("connect refused: user lookup failed", "error", err)
		return false
	}
	if err := h.opts.Passwords.Verify(ctx, u.PasswordHash, string(pk.Connect.Password)); err != nil {
		log.Info("connect refused: bad password", "error", err)
		return false
	}
	if err := h.opts.Users.TouchDevice(ctx, user, device, h.opts.Now()); err != nil {
		log.Error("connect refused: cannot record device", "error", err)
		return false
	}
	return true
}

// Identity returns the chat user and device of an authenticated client, or
// ok=false for anonymous and inline clients.
func Identity(cl *mqtt.Client) (user, device string, ok bool) {
	if cl.Net.Inline || len(cl.Properties.Username) == 0 {
		return "", "", false
	}
	user, device, ok = protocol.ParseClientID(cl.ID)
	if !ok || user != string(cl.Properties.Username) {
		return "", "", false
	}
	return user, device, true
}
