package broker

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/msgrhq/msgr/keyring"
)

// masterKeyEnv holds the master key itself (base64 or hex).
const masterKeyEnv = "MSGR_MASTER_KEY"

// DefaultMasterKeyFile is the embedded store's master key file inside the
// data directory, created on first start when no key is given.
const DefaultMasterKeyFile = "master.key"

func (c *Config) validateKeys() []error {
	var errs []error
	if c.MasterKeyFile != "" && c.MasterKey != "" {
		errs = append(errs, fmt.Errorf("master-key-file and %s are both set: give the master key one way", masterKeyEnv))
	}
	if c.DatabaseURL != "" && c.MasterKeyFile == "" && c.MasterKey == "" {
		errs = append(errs, fmt.Errorf("master key: required with database-url: set --master-key-file (MSGR_MASTER_KEY_FILE) or %s; "+
			"create a key with: msgrd keys generate FILE", masterKeyEnv))
	}
	return errs
}

// MasterKeys loads cfg's master keys: the current key from MSGR_MASTER_KEY
// or master-key-file, else (embedded store only) <data-dir>/master.key,
// generated with permissions 0600 if missing; plus the previous key while
// rotating. generated names a key file it created.
func MasterKeys(cfg Config) (current []byte, previous [][]byte, generated string, err error) {
	switch {
	case cfg.MasterKey != "":
		if current, err = keyring.ParseKey(cfg.MasterKey); err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", masterKeyEnv, err)
		}
	case cfg.MasterKeyFile != "":
		if current, err = keyring.LoadFile(cfg.MasterKeyFile); err != nil {
			return nil, nil, "", fmt.Errorf("master-key-file: %w", err)
		}
	case cfg.DatabaseURL != "":
		return nil, nil, "", errors.New("master key: required with database-url")
	default:
		path := filepath.Join(cfg.DataDir, DefaultMasterKeyFile)
		created := false
		if current, created, err = keyring.LoadOrCreateFile(path); err != nil {
			return nil, nil, "", fmt.Errorf("embedded store master key: %w", err)
		}
		if created {
			generated = path
		}
	}
	if cfg.PreviousMasterKeyFile != "" {
		p, err := keyring.LoadFile(cfg.PreviousMasterKeyFile)
		if err != nil {
			return nil, nil, "", fmt.Errorf("previous-master-key-file: %w", err)
		}
		previous = append(previous, p)
	}
	return current, previous, generated, nil
}

// LoadKeyring returns the keyring of cfg's master keys (see MasterKeys).
func LoadKeyring(cfg Config) (ring *keyring.Keyring, generated string, err error) {
	current, previous, generated, err := MasterKeys(cfg)
	if err != nil {
		return nil, "", err
	}
	ring, err = keyring.New(current, previous...)
	if err != nil {
		return nil, "", err
	}
	return ring, generated, nil
}
