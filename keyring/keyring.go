// Package keyring implements envelope encryption under a master key.
//
// Content (message bodies, media objects) is encrypted with data keys; data
// keys are stored only wrapped (encrypted) under a master key that lives
// outside the database, in a file or an environment variable. Rotating the
// master key rewraps the data keys and never touches the content; deleting a
// data key makes everything encrypted under it unrecoverable
// (crypto-shredding).
//
// Wrapping uses AES-256-GCM with a random 96-bit nonce. The associated data
// binds the wrapped key to the id of the master key that wrapped it, so a
// wrapped key relabelled with another id fails authentication.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length in bytes of master keys and data keys.
const KeySize = 32

// Sentinel errors callers handle with errors.Is.
var (
	// ErrUnknownMasterKey means a wrapped key was made under a master key
	// this keyring does not hold.
	ErrUnknownMasterKey = errors.New("keyring: unknown master key")
	// ErrCorrupt means a wrapped key (or its text form) fails to parse or
	// to authenticate: it was altered, truncated or relabelled.
	ErrCorrupt = errors.New("keyring: wrapped key is corrupt")
)

// idLabel is the HMAC message that derives a master key's public id.
const idLabel = "msgr master key id"

// idBytes is how much of the HMAC the id keeps: 64 bits tell keys apart
// without giving anything usable about the key away.
const idBytes = 8

// Keyring holds a current master key, used to wrap, and previous master keys,
// used only to unwrap during a rotation. It is immutable and safe for
// concurrent use. Its String, GoString and LogValue show only key ids, so a
// Keyring that ends up in a log or error message never reveals key material.
type Keyring struct {
	current string // id of the current master key
	derive  []byte // HKDF secret of the current key, for Derive
	aeads   map[string]cipher.AEAD
	order   []string // ids, current first, for String
}

// New returns a keyring that wraps under current and unwraps under current
// and any of previous. Every key must be KeySize bytes.
func New(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(previous))}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			what := "current master key"
			if i > 0 {
				what = fmt.Sprintf("previous master key %d", i)
			}
			return nil, fmt.Errorf("keyring: %s is %d bytes, want %d", what, len(key), KeySize)
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
			k.derive = bytes.Clone(key)
		}
		if _, dup := k.aeads[id]; dup {
			continue // the same key given twice (e.g. current also listed as previous)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		k.aeads[id] = aead
		k.order = append(k.order, id)
	}
	return k, nil
}

// KeyID returns the public id of a master key: the first 8 bytes of
// HMAC-SHA256(key, "msgr master key id"), hex. It identifies the key in
// wrapped keys and error messages and reveals nothing useful about it.
func KeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(idLabel))
	return hex.EncodeToString(m.Sum(nil)[:idBytes])
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return aead, nil
}

// ID returns the id of the current master key.
func (k *Keyring) ID() string { return k.current }

// Derive returns a KeySize-byte key for purpose, derived from the current
// master key with HKDF-SHA256. Every node holding the same master key
// derives the same key (e.g. to sign media links any node can check); a
// rotation changes it. purpose must name one use and version, so that no
// two uses share a key.
func (k *Keyring) Derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.derive, nil, "msgr derived key v1\x00"+purpose, KeySize)
	if err != nil {
		panic("keyring: hkdf: " + err.Error()) // only for lengths > 255*32
	}
	return key
}

// IDs returns the ids of all master keys held, the current one first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.order...) }

// Has reports whether the keyring holds the master key with that id.
func (k *Keyring) Has(id string) bool {
	_, ok := k.aeads[id]
	return ok
}

// String describes the keyring by key ids only.
func (k *Keyring) String() string {
	return "keyring(current=" + k.current + ", keys=" + strings.Join(k.order, ",") + ")"
}

// GoString is String, so %#v does not print key material either.
func (k *Keyring) GoString() string { return k.String() }

// LogValue makes slog log only the key ids.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

// NewDataKey returns KeySize random bytes.
func NewDataKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("keyring: generate data key: %w", err)
	}
	return key, nil
}

// wrapAAD is the associated data of a wrapped key: format version and the
// master key id, so that changing the id in a stored row is detected.
func wrapAAD(id string) []byte { return []byte("msgr wrapped key v1\x00" + id) }

// Wrap encrypts a KeySize data key under the current master key.
func (k *Keyring) Wrap(dataKey []byte) (Wrapped, error) {
	if len(dataKey) != KeySize {
		return Wrapped{}, fmt.Errorf("keyring: data key is %d bytes, want %d", len(dataKey), KeySize)
	}
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+KeySize+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Wrapped{}, fmt.Errorf("keyring: generate nonce: %w", err)
	}
	return Wrapped{MasterKeyID: k.current, Ciphertext: aead.Seal(nonce, nonce, dataKey, wrapAAD(k.current))}, nil
}

// Unwrap decrypts a wrapped data key. It fails with ErrUnknownMasterKey if
// the keyring does not hold the master key that wrapped it, and with
// ErrCorrupt if the ciphertext does not authenticate.
func (k *Keyring) Unwrap(w Wrapped) ([]byte, error) {
	aead, ok := k.aeads[w.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("%w: data key is wrapped under master key %q, keyring holds %s", ErrUnknownMasterKey, w.MasterKeyID, strings.Join(k.order, ", "))
	}
	n := aead.NonceSize()
	if len(w.Ciphertext) != n+KeySize+aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want %d", ErrCorrupt, len(w.Ciphertext), n+KeySize+aead.Overhead())
	}
	key, err := aead.Open(nil, w.Ciphertext[:n], w.Ciphertext[n:], wrapAAD(w.MasterKeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed under master key %q", ErrCorrupt, w.MasterKeyID)
	}
	return key, nil
}

// Wrapped is a data key encrypted under the master key MasterKeyID:
// nonce || AES-256-GCM ciphertext and tag.
type Wrapped struct {
	MasterKeyID string
	Ciphertext  []byte
}

// wrappedVersion prefixes the text form, so the format can change later.
const wrappedVersion = "v1"

// String is the single-column text form "v1.<master key id>.<base64url>",
// parsed back by ParseWrapped.
func (w Wrapped) String() string {
	return wrappedVersion + "." + w.MasterKeyID + "." + base64.RawURLEncoding.EncodeToString(w.Ciphertext)
}

// ParseWrapped parses the text form made by Wrapped.String. Malformed input
// fails with ErrCorrupt.
func ParseWrapped(s string) (Wrapped, error) {
	version, rest, ok := strings.Cut(s, ".")
	if !ok {
		return Wrapped{}, fmt.Errorf("%w: %q has no version prefix", ErrCorrupt, abbrev(s))
	}
	if version != wrappedVersion {
		return Wrapped{}, fmt.Errorf("%w: unsupported version %q, want %q", ErrCorrupt, abbrev(version), wrappedVersion)
	}
	id, b64, ok := strings.Cut(rest, ".")
	if !ok || id == "" || b64 == "" {
		return Wrapped{}, fmt.Errorf("%w: want v1.<key id>.<base64>", ErrCorrupt)
	}
	ct, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return Wrapped{}, fmt.Errorf("%w: bad base64: %v", ErrCorrupt, err)
	}
	return Wrapped{MasterKeyID: id, Ciphertext: ct}, nil
}

// abbrev shortens untrusted input quoted in error messages.
func abbrev(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}
