package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres"
	"github.com/msgrhq/msgr/storage/sqlite"
)

// OpenStore opens the store cfg selects: PostgreSQL when a database URL is
// set, else the embedded SQLite database in the data directory.
func OpenStore(ctx context.Context, cfg Config) (storage.Store, error) {
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("open postgresql store: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "msgr.db"))
	if err != nil {
		return nil, fmt.Errorf("open embedded store in %s: %w", cfg.DataDir, err)
	}
	return s, nil
}
