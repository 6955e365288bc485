package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// timeOrZero reads a nullable millisecond column; NULL is the zero time.
func timeOrZero(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}

// GetDevice returns one device or storage.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, userID, deviceID string) (storage.Device, error) {
	d := storage.Device{UserID: userID, DeviceID: deviceID}
	var created, seen int64
	var revoked sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT created_at, last_seen, revoked_at FROM devices
		WHERE user_id = ? AND device_id = ?`, userID, deviceID).Scan(&created, &seen, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Device{}, fmt.Errorf("sqlite: device %s/%s: %w", userID, deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("sqlite: get device %s/%s: %w", userID, deviceID, err)
	}
	d.CreatedAt, d.LastSeen, d.RevokedAt = fromMillis(created), fromMillis(seen), timeOrZero(revoked)
	return d, nil
}

// RevokeDevice marks a device revoked and forgets its refresh token.
func (s *Store) RevokeDevice(ctx context.Context, userID, deviceID string, t time.Time) error {
	err := s.updateUser(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, ?), refresh_hash = '', refresh_expires_at = 0
		WHERE user_id = ? AND device_id = ?`, toMillis(t), userID, deviceID)
	if err != nil {
		return fmt.Errorf("sqlite: revoke device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// SetRefreshToken replaces the device's refresh token unless it is revoked.
func (s *Store) SetRefreshToken(ctx context.Context, userID, deviceID string, tok storage.RefreshToken) error {
	return inTx(ctx, s.w, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM devices WHERE user_id = ? AND device_id = ?`,
			userID, deviceID).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: set refresh token of %s/%s: %w", userID, deviceID, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: set refresh token of %s/%s: %w", userID, deviceID, err)
		}
		if revoked.Valid {
			return fmt.Errorf("sqlite: set refresh token of %s/%s: %w", userID, deviceID, storage.ErrRevoked)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET refresh_hash = ?, refresh_expires_at = ?
			WHERE user_id = ? AND device_id = ?`, tok.Hash, toMillis(tok.ExpiresAt), userID, deviceID); err != nil {
			return fmt.Errorf("sqlite: set refresh token of %s/%s: %w", userID, deviceID, err)
		}
		return nil
	})
}

// RotateRefreshToken swaps the refresh token in one conditional UPDATE, so
// that of two rotations of the same token only one matches.
func (s *Store) RotateRefreshToken(ctx context.Context, userID, deviceID, oldHash string, next storage.RefreshToken, now time.Time) error {
	if oldHash == "" {
		return fmt.Errorf("sqlite: rotate refresh token of %s/%s: %w", userID, deviceID, storage.ErrNotFound)
	}
	err := s.updateUser(ctx, `UPDATE devices SET refresh_hash = ?, refresh_expires_at = ?
		WHERE user_id = ? AND device_id = ? AND refresh_hash = ? AND refresh_expires_at > ? AND revoked_at IS NULL`,
		next.Hash, toMillis(next.ExpiresAt), userID, deviceID, oldHash, toMillis(now))
	if err != nil {
		return fmt.Errorf("sqlite: rotate refresh token of %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// ClearRefreshTokens voids the refresh tokens of all of a user's devices.
func (s *Store) ClearRefreshTokens(ctx context.Context, userID string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE devices SET refresh_hash = '', refresh_expires_at = 0 WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("sqlite: clear refresh tokens of %q: %w", userID, err)
	}
	return nil
}

// SetDisabled disables or re-enables a user that is not deleted.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool, t time.Time) error {
	var at sql.NullInt64
	query := `UPDATE users SET disabled_at = NULL WHERE id = ? AND deleted_at IS NULL`
	args := []any{id}
	if disabled {
		at = nullMillis(t)
		query = `UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ? AND deleted_at IS NULL`
		args = []any{at, id}
	}
	if err := s.updateUser(ctx, query, args...); err != nil {
		return fmt.Errorf("sqlite: set disabled %q: %w", id, err)
	}
	return nil
}

// DeleteUser leaves a tombstone: the id stays referenced by conversations.
func (s *Store) DeleteUser(ctx context.Context, id string, t time.Time) error {
	ms := toMillis(t)
	return inTx(ctx, s.w, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = ?, password_hash = ''
			WHERE id = ? AND deleted_at IS NULL`, ms, id)
		if err != nil {
			return fmt.Errorf("sqlite: delete user %q: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlite: delete user %q: %w", id, errors.Join(err, storage.ErrNotFound))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, ?), refresh_hash = '', refresh_expires_at = 0
			WHERE user_id = ?`, ms, id); err != nil {
			return fmt.Errorf("sqlite: delete user %q: revoke devices: %w", id, err)
		}
		return nil
	})
}

