package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	msgrauth "github.com/msgrhq/msgr/auth"
	authhook "github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/storage"
)

// banMaxAge bounds how late a ban made on another node applies here.
const banMaxAge = 5 * time.Second

// minAdminTokenLen keeps the admin token out of guessing range.
const minAdminTokenLen = 32

// security holds what authentication, device revocation and the admin API
// share.
type security struct {
	auth       *msgrauth.Authenticator
	tokens     *msgrauth.Tokens // nil when no signing key is configured
	bans       *msgrauth.Bans
	adminToken [sha256.Size]byte // SHA-256 of the admin token
	adminOn    bool
	refreshTTL time.Duration
	started    time.Time
	clients    *clientTimes
}

// newSecurity loads the signing key and admin token named by cfg.
func newSecurity(cfg SecurityConfig, store storage.Store, hasher *msgrauth.Hasher, unknownUserHash string) (*security, error) {
	s := &security{refreshTTL: cfg.RefreshTTL, started: time.Now(), clients: &clientTimes{m: map[*mqtt.Client]time.Time{}}}
	if cfg.TokensEnabled() {
		t, err := msgrauth.LoadTokens(cfg.TokenKeyFile, cfg.TokenSecretFile, msgrauth.TokenOptions{
			Issuer: cfg.TokenIssuer, Audience: cfg.TokenAudience, TTL: cfg.TokenTTL, Leeway: cfg.TokenLeeway,
		})
		if err != nil {
			return nil, err
		}
		s.tokens = t
	}
	if cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(cfg.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < minAdminTokenLen {
			return nil, fmt.Errorf("admin token in %s: %d characters, need at least %d", cfg.AdminTokenFile, len(tok), minAdminTokenLen)
		}
		s.adminToken, s.adminOn = sha256.Sum256([]byte(tok)), true
	}
	s.bans = msgrauth.NewBans(store, banMaxAge, time.Now)
	s.auth = &msgrauth.Authenticator{
		Accounts:        store,
		Passwords:       hasher,
		Tokens:          s.tokens,
		Bans:            s.bans,
		UnknownUserHash: unknownUserHash,
	}
	return s, nil
}

// isAdmin compares a presented admin token in constant time. Both sides
// are hashed first so that the comparison does not leak the length either.
func (s *security) isAdmin(presented string) bool {
	if !s.adminOn || presented == "" {
		return false
	}
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], s.adminToken[:]) == 1
}

// clientTimes remembers when each connected client connected: mochi does
// not keep it.
type clientTimes struct {
	mu sync.Mutex
	m  map[*mqtt.Client]time.Time
}

func (c *clientTimes) get(cl *mqtt.Client) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[cl]
}

// clientsHook records connect times for the admin API's client list.
type clientsHook struct {
	mqtt.HookBase
	times *clientTimes
}

func (h *clientsHook) ID() string { return "msgr-clients" }

func (h *clientsHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

func (h *clientsHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.times.mu.Lock()
	h.times.m[cl] = time.Now()
	h.times.mu.Unlock()
}

func (h *clientsHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.times.mu.Lock()
	delete(h.times.m, cl)
	h.times.mu.Unlock()
}

// disconnect ends every connected client that match selects, telling MQTT
// 5 clients why, and returns how many it ended.
func (b *Broker) disconnect(code packets.Code, match func(cl *mqtt.Client) bool) int {
	n := 0
	for _, cl := range b.mqtt.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() || !match(cl) {
			continue
		}
		_ = b.mqtt.DisconnectClient(cl, code)
		n++
	}
	return n
}

// Kick selectors: what a revocation, disabling, deletion or ban
// disconnects, on this node and, in a cluster, on every other node.
const (
	kickDevice = "device:" // + USER/DEVICE
	kickUser   = "user:"   // + USER
	kickIP     = "ip:"     // + canonical CIDR prefix
)

// kick disconnects the clients selector names here and asks the other
// nodes of a cluster to do the same. It returns how many it ended here.
func (b *Broker) kick(selector string, code packets.Code) int {
	n := b.kickLocal(selector, code.Code)
	if b.node != nil {
		if err := b.node.Kick(selector, code.Code); err != nil {
			// The other nodes still refuse the device at its next
			// connect or token use.
			b.log.Warn("cluster: kick not sent to the other nodes", "selector", selector, "error", err)
		}
	}
	return n
}

