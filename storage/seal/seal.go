// Package seal implements storage.Sealer over a keyring: message bodies are
// sealed with AES-256-GCM under per-conversation data keys that the keyring
// wraps. It also holds the bounded cache of conversations' current data keys
// that both stores use on their write paths.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
)

// version is the first byte of every sealed body, so the format can change.
const version = 1

// DefaultCacheSize bounds how many unwrapped data keys a Sealer keeps, and
// how many conversations' current keys a KeyCache keeps.
const DefaultCacheSize = 16384

// Sealer is a storage.Sealer. It is safe for concurrent use.
type Sealer struct {
	ring *keyring.Keyring

	mu    sync.Mutex
	max   int
	aeads map[string]cipher.AEAD // by wrapped text: unique per wrap, so never stale
}

var _ storage.Sealer = (*Sealer)(nil)

// New returns a Sealer over ring that keeps up to cacheSize unwrapped data
// keys in memory (DefaultCacheSize if <= 0).
func New(ring *keyring.Keyring, cacheSize int) *Sealer {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Sealer{ring: ring, max: cacheSize, aeads: make(map[string]cipher.AEAD)}
}

// MasterKeyID is the current master key's id.
func (s *Sealer) MasterKeyID() string { return s.ring.ID() }

// HasMasterKey reports whether the keyring holds master key id.
func (s *Sealer) HasMasterKey(id string) bool { return s.ring.Has(id) }

// NewKey returns a new data key wrapped under the current master key.
func (s *Sealer) NewKey() (string, error) {
	dk, err := keyring.NewDataKey()
	if err != nil {
		return "", err
	}
	w, err := s.ring.Wrap(dk)
	if err != nil {
		return "", err
	}
	return w.String(), nil
}

// Rewrap unwraps a data key and wraps it under the current master key.
func (s *Sealer) Rewrap(wrapped string) (string, error) {
	w, err := keyring.ParseWrapped(wrapped)
	if err != nil {
		return "", err
	}
	dk, err := s.ring.Unwrap(w)
	if err != nil {
		return "", err
	}
	nw, err := s.ring.Wrap(dk)
	if err != nil {
		return "", err
	}
	return nw.String(), nil
}

// aead returns the cipher of a wrapped data key, unwrapping it on first use.
func (s *Sealer) aead(wrapped string) (cipher.AEAD, error) {
	s.mu.Lock()
	a, ok := s.aeads[wrapped]
	s.mu.Unlock()
	if ok {
		return a, nil
	}
	w, err := keyring.ParseWrapped(wrapped)
	if err != nil {
		return nil, err
	}
	dk, err := s.ring.Unwrap(w)
	if err != nil {
		if errors.Is(err, keyring.ErrUnknownMasterKey) {
			return nil, fmt.Errorf("%w: %w", storage.ErrWrongMasterKey, err)
		}
		return nil, err
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.aeads) >= s.max {
		for k := range s.aeads { // map order is random: random eviction
			delete(s.aeads, k)
			break
		}
	}
	s.aeads[wrapped] = a
	s.mu.Unlock()
	return a, nil
}

// ad builds the associated data: format version, key id, seq, conversation.
func ad(ref storage.BodyRef) []byte {
	b := make([]byte, 0, 1+8+8+len(ref.ConvID))
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(ref.KeyID))
	b = binary.BigEndian.AppendUint64(b, uint64(ref.Seq))
	return append(b, ref.ConvID...)
}

// Seal returns version || nonce || AES-256-GCM(body, ad(ref)).
func (s *Sealer) Seal(wrapped string, ref storage.BodyRef, body []byte) ([]byte, error) {
	a, err := s.aead(wrapped)
	if err != nil {
		return nil, fmt.Errorf("seal body of %s/%d: %w", ref.ConvID, ref.Seq, err)
	}
	n := a.NonceSize()
	out := make([]byte, 1+n, 1+n+len(body)+a.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal body: nonce: %w", err)
	}
	return a.Seal(out, out[1:], body, ad(ref)), nil
}

// Open reverses Seal.
func (s *Sealer) Open(wrapped string, ref storage.BodyRef, sealed []byte) ([]byte, error) {
	a, err := s.aead(wrapped)
	if err != nil {
		return nil, fmt.Errorf("open body of %s/%d: %w", ref.ConvID, ref.Seq, err)
	}
	n := a.NonceSize()
	if len(sealed) < 1+n+a.Overhead() || sealed[0] != version {
		return nil, fmt.Errorf("open body of %s/%d: %w: malformed ciphertext", ref.ConvID, ref.Seq, storage.ErrUndecryptable)
	}
	body, err := a.Open(nil, sealed[1:1+n], sealed[1+n:], ad(ref))
	if err != nil {
		return nil, fmt.Errorf("open body of %s/%d with key %d: %w", ref.ConvID, ref.Seq, ref.KeyID, storage.ErrUndecryptable)
	}
	return body, nil
}

// KeyCache maps conversations to their current data key. It is bounded and
// safe for concurrent use; a store checks an entry against the
// conversation's key id in the database before sealing with it.
type KeyCache struct {
	mu   sync.Mutex
	max  int
	keys map[string]Key
}

// Key is a conversation's data key: its id in the keys table and wrapped form.
type Key struct {
	ID      int64
	Wrapped string
}

// NewKeyCache returns a cache of up to size conversations (DefaultCacheSize if <= 0).
func NewKeyCache(size int) *KeyCache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &KeyCache{max: size, keys: make(map[string]Key)}
}

// Get returns the cached key of a conversation.
func (c *KeyCache) Get(convID string) (Key, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[convID]
	return k, ok
}

// Put caches a conversation's key.
func (c *KeyCache) Put(convID string, k Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[convID]; !ok && len(c.keys) >= c.max {
		for id := range c.keys {
			delete(c.keys, id)
			break
		}
	}
	c.keys[convID] = k
}

// Delete forgets a conversation's key.
func (c *KeyCache) Delete(convID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, convID)
}
