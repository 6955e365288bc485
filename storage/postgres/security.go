package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// timeOrZero reads a nullable timestamptz column; NULL is the zero time.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

const userColumns = "id, password_hash, created_at, presence, read_receipts, last_seen, disabled_at, deleted_at, token_gen"

// GetDevice returns one device or storage.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, userID, deviceID string) (storage.Device, error) {
	d := storage.Device{UserID: userID, DeviceID: deviceID}
	var revoked *time.Time
	err := s.pool.QueryRow(ctx, `SELECT created_at, last_seen, revoked_at FROM devices
		WHERE user_id = $1 AND device_id = $2`, userID, deviceID).Scan(&d.CreatedAt, &d.LastSeen, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Device{}, fmt.Errorf("device %s/%s: %w", userID, deviceID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("get device %s/%s: %w", userID, deviceID, err)
	}
	d.CreatedAt, d.LastSeen, d.RevokedAt = d.CreatedAt.UTC(), d.LastSeen.UTC(), timeOrZero(revoked)
	return d, nil
}

// RevokeDevice marks a device revoked and forgets its refresh token.
func (s *Store) RevokeDevice(ctx context.Context, userID, deviceID string, t time.Time) error {
	err := s.updateUser(ctx, `UPDATE devices SET revoked_at = coalesce(revoked_at, $3), refresh_hash = '', refresh_expires_at = 'epoch'
		WHERE user_id = $1 AND device_id = $2`, userID, deviceID, t)
	if err != nil {
		return fmt.Errorf("revoke device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// SetRefreshToken replaces the device's refresh token unless it is revoked.
// The row lock orders it against a concurrent revocation.
func (s *Store) SetRefreshToken(ctx context.Context, userID, deviceID string, tok storage.RefreshToken) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var revoked bool
		err := tx.QueryRow(ctx, `SELECT revoked_at IS NOT NULL FROM devices WHERE user_id = $1 AND device_id = $2 FOR UPDATE`,
			userID, deviceID).Scan(&revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("set refresh token of %s/%s: %w", userID, deviceID, storage.ErrNotFound)
		case err != nil:
			return fmt.Errorf("set refresh token of %s/%s: %w", userID, deviceID, err)
		case revoked:
			return fmt.Errorf("set refresh token of %s/%s: %w", userID, deviceID, storage.ErrRevoked)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET refresh_hash = $3, refresh_expires_at = $4
			WHERE user_id = $1 AND device_id = $2`, userID, deviceID, tok.Hash, tok.ExpiresAt); err != nil {
			return fmt.Errorf("set refresh token of %s/%s: %w", userID, deviceID, err)
		}
		return nil
	})
}

// RotateRefreshToken swaps the refresh token in one conditional UPDATE, so
// that of two rotations of the same token only one matches.
func (s *Store) RotateRefreshToken(ctx context.Context, userID, deviceID, oldHash string, next storage.RefreshToken, now time.Time) error {
	if oldHash == "" {
		return fmt.Errorf("rotate refresh token of %s/%s: %w", userID, deviceID, storage.ErrNotFound)
	}
	err := s.updateUser(ctx, `UPDATE devices SET refresh_hash = $4, refresh_expires_at = $5
		WHERE user_id = $1 AND device_id = $2 AND refresh_hash = $3 AND refresh_expires_at > $6 AND revoked_at IS NULL`,
		userID, deviceID, oldHash, next.Hash, next.ExpiresAt, now)
	if err != nil {
		return fmt.Errorf("rotate refresh token of %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// ClearRefreshTokens voids the refresh tokens of all of a user's devices.
func (s *Store) ClearRefreshTokens(ctx context.Context, userID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE devices SET refresh_hash = '', refresh_expires_at = 'epoch' WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("clear refresh tokens of %q: %w", userID, err)
	}
	return nil
}

// SetDisabled disables or re-enables a user that is not deleted.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool, t time.Time) error {
	var err error
	if disabled {
		err = s.updateUser(ctx, `UPDATE users SET disabled_at = coalesce(disabled_at, $2) WHERE id = $1 AND deleted_at IS NULL`, id, t)
	} else {
		err = s.updateUser(ctx, `UPDATE users SET disabled_at = NULL WHERE id = $1 AND deleted_at IS NULL`, id)
	}
	if err != nil {
		return fmt.Errorf("set disabled of %q: %w", id, err)
	}
	return nil
}

// DeleteUser leaves a tombstone: the id stays referenced by conversations.
func (s *Store) DeleteUser(ctx context.Context, id string, t time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET deleted_at = $2, password_hash = '' WHERE id = $1 AND deleted_at IS NULL`, id, t)
		if err != nil {
			return fmt.Errorf("delete user %q: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delete user %q: %w", id, storage.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET revoked_at = coalesce(revoked_at, $2), refresh_hash = '', refresh_expires_at = 'epoch'
			WHERE user_id = $1`, id, t); err != nil {
			return fmt.Errorf("delete user %q: revoke devices: %w", id, err)
		}
		return nil
	})
}

// ListUsers pages through users by id.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]storage.User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.User, error) {
		var u storage.User
		var lastSeen, disabled, deleted *time.Time
		err := row.Scan(&u.ID, &u.PasswordHash, &u.CreatedAt, &u.Settings.Presence, &u.Settings.ReadReceipts,
			&lastSeen, &disabled, &deleted, &u.TokenGen)
		u.CreatedAt = u.CreatedAt.UTC()
		u.LastSeen, u.DisabledAt, u.DeletedAt = timeOrZero(lastSeen), timeOrZero(disabled), timeOrZero(deleted)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// ListConversations pages through conversations by id.
func (s *Store) ListConversations(ctx context.Context, after string, limit int) ([]storage.Conversation, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+conversationColumns+" FROM conversations WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	convs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Conversation, error) {
		return scanConversation(row)
	})
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	return convs, nil
}

// DeleteConversation deletes a conversation and everything hanging off it.
// Messages and cursors have no foreign keys (messages are partitioned), so
// each table is cleared explicitly; the conversation row goes last, after
// the rows referencing it.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock the conversation first: a concurrent append waits, then
		// finds it gone, instead of writing a message nobody can reach.
		var found bool
		err := tx.QueryRow(ctx, `SELECT true FROM conversations WHERE id = $1 FOR UPDATE`, id).Scan(&found)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("delete conversation %q: %w", id, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete conversation %q: %w", id, err)
		}
		for _, table := range []string{"device_cursors", "messages", "members", "direct_pairs", "conversations"} {
			col := "conv_id"
			if table == "conversations" {
				col = "id"
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE "+col+" = $1", id); err != nil {
				return fmt.Errorf("delete conversation %q: %s: %w", id, table, err)
			}
		}
		return nil
	})
}

// AddBan stores a ban; storage.ErrExists if one of that kind and value exists.
func (s *Store) AddBan(ctx context.Context, b storage.Ban) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO bans (kind, value, reason, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		b.Kind, b.Value, b.Reason, b.CreatedAt, nullTime(b.ExpiresAt))
	if hasCode(err, codeUniqueViolation) {
		return fmt.Errorf("add ban %s %s: %w", b.Kind, b.Value, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("add ban %s %s: %w", b.Kind, b.Value, err)
	}
	return nil
}

// RemoveBan deletes a ban; storage.ErrNotFound if there is none.
func (s *Store) RemoveBan(ctx context.Context, kind storage.BanKind, value string) error {
	if err := s.updateUser(ctx, `DELETE FROM bans WHERE kind = $1 AND value = $2`, kind, value); err != nil {
		return fmt.Errorf("remove ban %s %s: %w", kind, value, err)
	}
	return nil
}

// ListBans returns every ban ordered by kind and value.
func (s *Store) ListBans(ctx context.Context) ([]storage.Ban, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, value, reason, created_at, expires_at FROM bans ORDER BY kind, value`)
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	bans, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Ban, error) {
		var b storage.Ban
		var expires *time.Time
		err := row.Scan(&b.Kind, &b.Value, &b.Reason, &b.CreatedAt, &expires)
		b.CreatedAt, b.ExpiresAt = b.CreatedAt.UTC(), timeOrZero(expires)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return bans, nil
}