// ListUsers pages through users by id.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]storage.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, password_hash, created_at, presence, read_receipts, last_seen, disabled_at, deleted_at, token_gen
		FROM users WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		var u storage.User
		var created int64
		var lastSeen, disabled, deleted sql.NullInt64
		if err := rows.Scan(&u.ID, &u.PasswordHash, &created, &u.Settings.Presence, &u.Settings.ReadReceipts,
			&lastSeen, &disabled, &deleted, &u.TokenGen); err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		u.CreatedAt = fromMillis(created)
		u.LastSeen, u.DisabledAt, u.DeletedAt = timeOrZero(lastSeen), timeOrZero(disabled), timeOrZero(deleted)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return out, nil
}

// ListConversations pages through conversations by id.
func (s *Store) ListConversations(ctx context.Context, after string, limit int) ([]storage.Conversation, error) {
	out, err := queryAll(ctx, s.r, scanConv, `SELECT `+convColumns+` FROM conversations WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list conversations: %w", err)
	}
	return out, nil
}

// DeleteConversation deletes a conversation and everything hanging off it.
// The foreign keys cascade too; the explicit deletes do not depend on it.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	return inTx(ctx, s.w, func(tx *sql.Tx) error {
		for _, table := range []string{"device_cursors", "messages", "members", "direct_pairs"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE conv_id = ?`, id); err != nil {
				return fmt.Errorf("sqlite: delete conversation %q: %s: %w", id, table, err)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM conversations WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("sqlite: delete conversation %q: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlite: delete conversation %q: %w", id, errors.Join(err, storage.ErrNotFound))
		}
		return nil
	})
}

// AddBan stores a ban; storage.ErrExists if one of that kind and value exists.
func (s *Store) AddBan(ctx context.Context, b storage.Ban) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO bans (kind, value, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		b.Kind, b.Value, b.Reason, toMillis(b.CreatedAt), nullMillis(b.ExpiresAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: add ban %s %s: %w", b.Kind, b.Value, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: add ban %s %s: %w", b.Kind, b.Value, err)
	}
	return nil
}

// RemoveBan deletes a ban; storage.ErrNotFound if there is none.
func (s *Store) RemoveBan(ctx context.Context, kind storage.BanKind, value string) error {
	if err := s.updateUser(ctx, `DELETE FROM bans WHERE kind = ? AND value = ?`, kind, value); err != nil {
		return fmt.Errorf("sqlite: remove ban %s %s: %w", kind, value, err)
	}
	return nil
}

// ListBans returns every ban ordered by kind and value.
func (s *Store) ListBans(ctx context.Context) ([]storage.Ban, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, value, reason, created_at, expires_at FROM bans ORDER BY kind, value`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list bans: %w", err)
	}
	defer rows.Close()
	var out []storage.Ban
	for rows.Next() {
		var b storage.Ban
		var created int64
		var expires sql.NullInt64
		if err := rows.Scan(&b.Kind, &b.Value, &b.Reason, &created, &expires); err != nil {
			return nil, fmt.Errorf("sqlite: list bans: %w", err)
		}
		b.CreatedAt, b.ExpiresAt = fromMillis(created), timeOrZero(expires)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list bans: %w", err)
	}
	return out, nil
}
