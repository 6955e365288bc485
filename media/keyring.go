package media

import (
	"fmt"

	"github.com/msgrhq/msgr/keyring"
)

// KeyringKeys wraps data keys with a master keyring; wrapped keys are
// stored as keyring.Wrapped text, which names the master key.
func KeyringKeys(k *keyring.Keyring) Keys { return ringKeys{k} }

type ringKeys struct{ k *keyring.Keyring }

func (r ringKeys) Wrap(dataKey []byte) (string, error) {
	w, err := r.k.Wrap(dataKey)
	if err != nil {
		return "", err
	}
	return w.String(), nil
}

func (r ringKeys) Unwrap(s string) ([]byte, error) {
	w, err := keyring.ParseWrapped(s)
	if err != nil {
		return nil, fmt.Errorf("wrapped key: %w", err)
	}
	return r.k.Unwrap(w)
}
