package chat

import (
	"context"
	"sync"
)

// maxDirects bounds the direct-conversation cache: about 100 bytes an
// entry, so 10 MB at most.
const maxDirects = 100_000

// directCache remembers the direct conversation of a pair of users, so that
// a send addressed to a user ("to") does not read the store before it is
// appended. A pair's direct conversation never changes while it exists; one
// deleted meanwhile (by an operator, on any node) makes the append fail
// with not found, and Send then forgets the entry and asks the store again.
type directCache struct {
	mu sync.Mutex
	m  map[[2]string]string // {lower user, higher user} -> conversation id
}

func newDirectCache() *directCache { return &directCache{m: make(map[[2]string]string)} }

func pairKey(a, b string) [2]string { return [2]string{min(a, b), max(a, b)} }

func (c *directCache) get(a, b string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.m[pairKey(a, b)]
	return id, ok
}

func (c *directCache) put(a, b, convID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxDirects {
		for k := range c.m { // evict an arbitrary entry: a miss costs one query
			delete(c.m, k)
			break
		}
	}
	c.m[pairKey(a, b)] = convID
}

func (c *directCache) forget(a, b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, pairKey(a, b))
}

// directID returns the id of the direct conversation of me and other,
// creating it on first use; cached reports that it came from the cache.
func (s *Service) directID(ctx context.Context, me, other string) (id string, cached bool, err error) {
	if id, ok := s.directs.get(me, other); ok {
		return id, true, nil
	}
	c, err := s.direct(ctx, me, other)
	if err != nil {
		return "", false, err
	}
	s.directs.put(me, other, c.ID)
	return c.ID, false, nil
}
