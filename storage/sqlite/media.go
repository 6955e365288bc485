package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/storage"
)

const mediaColumns = `id, owner_id, content_type, name, size, wrapped_key, thumbnail, width, height, created_at`

func scanMedia(row interface{ Scan(...any) error }) (storage.Media, error) {
	var m storage.Media
	var created int64
	if err := row.Scan(&m.ID, &m.OwnerID, &m.ContentType, &m.Name, &m.Size, &m.WrappedKey, &m.Thumbnail, &m.Width, &m.Height, &created); err != nil {
		return storage.Media{}, err
	}
	m.CreatedAt = fromMillis(created)
	return m, nil
}

// CreateMedia implements storage.MediaStore.
func (s *Store) CreateMedia(ctx context.Context, m storage.Media) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO media (`+mediaColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.OwnerID, m.ContentType, m.Name, m.Size, m.WrappedKey, m.Thumbnail, m.Width, m.Height, toMillis(m.CreatedAt))
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("create media %s: %w", m.ID, storage.ErrExists)
	case isForeignKeyViolation(err):
		return fmt.Errorf("create media %s: owner %q: %w", m.ID, m.OwnerID, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create media %s: %w", m.ID, err)
	}
	return nil
}

// GetMedia implements storage.MediaStore.
func (s *Store) GetMedia(ctx context.Context, id string) (storage.Media, error) {
	m, err := scanMedia(s.r.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Media{}, fmt.Errorf("media %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Media{}, fmt.Errorf("get media %s: %w", id, err)
	}
	return m, nil
}

// DeleteMedia implements storage.MediaStore.
func (s *Store) DeleteMedia(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM media WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete media %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete media %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete media %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

// AddMediaRef implements storage.MediaStore.
func (s *Store) AddMediaRef(ctx context.Context, ref storage.MediaRef) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO media_refs (media_id, conv_id, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		ref.MediaID, ref.ConvID, ref.Seq)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("reference media %s from %s/%d: %w", ref.MediaID, ref.ConvID, ref.Seq, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reference media %s: %w", ref.MediaID, err)
	}
	return nil
}

// MediaRefs implements storage.MediaStore.
func (s *Store) MediaRefs(ctx context.Context, mediaID string) ([]storage.MediaRef, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT conv_id, seq FROM media_refs WHERE media_id = ? ORDER BY conv_id, seq`, mediaID)
	if err != nil {
		return nil, fmt.Errorf("media refs %s: %w", mediaID, err)
	}
	defer rows.Close()
	var out []storage.MediaRef
	for rows.Next() {
		r := storage.MediaRef{MediaID: mediaID}
		if err := rows.Scan(&r.ConvID, &r.Seq); err != nil {
			return nil, fmt.Errorf("media refs %s: %w", mediaID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("media refs %s: %w", mediaID, err)
	}
	return out, nil
}

// CanReadMedia implements storage.MediaStore.
func (s *Store) CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM media WHERE id = ?1 AND owner_id = ?2)
		    OR EXISTS (
		        SELECT 1 FROM media_refs r
		        JOIN members m ON m.conv_id = r.conv_id AND m.user_id = ?2
		        WHERE r.media_id = ?1 AND m.from_seq <= r.seq AND (m.until_seq = 0 OR r.seq <= m.until_seq))`,
		mediaID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("media %s access of %s: %w", mediaID, userID, err)
	}
	return ok, nil
}

// UnreferencedMedia implements storage.MediaStore.
func (s *Store) UnreferencedMedia(ctx context.Context, before time.Time, limit int) ([]storage.Media, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	out, err := queryAll(ctx, s.r, scanMedia, `
		SELECT `+mediaColumns+` FROM media
		WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media_id = media.id)
		ORDER BY created_at, id LIMIT ?`, toMillis(before), limit)
	if err != nil {
		return nil, fmt.Errorf("unreferenced media: %w", err)
	}
	return out, nil
}

// rewrapMediaKeys rewraps, in batches, the data keys of media not wrapped
// under the sealer's current master key (keyring text form
// "v1.<master key id>.<...>"); RewrapDataKeys calls it.
func (s *Store) rewrapMediaKeys(ctx context.Context) (int, error) {
	prefix := "v1." + s.sealer.MasterKeyID() + "."
	total := 0
	after := ""
	for {
		done := 0
		err := inTx(ctx, s.w, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT id, wrapped_key FROM media
				WHERE id > ? AND substr(wrapped_key, 1, length(?)) <> ? ORDER BY id LIMIT ?`, after, prefix, prefix, encryptBatch)
			if err != nil {
				return err
			}
			var ids, keys []string
			for rows.Next() {
				var id, key string
				if err := rows.Scan(&id, &key); err != nil {
					rows.Close()
					return err
				}
				ids, keys = append(ids, id), append(keys, key)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for i, id := range ids {
				nw, err := s.sealer.Rewrap(keys[i])
				if err != nil {
					return fmt.Errorf("media %s: %w", id, err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE media SET wrapped_key = ? WHERE id = ?`, nw, id); err != nil {
					return err
				}
				after = id
				done++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: rewrap media keys: %w", err)
		}
		if done == 0 {
			return total, nil
		}
		total += done
	}
}

// shredMediaTx deletes, with their wrapped keys, the media sent in convID
// and in no other conversation; ShredConversation calls it, so shredding a
// conversation destroys its files too (their objects, no longer readable,
// are removed by the media collector).
func shredMediaTx(ctx context.Context, tx *sql.Tx, convID string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM media
		WHERE id IN (SELECT media_id FROM media_refs WHERE conv_id = ?1)
		  AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media_id = media.id AND r.conv_id <> ?1)`, convID)
	return err
}

// AddMediaUsage implements storage.MediaStore: one conditional upsert on
// the single write connection.
func (s *Store) AddMediaUsage(ctx context.Context, userID string, day time.Time, bytes, limit int64) (bool, error) {
	if bytes < 0 || bytes > limit {
		return false, nil
	}
	var total int64
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO media_usage (user_id, day, bytes) VALUES (?, ?, ?)
		ON CONFLICT (user_id, day) DO UPDATE SET bytes = media_usage.bytes + excluded.bytes
		WHERE media_usage.bytes + excluded.bytes <= ?
		RETURNING bytes`, userID, day.UTC().Format(time.DateOnly), bytes, limit).Scan(&total)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlite: add media usage of %q: %w", userID, err)
	}
	return true, nil
}

// PruneMediaUsage implements storage.MediaStore.
func (s *Store) PruneMediaUsage(ctx context.Context, day time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM media_usage WHERE day < ?`, day.UTC().Format(time.DateOnly))
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune media usage: %w", err)
	}
	return res.RowsAffected()
}
