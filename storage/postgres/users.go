package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// CreateUser inserts a user; storage.ErrExists if the id is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	_, err := s.pool.Exec(ctx,
		"INSERT INTO users (id, password_hash, created_at) VALUES ($1, $2, $3)",
		u.ID, u.PasswordHash, u.CreatedAt)
	if hasCode(err, codeUniqueViolation) {
		return fmt.Errorf("create user %q: %w", u.ID, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the user or storage.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u := storage.User{ID: id}
	err := s.pool.QueryRow(ctx,
		"SELECT password_hash, created_at FROM users WHERE id = $1", id).
		Scan(&u.PasswordHash, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.User{}, fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("get user %q: %w", id, err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// SetPassword replaces a user's password hash; storage.ErrNotFound if absent.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE users SET password_hash = $2 WHERE id = $1", id, hash)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// TouchDevice creates the device on first use and updates LastSeen; it
// returns storage.ErrNotFound when the user does not exist. LastSeen never
// moves backwards, so a late write from another node is harmless.
func (s *Store) TouchDevice(ctx context.Context, userID, deviceID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO devices (user_id, device_id, created_at, last_seen) VALUES ($1, $2, $3, $3)
		ON CONFLICT (user_id, device_id) DO UPDATE
		SET last_seen = greatest(devices.last_seen, excluded.last_seen)`,
		userID, deviceID, now)
	if hasCode(err, codeForeignKeyViolation) {
		return fmt.Errorf("touch device %s/%s: user: %w", userID, deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("touch device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// ListDevices returns a user's devices ordered by DeviceID.
func (s *Store) ListDevices(ctx context.Context, userID string) ([]storage.Device, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT device_id, created_at, last_seen FROM devices
		WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices of %q: %w", userID, err)
	}
	devices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Device, error) {
		d := storage.Device{UserID: userID}
		err := row.Scan(&d.DeviceID, &d.CreatedAt, &d.LastSeen)
		d.CreatedAt, d.LastSeen = d.CreatedAt.UTC(), d.LastSeen.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices of %q: %w", userID, err)
	}
	return devices, nil
}
