package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// CreateUser inserts a user; storage.ErrExists if the id is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (id, password_hash, created_at) VALUES (?, ?, ?)`,
		u.ID, u.PasswordHash, toMillis(u.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create user %q: %w", u.ID, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create user %q: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the user or storage.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u := storage.User{ID: id}
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT password_hash, created_at FROM users WHERE id = ?`, id).
		Scan(&u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.User{}, fmt.Errorf("sqlite: get user %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("sqlite: get user %q: %w", id, err)
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

// SetPassword replaces a user's password hash; storage.ErrNotFound if absent.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
	if err != nil {
		return fmt.Errorf("sqlite: set password %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: set password %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: set password %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// TouchDevice creates the device on first use and updates LastSeen. It
// returns storage.ErrNotFound when the user does not exist.
func (s *Store) TouchDevice(ctx context.Context, userID, deviceID string, now time.Time) error {
	ms := toMillis(now)
	_, err := s.w.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, created_at, last_seen) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen = excluded.last_seen`,
		userID, deviceID, ms, ms)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("sqlite: touch device %q/%q: user %w", userID, deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: touch device %q/%q: %w", userID, deviceID, err)
	}
	return nil
}

// ListDevices returns a user's devices ordered by DeviceID.
func (s *Store) ListDevices(ctx context.Context, userID string) ([]storage.Device, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, created_at, last_seen FROM devices
		WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d := storage.Device{UserID: userID}
		var created, seen int64
		if err := rows.Scan(&d.DeviceID, &created, &seen); err != nil {
			return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
		}
		d.CreatedAt, d.LastSeen = fromMillis(created), fromMillis(seen)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
	}
	return out, nil
}
