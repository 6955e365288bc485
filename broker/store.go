package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres"
	"github.com/msgrhq/msgr/storage/seal"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// OpenStore opens the store cfg selects, encrypting under cfg's master key:
// PostgreSQL when a database URL is set, else the embedded SQLite database
// in the data directory. Its log goes to stderr, as msgrd's does.
func OpenStore(ctx context.Context, cfg Config) (storage.Store, error) {
	log := cfg.NewLogger(os.Stderr)
	if cfg.DatabaseURL == "" {
		// The generated key file goes into the data directory.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	ring, generated, err := LoadKeyring(cfg)
	if err != nil {
		return nil, err
	}
	if generated != "" {
		log.Warn("generated a new master key; back it up: without it the stored messages cannot be read",
			"file", generated, "master_key_id", ring.ID())
	}
	return OpenStoreKeyring(ctx, cfg, ring, log)
}

// OpenStoreKeyring opens the store cfg selects, encrypting under ring.
func OpenStoreKeyring(ctx context.Context, cfg Config, ring *keyring.Keyring, log *slog.Logger) (storage.Store, error) {
	sealer := seal.New(ring, 0)
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.WithSealer(sealer), postgres.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("open postgresql store: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "msgr.db"), sqlite.WithSealer(sealer), sqlite.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open embedded store in %s: %w", cfg.DataDir, err)
	}
	return s, nil
}
