package limits

import (
	"sync"
	"time"
)

// sweepInterval is how often a table drops idle entries, at most.
const sweepInterval = time.Minute

// table is a bounded map of per-key state that forgets idle entries: an
// entry whose expiry has passed is worth no more than a fresh one, so
// dropping it changes nothing. When the table is full even after a sweep it
// drops arbitrary entries, which at worst forgives someone early.
type table[K comparable, V any] struct {
	max int

	mu        sync.Mutex
	entries   map[K]*tableEntry[V]
	lastSweep time.Time
}

type tableEntry[V any] struct {
	v       V
	expires time.Time
}

func newTable[K comparable, V any](max int) *table[K, V] {
	return &table[K, V]{max: max, entries: make(map[K]*tableEntry[V])}
}

// do runs f on k's value, created by fresh if absent, under the table's
// lock; f returns how long the entry stays useful after now.
func (t *table[K, V]) do(k K, now time.Time, fresh func() V, f func(v *V) time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[k]
	if !ok || now.After(e.expires) {
		if !ok {
			t.makeRoom(now)
		}
		e = &tableEntry[V]{v: fresh()}
		t.entries[k] = e
	}
	e.expires = now.Add(f(&e.v))
}

// peek runs f on k's value if it exists and has not expired.
func (t *table[K, V]) peek(k K, now time.Time, f func(v *V)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[k]; ok && !now.After(e.expires) {
		f(&e.v)
	}
}

func (t *table[K, V]) delete(k K) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, k)
}

func (t *table[K, V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// makeRoom sweeps expired entries now and then, and evicts when full.
func (t *table[K, V]) makeRoom(now time.Time) {
	if now.Sub(t.lastSweep) >= sweepInterval || len(t.entries) >= t.max {
		t.lastSweep = now
		for k, e := range t.entries {
			if now.After(e.expires) {
				delete(t.entries, k)
			}
		}
	}
	if len(t.entries) < t.max {
		return
	}
	// Still full of live entries: drop a tenth, chosen by map order.
	drop := max(1, t.max/10)
	for k := range t.entries {
		delete(t.entries, k)
		if drop--; drop == 0 {
			break
		}
	}
}
