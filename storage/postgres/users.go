package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// CreateUser inserts a user; storage.ErrExists if the id is taken. Zero
// Settings are stored as storage.DefaultSettings().
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if u.Settings == (storage.Settings{}) {
		u.Settings = storage.DefaultSettings()
	}
	var lastSeen *time.Time // NULL: never seen
	if !u.LastSeen.IsZero() {
		lastSeen = &u.LastSeen
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO users (id, password_hash, created_at, presence, read_receipts, last_seen)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.PasswordHash, u.CreatedAt, u.Settings.Presence, u.Settings.ReadReceipts, lastSeen)
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
	var lastSeen, disabled, deleted *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT password_hash, created_at, presence, read_receipts, last_seen, disabled_at, deleted_at, token_gen FROM users WHERE id = $1`, id).
		Scan(&u.PasswordHash, &u.CreatedAt, &u.Settings.Presence, &u.Settings.ReadReceipts, &lastSeen, &disabled, &deleted, &u.TokenGen)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.User{}, fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("get user %q: %w", id, err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.LastSeen, u.DisabledAt, u.DeletedAt = timeOrZero(lastSeen), timeOrZero(disabled), timeOrZero(deleted)
	return u, nil
}

// SetPassword replaces a user's password hash and raises its token
// generation; storage.ErrNotFound if absent.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	if err := s.updateUser(ctx, "UPDATE users SET password_hash = $2, token_gen = token_gen + 1 WHERE id = $1", id, hash); err != nil {
		return fmt.Errorf("set password of %q: %w", id, err)
	}
	return nil
}

// SetSettings replaces a user's settings; storage.ErrNotFound if absent. An
// unknown visibility fails the presence CHECK constraint.
func (s *Store) SetSettings(ctx context.Context, id string, st storage.Settings) error {
	err := s.updateUser(ctx, "UPDATE users SET presence = $2, read_receipts = $3 WHERE id = $1",
		id, st.Presence, st.ReadReceipts)
	if err != nil {
		return fmt.Errorf("set settings of %q: %w", id, err)
	}
	return nil
}

// SetLastSeen records when the user was last online; storage.ErrNotFound if
// absent. It never moves backwards (greatest ignores the NULL of a user
// never seen), so a late write from another node is harmless.
func (s *Store) SetLastSeen(ctx context.Context, id string, t time.Time) error {
	if err := s.updateUser(ctx, "UPDATE users SET last_seen = greatest(last_seen, $2) WHERE id = $1", id, t); err != nil {
		return fmt.Errorf("set last seen of %q: %w", id, err)
	}
	return nil
}

// updateUser runs an UPDATE of one users row, returning storage.ErrNotFound
// when no row matched.
func (s *Store) updateUser(ctx context.Context, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Contacts lists, ordered, the users sharing an active direct conversation
// with id. Both sides of a pair are index lookups (the primary key and
// direct_pairs_user_hi); the members probes keep an ended membership from
// counting.
func (s *Store) Contacts(ctx context.Context, id string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT p.other FROM (
			SELECT conv_id, user_hi AS other FROM direct_pairs WHERE user_lo = $1
			UNION ALL
			SELECT conv_id, user_lo FROM direct_pairs WHERE user_hi = $1
		) p
		JOIN members me ON me.conv_id = p.conv_id AND me.user_id = $1 AND me.until_seq IS NULL AND me.read_seq > 0
		JOIN members o ON o.conv_id = p.conv_id AND o.user_id = p.other AND o.until_seq IS NULL
		ORDER BY p.other`, id)
	if err != nil {
		return nil, fmt.Errorf("contacts of %q: %w", id, err)
	}
	contacts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("contacts of %q: %w", id, err)
	}
	return contacts, nil
}

// SharesConversation reports whether a and b are both active members of at
// least one conversation.
func (s *Store) SharesConversation(ctx context.Context, a, b string) (bool, error) {
	var shares bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (
		SELECT FROM members ma
		JOIN members mb ON mb.conv_id = ma.conv_id AND mb.user_id = $2 AND mb.until_seq IS NULL AND mb.read_seq > 0
		WHERE ma.user_id = $1 AND ma.until_seq IS NULL)`, a, b).Scan(&shares)
	if err != nil {
		return false, fmt.Errorf("does %q share a conversation with %q: %w", a, b, err)
	}
	return shares, nil
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
		SELECT device_id, created_at, last_seen, revoked_at FROM devices
		WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices of %q: %w", userID, err)
	}
	devices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Device, error) {
		d := storage.Device{UserID: userID}
		var revoked *time.Time
		err := row.Scan(&d.DeviceID, &d.CreatedAt, &d.LastSeen, &revoked)
		d.CreatedAt, d.LastSeen, d.RevokedAt = d.CreatedAt.UTC(), d.LastSeen.UTC(), timeOrZero(revoked)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices of %q: %w", userID, err)
	}
	return devices, nil
}
