package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// BanSource is where bans are kept (the store).
type BanSource interface {
	ListBans(ctx context.Context) ([]storage.Ban, error)
}

// Bans answers "is this user or address banned?" from a copy of the store's
// bans that is at most MaxAge old, so that a connection storm does not turn
// into a query storm. Changes made through this node call Invalidate and
// apply at once; changes made on another node apply within MaxAge.
type Bans struct {
	src    BanSource
	maxAge time.Duration
	now    func() time.Time

	mu     sync.Mutex
	loaded time.Time
	users  map[string]storage.Ban
	nets   []ipBan
}

type ipBan struct {
	prefix netip.Prefix
	ban    storage.Ban
}

// NewBans returns a ban checker reading src; now is time.Now in production.
func NewBans(src BanSource, maxAge time.Duration, now func() time.Time) *Bans {
	if now == nil {
		now = time.Now
	}
	return &Bans{src: src, maxAge: maxAge, now: now}
}

// Invalidate makes the next check reload the bans.
func (b *Bans) Invalidate() {
	b.mu.Lock()
	b.loaded = time.Time{}
	b.mu.Unlock()
}

// load refreshes the copy when stale. On a store error it keeps the old
// copy if there is one: refusing every connection because the ban list is
// briefly unreadable would be worse than a ban applying late.
func (b *Bans) load(ctx context.Context) error {
	now := b.now()
	if !b.loaded.IsZero() && now.Sub(b.loaded) < b.maxAge {
		return nil
	}
	list, err := b.src.ListBans(ctx)
	if err != nil {
		if b.users != nil {
			// Keep the old copy for another MaxAge rather than queueing
			// every connection behind a failing query.
			b.loaded = now
			return nil
		}
		return fmt.Errorf("load bans: %w", err)
	}
	users := map[string]storage.Ban{}
	var nets []ipBan
	for _, ban := range list {
		switch ban.Kind {
		case storage.BanUser:
			users[ban.Value] = ban
		case storage.BanIP:
			p, err := netip.ParsePrefix(ban.Value)
			if err != nil {
				continue // AddBan stores canonical prefixes only
			}
			nets = append(nets, ipBan{prefix: p, ban: ban})
		}
	}
	b.users, b.nets, b.loaded = users, nets, now
	return nil
}

// User returns the ban in force on user, if any.
func (b *Bans) User(ctx context.Context, user string) (storage.Ban, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.load(ctx); err != nil {
		return storage.Ban{}, false, err
	}
	ban, ok := b.users[user]
	if !ok || !ban.Active(b.now()) {
		return storage.Ban{}, false, nil
	}
	return ban, true, nil
}

// IP returns a ban in force on addr, if any. An invalid addr (unknown
// remote) matches nothing.
func (b *Bans) IP(ctx context.Context, addr netip.Addr) (storage.Ban, bool, error) {
	if !addr.IsValid() {
		return storage.Ban{}, false, nil
	}
	addr = addr.Unmap().WithZone("")
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.load(ctx); err != nil {
		return storage.Ban{}, false, err
	}
	now := b.now()
	for _, n := range b.nets {
		if n.prefix.Contains(addr) && n.ban.Active(now) {
			return n.ban, true, nil
		}
	}
	return storage.Ban{}, false, nil
}

// ParseIPBan turns "192.0.2.7", "2001:db8::/32" or "10.1.2.3/8" into the
// canonical prefix stored for an IP ban ("192.0.2.7/32", "10.0.0.0/8").
func ParseIPBan(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zoned addresses cannot be banned")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("zoned addresses cannot be banned")
	}
	return p.Masked(), nil
}

// RemoteAddr extracts the IP of a "host:port" remote address; the zero
// Addr when there is none (an in-process client).
func RemoteAddr(hostport string) netip.Addr {
	// The zone of a link-local address is dropped: prefixes have none, so
	// a zoned address would match no ban.
	ap, err := netip.ParseAddrPort(hostport)
	if err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	a, err := netip.ParseAddr(hostport)
	if err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}
