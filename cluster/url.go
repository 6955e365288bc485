package cluster

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrBadURL is returned for a Redis URL msgr cannot use.
var ErrBadURL = errors.New("invalid redis url")

// NewClient returns a Redis client for url:
//
//   - redis://[user:pass@]host:port[/db] and rediss:// (TLS): one server;
//   - redis+sentinel://[user:pass@]host:port?master_name=NAME&addr=host2:port
//     (rediss+sentinel:// for TLS): a Sentinel-managed primary, the host and
//     every addr being sentinels, user:pass the sentinels' credentials
//     (password=... for the primary's);
//   - redis+cluster://[user:pass@]host:port?addr=host2:port (rediss+cluster://
//     for TLS): a Redis Cluster, the host and every addr being seed nodes.
//
// Query parameters are go-redis's (dial_timeout, pool_size, ...), see
// redis.ParseURL, redis.ParseFailoverURL and redis.ParseClusterURL. Context
// deadlines always apply to commands.
func NewClient(url string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("%w: %q has no scheme", ErrBadURL, redact(url))
	}
	base, mode, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" {
		return nil, fmt.Errorf("%w: scheme %q (want redis, rediss, redis+sentinel or redis+cluster)", ErrBadURL, scheme)
	}
	plain := base + "://" + rest
	switch mode {
	case "":
		o, err := redis.ParseURL(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil
	case "sentinel":
		o, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("%w: redis+sentinel needs master_name", ErrBadURL)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	}
	return nil, fmt.Errorf("%w: scheme %q (want redis, rediss, redis+sentinel or redis+cluster)", ErrBadURL, scheme)
}

// ValidateURL checks url without connecting.
func ValidateURL(url string) error {
	c, err := NewClient(url)
	if err != nil {
		return err
	}
	return c.Close()
}

// redact drops credentials from a URL for error messages.
func redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return "<unparsable>"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "***@" + rest[at+1:]
	}
	return scheme + "://" + rest
}
