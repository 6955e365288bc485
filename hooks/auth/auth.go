// Package auth is the mochi hook that authenticates MQTT connections: chat
// users by password or access token with the client id "user/device", and,
// when the operator allows it, anonymous clients for the generic topic
// trees.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	msgrauth "github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/protocol"
)

// Devices records the devices that connect (the store).
type Devices interface {
	TouchDevice(ctx context.Context, userID, deviceID string, now time.Time) error
}

// ConnackSender writes a CONNACK refusal (mqtt.Server.SendConnack).
type ConnackSender func(cl *mqtt.Client, reason packets.Code, present bool, props *packets.Properties) error

// Disconnector ends a connected client (mqtt.Server.DisconnectClient).
type Disconnector func(cl *mqtt.Client, code packets.Code) error

// Options configure the hook.
type Options struct {
	// Auth checks passwords and access tokens, bans, disabled accounts
	// and revoked devices.
	Auth           *msgrauth.Authenticator
	Devices        Devices
	SendConnack    ConnackSender
	Disconnect     Disconnector
	AllowAnonymous bool
	Timeout        time.Duration // bound on one authentication's store work
	Logger         *slog.Logger
	Now            func() time.Time
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
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnSessionEstablished
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

// OnConnectAuthenticate verifies the password or access token (see
// msgrauth.Authenticator) and records the device.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	username := pk.Connect.Username
	ip := msgrauth.RemoteAddr(cl.Net.Remote)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	log := h.opts.Logger.With("client", cl.ID, "remote", cl.Net.Remote)
	if len(username) == 0 {
		if !h.opts.AllowAnonymous {
			return false
		}
		// Anonymous clients have no account, but a banned address is
		// refused all the same.
		if err := h.opts.Auth.CheckIP(ctx, ip); errors.Is(err, msgrauth.ErrBanned) {
			log.Info("connect refused", "error", err)
			return false
		}
		return true
	}
	user, device, _ := protocol.ParseClientID(cl.ID) // checked in OnConnect
	id, err := h.opts.Auth.Authenticate(ctx, msgrauth.Credentials{
		User: user, Device: device, Secret: string(pk.Connect.Password), IP: ip,
	})
	if err != nil {
		level := slog.LevelInfo
		if errors.Is(err, msgrauth.ErrUnavailable) {
			level = slog.LevelError
		}
		log.Log(ctx, level, "connect refused", "error", err)
		return false
	}
	if err := h.opts.Devices.TouchDevice(ctx, user, device, h.opts.Now()); err != nil {
		log.Error("connect refused: cannot record device", "error", err)
		return false
	}
	log.Debug("connected", "token", id.Token, "jti", id.TokenID)
	return true
}

// OnSessionEstablished checks the account once more now that the client is
// registered with mochi. A revocation disconnects the device's client if
// mochi knows it; one that commits while this connection was between its
// authentication and its registration would miss it, but is seen here.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	user, device, ok := Identity(cl)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	err := h.opts.Auth.Recheck(ctx, user, device)
	if err == nil || errors.Is(err, msgrauth.ErrUnavailable) {
		return
	}
	h.opts.Logger.Info("disconnecting client revoked while connecting", "client", cl.ID, "error", err)
	_ = h.opts.Disconnect(cl, packets.ErrNotAuthorized)
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