// kickLocal disconnects this node's clients that selector names.
func (b *Broker) kickLocal(selector string, reason byte) int {
	code := packets.ErrAdministrativeAction
	if reason == packets.ErrBanned.Code {
		code = packets.ErrBanned
	}
	switch {
	case strings.HasPrefix(selector, kickDevice):
		id := strings.TrimPrefix(selector, kickDevice)
		return b.disconnect(code, func(cl *mqtt.Client) bool { return cl.ID == id })
	case strings.HasPrefix(selector, kickUser):
		user := strings.TrimPrefix(selector, kickUser)
		return b.disconnect(code, func(cl *mqtt.Client) bool {
			u, _, ok := authhook.Identity(cl)
			return ok && u == user
		})
	case strings.HasPrefix(selector, kickIP):
		p, err := netip.ParsePrefix(strings.TrimPrefix(selector, kickIP))
		if err != nil {
			return 0
		}
		return b.disconnect(code, func(cl *mqtt.Client) bool {
			a := msgrauth.RemoteAddr(cl.Net.Remote)
			return a.IsValid() && p.Contains(a)
		})
	}
	b.log.Warn("kick: unknown selector", "selector", selector)
	return 0
}

// RevokeDevice revokes user's device and disconnects it at once, on every
// node. The store write comes first: the auth hook rechecks every client
// after registering it, so a client connecting meanwhile is caught either
// here or there.
func (b *Broker) RevokeDevice(ctx context.Context, user, device string) error {
	if err := b.store.RevokeDevice(ctx, user, device, time.Now()); err != nil {
		return err
	}
	b.kick(kickDevice+user+"/"+device, packets.ErrAdministrativeAction)
	b.log.Info("device revoked", "user", user, "device", device)
	return nil
}

// SetUserDisabled disables (disconnecting every device) or re-enables a user.
func (b *Broker) SetUserDisabled(ctx context.Context, user string, disabled bool) error {
	if err := b.store.SetDisabled(ctx, user, disabled, time.Now()); err != nil {
		return err
	}
	if disabled {
		n := b.kick(kickUser+user, packets.ErrAdministrativeAction)
		b.log.Info("user disabled", "user", user, "disconnected_here", n)
	} else {
		b.log.Info("user enabled", "user", user)
	}
	return nil
}

// DeleteUser deletes a user (see storage.Security) and disconnects them.
func (b *Broker) DeleteUser(ctx context.Context, user string) error {
	if err := b.store.DeleteUser(ctx, user, time.Now()); err != nil {
		return err
	}
	n := b.kick(kickUser+user, packets.ErrAdministrativeAction)
	b.log.Info("user deleted", "user", user, "disconnected_here", n)
	return nil
}

// errBadBan is a ban the admin API refuses.
var errBadBan = errors.New("invalid ban")

// AddBan stores a ban and disconnects the clients it matches.
func (b *Broker) AddBan(ctx context.Context, ban storage.Ban) (storage.Ban, error) {
	switch ban.Kind {
	case storage.BanIP:
		p, err := msgrauth.ParseIPBan(ban.Value)
		if err != nil {
			return storage.Ban{}, fmt.Errorf("%w: %w", errBadBan, err)
		}
		ban.Value = p.String()
	case storage.BanUser:
		if ban.Value == "" {
			return storage.Ban{}, fmt.Errorf("%w: empty user", errBadBan)
		}
	default:
		return storage.Ban{}, fmt.Errorf("%w: kind %q is not user or ip", errBadBan, ban.Kind)
	}
	if ban.CreatedAt.IsZero() {
		ban.CreatedAt = time.Now()
	}
	if !ban.ExpiresAt.IsZero() && !ban.ExpiresAt.After(ban.CreatedAt) {
		return storage.Ban{}, fmt.Errorf("%w: expires before it starts", errBadBan)
	}
	if err := b.store.AddBan(ctx, ban); err != nil {
		return storage.Ban{}, err
	}
	b.sec.bans.Invalidate()
	selector := kickUser + ban.Value
	if ban.Kind == storage.BanIP {
		selector = kickIP + ban.Value
	}
	n := b.kick(selector, packets.ErrBanned)
	b.log.Info("ban added", "kind", ban.Kind, "value", ban.Value, "disconnected_here", n)
	return ban, nil
}

// RemoveBan lifts a ban.
func (b *Broker) RemoveBan(ctx context.Context, kind storage.BanKind, value string) error {
	if kind == storage.BanIP {
		if p, err := msgrauth.ParseIPBan(value); err == nil {
			value = p.String()
		}
	}
	if err := b.store.RemoveBan(ctx, kind, value); err != nil {
		return err
	}
	b.sec.bans.Invalidate()
	return nil
}
