package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Encryption at rest: message bodies are sealed with a per-conversation data
// key, and data keys are stored wrapped under the master key (see
// docs/ARCHITECTURE.md, "Encryption at rest"). Stores do the sealing, because
// a body's associated data includes its seq, which the store assigns inside
// its append transaction.

// Sentinel errors of encryption at rest.
var (
	// ErrWrongMasterKey means the database holds data keys wrapped under a
	// master key the store was not given.
	ErrWrongMasterKey = errors.New("wrong master key")
	// ErrUndecryptable means a stored body failed authentication: it was
	// altered, or moved to another row.
	ErrUndecryptable = errors.New("message body cannot be decrypted")
	// ErrEncrypted means a store opened without a master key found an
	// encrypted database.
	ErrEncrypted = errors.New("database is encrypted")
)

// ShreddedBody replaces the body of a message whose conversation's data key
// was deleted (crypto-shredded): the message keeps its place in the log, so
// sync moves past it, but its content is gone for good.
var ShreddedBody = []byte(`{"type":"shredded"}`)

// BodyRef is where a sealed body lives; it is the AEAD's associated data, so
// a ciphertext copied to another row, conversation or key fails to open.
type BodyRef struct {
	ConvID string
	Seq    int64
	KeyID  int64 // the data key's id in the store's keys table
}

// Sealer seals and opens message bodies for a store. Data keys travel in
// their wrapped text form; implementations unwrap them under the master key
// and may cache the result. storage/seal implements it over a keyring.
type Sealer interface {
	// MasterKeyID is the id of the master key that NewKey and Rewrap use.
	MasterKeyID() string
	// HasMasterKey reports whether keys wrapped under master key id open.
	HasMasterKey(id string) bool
	// NewKey returns a new random data key, wrapped.
	NewKey() (wrapped string, err error)
	// Rewrap returns a wrapped data key wrapped under the current master key.
	Rewrap(wrapped string) (string, error)
	// Seal encrypts body under the wrapped data key for ref.
	Seal(wrapped string, ref BodyRef, body []byte) ([]byte, error)
	// Open decrypts what Seal returned for the same ref; ErrUndecryptable
	// if it does not authenticate.
	Open(wrapped string, ref BodyRef, sealed []byte) ([]byte, error)
}

// Encryption manages a store's data keys.
type Encryption interface {
	// RewrapDataKeys rewraps, in batches, every data key not wrapped under
	// the sealer's current master key, and returns how many it rewrapped.
	// Messages are not rewritten. It is resumable: run it again after a
	// failure.
	RewrapDataKeys(ctx context.Context) (int, error)
	// ShredConversation deletes every data key of a conversation, making its
	// stored messages unreadable for good (they read back with
	// ShreddedBody); later messages get a new key. It returns how many keys
	// were deleted; ErrNotFound if the conversation does not exist.
	ShredConversation(ctx context.Context, convID string) (int, error)
}

// CheckMasterKeys checks that sealer can unwrap data keys wrapped under each
// of ids, the distinct master key ids found in a database; otherwise the
// error, wrapping ErrWrongMasterKey, names the keys involved.
func CheckMasterKeys(sealer Sealer, ids []string) error {
	var missing []string
	for _, id := range ids {
		if !sealer.HasMasterKey(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the database's data keys are wrapped under master key %s, but the configured master key is %s: "+
		"start with the master key this database was encrypted with (or, while rotating, give it as the previous key)",
		ErrWrongMasterKey, strings.Join(missing, ", "), sealer.MasterKeyID())
}
