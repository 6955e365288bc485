package broker

import (
	"fmt"
	"path/filepath"

	"github.com/msgrhq/msgr/keyring"
)

// mediaKeyring loads the master key for media. TEMPORARY: replaced by the
// master key configuration of encryption at rest when that lands.
func mediaKeyring(cfg Config) (*keyring.Keyring, error) {
	key, _, err := keyring.LoadOrCreateFile(filepath.Join(cfg.DataDir, "master.key"))
	if err != nil {
		return nil, fmt.Errorf("media master key: %w", err)
	}
	return keyring.New(key)
}
