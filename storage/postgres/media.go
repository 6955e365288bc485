package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

const mediaColumns = `id, owner_id, content_type, name, size, wrapped_key, thumbnail, width, height, created_at`

func scanMedia(row pgx.Row) (storage.Media, error) {
	var m storage.Media
	if err := row.Scan(&m.ID, &m.OwnerID, &m.ContentType, &m.Name, &m.Size, &m.WrappedKey, &m.Thumbnail, &m.Width, &m.Height, &m.CreatedAt); err != nil {
		return storage.Media{}, err
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// CreateMedia implements storage.MediaStore.
func (s *Store) CreateMedia(ctx context.Context, m storage.Media) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO media (`+mediaColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		m.ID, m.OwnerID, m.ContentType, m.Name, m.Size, m.WrappedKey, m.Thumbnail, m.Width, m.Height, m.CreatedAt)
	switch {
	case hasCode(err, codeUniqueViolation):
		return fmt.Errorf("create media %s: %w", m.ID, storage.ErrExists)
	case hasCode(err, codeForeignKeyViolation):
		return fmt.Errorf("create media %s: owner %q: %w", m.ID, m.OwnerID, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create media %s: %w", m.ID, err)
	}
	return nil
}

// GetMedia implements storage.MediaStore.
func (s *Store) GetMedia(ctx context.Context, id string) (storage.Media, error) {
	m, err := scanMedia(s.pool.QueryRow(ctx, `SELECT `+mediaColumns+` FROM media WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Media{}, fmt.Errorf("media %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Media{}, fmt.Errorf("get media %s: %w", id, err)
	}
	return m, nil
}

// DeleteMedia implements storage.MediaStore.
func (s *Store) DeleteMedia(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM media WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete media %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete media %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

// AddMediaRef implements storage.MediaStore.
func (s *Store) AddMediaRef(ctx context.Context, ref storage.MediaRef) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO media_refs (media_id, conv_id, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		ref.MediaID, ref.ConvID, ref.Seq)
	if hasCode(err, codeForeignKeyViolation) {
		return fmt.Errorf("reference media %s from %s/%d: %w", ref.MediaID, ref.ConvID, ref.Seq, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reference media %s: %w", ref.MediaID, err)
	}
	return nil
}

// MediaRefs implements storage.MediaStore.
func (s *Store) MediaRefs(ctx context.Context, mediaID string) ([]storage.MediaRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT conv_id, seq FROM media_refs WHERE media_id = $1 ORDER BY conv_id, seq`, mediaID)
	if err != nil {
		return nil, fmt.Errorf("media refs %s: %w", mediaID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.MediaRef, error) {
		r := storage.MediaRef{MediaID: mediaID}
		return r, row.Scan(&r.ConvID, &r.Seq)
	})
	if err != nil {
		return nil, fmt.Errorf("media refs %s: %w", mediaID, err)
	}
	return out, nil
}

// CanReadMedia implements storage.MediaStore.
func (s *Store) CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM media WHERE id = $1 AND owner_id = $2)
		    OR EXISTS (
		        SELECT 1 FROM media_refs r
		        JOIN members m ON m.conv_id = r.conv_id AND m.user_id = $2
		        WHERE r.media_id = $1 AND m.from_seq <= r.seq AND (m.until_seq IS NULL OR r.seq <= m.until_seq))`,
		mediaID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("media %s access of %s: %w", mediaID, userID, err)
	}
	return ok, nil
}

// UnreferencedMedia implements storage.MediaStore.
func (s *Store) UnreferencedMedia(ctx context.Context, before time.Time, limit int) ([]storage.Media, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+mediaColumns+` FROM media
		WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media_id = media.id)
		ORDER BY created_at, id LIMIT $2`, before, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("unreferenced media: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Media, error) { return scanMedia(row) })
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
		rows, err := s.pool.Query(ctx, `SELECT id, wrapped_key FROM media
			WHERE id > $1 AND left(wrapped_key, length($2)) <> $2 ORDER BY id LIMIT $3`, after, prefix, encryptBatch)
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap media keys: %w", err)
		}
		var ids, olds, news []string
		var id, wrapped string
		_, err = pgx.ForEachRow(rows, []any{&id, &wrapped}, func() error {
			nw, err := s.sealer.Rewrap(wrapped)
			if err != nil {
				return fmt.Errorf("media %s: %w", id, err)
			}
			ids, olds, news = append(ids, id), append(olds, wrapped), append(news, nw)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap media keys: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		// wrapped_key = old: a key rewrapped meanwhile by another run is left alone.
		tag, err := s.pool.Exec(ctx, `UPDATE media m SET wrapped_key = u.new
			FROM unnest($1::text[], $2::text[], $3::text[]) AS u (id, old, new)
			WHERE m.id = u.id AND m.wrapped_key = u.old`, ids, olds, news)
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap media keys: %w", err)
		}
		total += int(tag.RowsAffected())
		after = ids[len(ids)-1]
	}
}

// shredMediaTx deletes, with their wrapped keys, the media sent in convID
// and in no other conversation; ShredConversation calls it, so shredding a
// conversation destroys its files too (their objects, no longer readable,
// are removed by the media collector).
func shredMediaTx(ctx context.Context, tx pgx.Tx, convID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM media
		WHERE id IN (SELECT media_id FROM media_refs WHERE conv_id = $1)
		  AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media_id = media.id AND r.conv_id <> $1)`, convID)
	return err
}

// AddMediaUsage implements storage.MediaStore: one conditional upsert, so
// that concurrent uploads of one user cannot both pass the limit.
func (s *Store) AddMediaUsage(ctx context.Context, userID string, day time.Time, bytes, limit int64) (bool, error) {
	if bytes < 0 || bytes > limit {
		return false, nil
	}
	var total int64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO media_usage (user_id, day, bytes) VALUES ($1, $2::date, $3)
		ON CONFLICT (user_id, day) DO UPDATE SET bytes = media_usage.bytes + EXCLUDED.bytes
		WHERE media_usage.bytes + EXCLUDED.bytes <= $4
		RETURNING bytes`, userID, utcDate(day), bytes, limit).Scan(&total)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("add media usage of %q: %w", userID, err)
	}
	return true, nil
}

// PruneMediaUsage implements storage.MediaStore.
func (s *Store) PruneMediaUsage(ctx context.Context, day time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM media_usage WHERE day < $1::date`, utcDate(day))
	if err != nil {
		return 0, fmt.Errorf("prune media usage: %w", err)
	}
	return tag.RowsAffected(), nil
}

// utcDate is t's UTC date as YYYY-MM-DD.
func utcDate(t time.Time) string { return t.UTC().Format(time.DateOnly) }
