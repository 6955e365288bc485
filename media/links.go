package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrBadLink means a signed link is malformed, forged or expired.
var ErrBadLink = errors.New("invalid or expired media link")

// MaxLinkTTL bounds how long a signed link stays valid.
const MaxLinkTTL = 24 * time.Hour

// SignLink returns the query string ("expires=...&sig=...") of a link that
// lets anyone holding it read media id until expires, without credentials
// (to hand a file to a browser, a player or a download manager). The
// signature is HMAC-SHA256 under the service's link key.
func (s *Service) SignLink(id string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return "expires=" + exp + "&sig=" + s.linkSig(id, exp)
}

func (s *Service) linkSig(id, exp string) string {
	mac := hmac.New(sha256.New, s.cfg.LinkKey)
	mac.Write([]byte("msgr media link v1\x00" + id + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckLink verifies a link's expires and sig parameters for media id.
func (s *Service) CheckLink(id, expires, sig string) error {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad expiry", ErrBadLink)
	}
	if !hmac.Equal([]byte(sig), []byte(s.linkSig(id, expires))) {
		return fmt.Errorf("%w: bad signature", ErrBadLink)
	}
	if s.cfg.Now().Unix() > exp {
		return fmt.Errorf("%w: expired", ErrBadLink)
	}
	return nil
}
