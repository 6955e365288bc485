package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// CreateUser inserts a user; storage.ErrExists if the id is taken. Zero
// Settings are stored as storage.DefaultSettings().
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if u.Settings == (storage.Settings{}) {
		u.Settings = storage.DefaultSettings()
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (id, password_hash, created_at, presence, read_receipts, last_seen)
		VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, u.PasswordHash, toMillis(u.CreatedAt), u.Settings.Presence, u.Settings.ReadReceipts, nullMillis(u.LastSeen))
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
	var lastSeen, disabled, deleted sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT password_hash, created_at, presence, read_receipts, last_seen, disabled_at, deleted_at, token_gen
		FROM users WHERE id = ?`, id).
		Scan(&u.PasswordHash, &created, &u.Settings.Presence, &u.Settings.ReadReceipts, &lastSeen, &disabled, &deleted, &u.TokenGen)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.User{}, fmt.Errorf("sqlite: get user %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("sqlite: get user %q: %w", id, err)
	}
	u.CreatedAt = fromMillis(created)
	u.LastSeen, u.DisabledAt, u.DeletedAt = timeOrZero(lastSeen), timeOrZero(disabled), timeOrZero(deleted)
	return u, nil
}

// SetPassword replaces a user's password hash and raises its token
// generation; storage.ErrNotFound if absent.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	if err := s.updateUser(ctx, `UPDATE users SET password_hash = ?, token_gen = token_gen + 1 WHERE id = ?`, hash, id); err != nil {
		return fmt.Errorf("sqlite: set password %q: %w", id, err)
	}
	return nil
}

// SetSettings replaces a user's settings; storage.ErrNotFound if absent. An
// unknown visibility fails the presence CHECK constraint.
func (s *Store) SetSettings(ctx context.Context, id string, st storage.Settings) error {
	err := s.updateUser(ctx, `UPDATE users SET presence = ?, read_receipts = ? WHERE id = ?`, st.Presence, st.ReadReceipts, id)
	if err != nil {
		return fmt.Errorf("sqlite: set settings %q: %w", id, err)
	}
	return nil
}

// SetLastSeen records when the user was last online; storage.ErrNotFound if
// absent. It never moves backwards, so a late report of an earlier
// disconnect does not hide a later one.
func (s *Store) SetLastSeen(ctx context.Context, id string, t time.Time) error {
	err := s.updateUser(ctx, `UPDATE users SET last_seen = MAX(COALESCE(last_seen, ?1), ?1) WHERE id = ?2`, toMillis(t), id)
	if err != nil {
		return fmt.Errorf("sqlite: set last seen %q: %w", id, err)
	}
	return nil
}

// updateUser runs an UPDATE of one users row, returning storage.ErrNotFound
// when no row matched.
func (s *Store) updateUser(ctx context.Context, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Contacts lists, ordered, the users sharing an active direct conversation
// with id. Both sides of a pair are index lookups (the primary key and
// direct_pairs_user_hi); the members probes keep an ended membership from
// counting.
func (s *Store) Contacts(ctx context.Context, id string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.other FROM (
			SELECT conv_id, user_hi AS other FROM direct_pairs WHERE user_lo = ?1
			UNION ALL
			SELECT conv_id, user_lo FROM direct_pairs WHERE user_hi = ?1
		) p
		JOIN members me ON me.conv_id = p.conv_id AND me.user_id = ?1 AND me.until_seq = 0 AND me.read_seq > 0
		JOIN members o ON o.conv_id = p.conv_id AND o.user_id = p.other AND o.until_seq = 0
		ORDER BY p.other`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: contacts of %q: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("sqlite: contacts of %q: %w", id, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: contacts of %q: %w", id, err)
	}
	return out, nil
}

// SharesConversation reports whether a and b are both active members of at
// least one conversation.
func (s *Store) SharesConversation(ctx context.Context, a, b string) (bool, error) {
	var shares bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (
			SELECT 1 FROM members ma
			JOIN members mb ON mb.conv_id = ma.conv_id AND mb.user_id = ?2 AND mb.until_seq = 0 AND mb.read_seq > 0
			WHERE ma.user_id = ?1 AND ma.until_seq = 0)`, a, b).Scan(&shares)
	if err != nil {
		return false, fmt.Errorf("sqlite: does %q share a conversation with %q: %w", a, b, err)
	}
	return shares, nil
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
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, created_at, last_seen, revoked_at FROM devices
		WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d := storage.Device{UserID: userID}
		var created, seen int64
		var revoked sql.NullInt64
		if err := rows.Scan(&d.DeviceID, &created, &seen, &revoked); err != nil {
			return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
		}
		d.CreatedAt, d.LastSeen, d.RevokedAt = fromMillis(created), fromMillis(seen), timeOrZero(revoked)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list devices %q: %w", userID, err)
	}
	return out, nil
}
