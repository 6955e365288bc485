package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	msgrauth "github.com/msgrhq/msgr/auth"
)

// errNoCredentials means an HTTP request carried no Authorization header.
var errNoCredentials = errors.New("no credentials: use HTTP Basic (user and password) or a Bearer access token")

// httpUser authenticates an HTTP request as a chat user: HTTP Basic with the
// user's password, or "Authorization: Bearer" with an access token. It is
// the single entry point for HTTP user authentication; errors wrap
// errNoCredentials or msgrauth's sentinels.
func (b *Broker) httpUser(r *http.Request) (string, error) {
	id, err := b.httpIdentity(r)
	return id.User, err
}

// httpIdentity is httpUser with the device an access token names.
func (b *Broker) httpIdentity(r *http.Request) (msgrauth.Identity, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	c := msgrauth.Credentials{IP: msgrauth.RemoteAddr(r.RemoteAddr)}
	if user, password, ok := r.BasicAuth(); ok {
		c.User, c.Secret, c.PasswordOnly = user, password, true
	} else if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if b.sec.tokens == nil || !msgrauth.LooksLikeJWT(tok) {
			return msgrauth.Identity{}, fmt.Errorf("%w: not an access token", msgrauth.ErrBadCredentials)
		}
		c.Secret = tok
	} else {
		return msgrauth.Identity{}, errNoCredentials
	}
	if c.PasswordOnly && c.User == "" {
		return msgrauth.Identity{}, fmt.Errorf("%w: empty user", msgrauth.ErrBadCredentials)
	}
	// Passwords share the failed-login backoff of MQTT logins (hooks/limits).
	if c.PasswordOnly && b.lim.LoginThrottled(c.User, r.RemoteAddr) {
		return msgrauth.Identity{}, fmt.Errorf("%w: too many failed logins, retry later", msgrauth.ErrBadCredentials)
	}
	// A token is a device's: Authenticate refuses it once the device is
	// revoked, on HTTP as on MQTT.
	id, err := b.sec.auth.Authenticate(ctx, c)
	if c.PasswordOnly && !errors.Is(err, msgrauth.ErrUnavailable) {
		b.lim.LoginResult(c.User, r.RemoteAddr, err == nil)
	}
	return id, err
}
