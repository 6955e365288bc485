package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/seal"
)

// Option configures Open.
type Option func(*Store)

// WithSealer makes the store encrypt message bodies at rest with sealer.
// Without it the store writes plaintext bodies and refuses a database that
// was ever opened with a master key.
func WithSealer(sealer storage.Sealer) Option {
	return func(s *Store) { s.sealer = sealer }
}

// WithLogger sets where Open reports the encryption of plaintext messages.
func WithLogger(log *slog.Logger) Option {
	return func(s *Store) { s.log = log }
}

// encryptBatch is how many plaintext messages one transaction of the
// upgrade encrypts, and how many data keys one rewrap transaction handles.
const encryptBatch = 1000

// openEncryption runs at Open after the migrations.
func (s *Store) openEncryption(ctx context.Context) error {
	if s.sealer == nil {
		var since int64
		err := s.w.QueryRowContext(ctx, "SELECT enabled_at FROM encryption_state").Scan(&since)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlite: read encryption state: %w", err)
		}
		return fmt.Errorf("sqlite: %w (since %s): a master key is required to open it", storage.ErrEncrypted, fromMillis(since).Format(time.RFC3339))
	}
	if err := s.checkMasterKeys(ctx); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, "INSERT INTO encryption_state (id, enabled_at) VALUES (1, ?) ON CONFLICT DO NOTHING", time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: record encryption state: %w", err)
	}
	total := 0
	for {
		n, err := s.encryptPlaintext(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: encrypt plaintext messages (%d done; restart to resume): %w", total, err)
		}
		if n == 0 {
			break
		}
		total += n
		s.log.Info("encrypting plaintext messages from before encryption at rest", "done", total)
	}
	if total > 0 {
		s.log.Info("encrypted plaintext messages", "messages", total)
	}
	return nil
}

// masterKeyIDsSQL lists the distinct master key ids of the data keys with a
// loose index scan: one index probe per distinct id, however many keys.
const masterKeyIDsSQL = `
WITH RECURSIVE ids (id) AS (
	SELECT (SELECT master_key_id FROM conversation_keys ORDER BY master_key_id LIMIT 1)
	UNION ALL
	SELECT (SELECT master_key_id FROM conversation_keys WHERE master_key_id > ids.id ORDER BY master_key_id LIMIT 1)
	FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM ids WHERE id IS NOT NULL`

// checkMasterKeys refuses a master key that cannot open the data keys.
func (s *Store) checkMasterKeys(ctx context.Context) error {
	rows, err := s.w.QueryContext(ctx, masterKeyIDsSQL)
	if err != nil {
		return fmt.Errorf("sqlite: list master key ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("sqlite: list master key ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: list master key ids: %w", err)
	}
	return storage.CheckMasterKeys(s.sealer, ids)
}

// encryptPlaintext seals up to encryptBatch plaintext bodies in one
// transaction and returns how many it sealed. Each batch commits, so an
// interrupted upgrade resumes where it stopped.
func (s *Store) encryptPlaintext(ctx context.Context) (int, error) {
	n := 0
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		type plain struct {
			conv string
			seq  int64
			body []byte
		}
		rows, err := tx.QueryContext(ctx, `SELECT conv_id, seq, body FROM messages WHERE key_id IS NULL
			ORDER BY conv_id, seq LIMIT ?`, encryptBatch)
		if err != nil {
			return err
		}
		var msgs []plain
		for rows.Next() {
			var p plain
			if err := rows.Scan(&p.conv, &p.seq, &p.body); err != nil {
				rows.Close()
				return err
			}
			msgs = append(msgs, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		update, err := tx.PrepareContext(ctx, `UPDATE messages SET body = ?, key_id = ? WHERE conv_id = ? AND seq = ? AND key_id IS NULL`)
		if err != nil {
			return err
		}
		keys := make(map[string]seal.Key)
		for _, m := range msgs {
			k, ok := keys[m.conv]
			if !ok {
				if k, err = s.txKey(ctx, tx, m.conv); err != nil {
					return err
				}
				keys[m.conv] = k
			}
			sealed, err := s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: m.conv, Seq: m.seq, KeyID: k.ID}, m.body)
			if err != nil {
				return err
			}
			if _, err := update.ExecContext(ctx, sealed, k.ID, m.conv, m.seq); err != nil {
				return err
			}
		}
		n = len(msgs)
		return nil
	})
	return n, err
}

// txKey returns the data key to seal convID's new messages with, creating
// it if the conversation has none. SQLite has one writer, so the
// conversation's key id read here cannot change before commit. A created
// key is not cached until a later transaction reads it back committed.
func (s *Store) txKey(ctx context.Context, tx *sql.Tx, convID string) (seal.Key, error) {
	var dbID int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(key_id, 0) FROM conversations WHERE id = ?", convID).Scan(&dbID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return seal.Key{}, fmt.Errorf("conversation %q: %w", convID, storage.ErrNotFound)
		}
		return seal.Key{}, fmt.Errorf("data key of %q: %w", convID, err)
	}
	if dbID != 0 {
		if k, ok := s.keys.Get(convID); ok && k.ID == dbID {
			return k, nil
		}
		k := seal.Key{ID: dbID}
		if err := tx.QueryRowContext(ctx, "SELECT wrapped FROM conversation_keys WHERE key_id = ?", dbID).Scan(&k.Wrapped); err != nil {
			return seal.Key{}, fmt.Errorf("data key %d of %q: %w", dbID, convID, err)
		}
		s.keys.Put(convID, k)
		return k, nil
	}
	wrapped, err := s.sealer.NewKey()
	if err != nil {
		return seal.Key{}, err
	}
	k := seal.Key{Wrapped: wrapped}
	err = tx.QueryRowContext(ctx, `INSERT INTO conversation_keys (conv_id, wrapped, master_key_id, created_at)
		VALUES (?, ?, ?, ?) RETURNING key_id`, convID, wrapped, s.sealer.MasterKeyID(), time.Now().UnixMilli()).Scan(&k.ID)
	if err != nil {
		return seal.Key{}, fmt.Errorf("create data key of %q: %w", convID, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE conversations SET key_id = ? WHERE id = ?", k.ID, convID); err != nil {
		return seal.Key{}, fmt.Errorf("create data key of %q: %w", convID, err)
	}
	return k, nil
}

// open returns msgs with their bodies decrypted (see seal.OpenRows).
func (s *Store) open(msgs []seal.Row, keys map[int64]string) ([]storage.Message, error) {
	return seal.OpenRows(s.sealer, msgs, keys)
}

// queryAll runs query on q and returns every row, scanned by scan.
func queryAll[T any](ctx context.Context, q rowsQueryer, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// rowsQueryer is what *sql.DB and *sql.Tx have in common for queries.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// convKeys reads a conversation's data keys.
func convKeys(ctx context.Context, q rowsQueryer, convID string) (map[int64]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT key_id, wrapped FROM conversation_keys WHERE conv_id = ?", convID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := make(map[int64]string)
	for rows.Next() {
		var id int64
		var wrapped string
		if err := rows.Scan(&id, &wrapped); err != nil {
			return nil, err
		}
		keys[id] = wrapped
	}
	return keys, rows.Err()
}

// ShredConversation deletes the conversation's data keys (crypto-shredding).
func (s *Store) ShredConversation(ctx context.Context, convID string) (int, error) {
	var n int64
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE conversations SET key_id = NULL WHERE id = ?", convID)
		if err != nil {
			return err
		}
		if m, err := res.RowsAffected(); err != nil || m == 0 {
			return errors.Join(err, fmt.Errorf("conversation %q: %w", convID, storage.ErrNotFound))
		}
		res, err = tx.ExecContext(ctx, "DELETE FROM conversation_keys WHERE conv_id = ?", convID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		return shredMediaTx(ctx, tx, convID) // media.go
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: shred %q: %w", convID, err)
	}
	s.keys.Delete(convID)
	return int(n), nil
}

// RewrapDataKeys rewraps every data key not under the current master key,
// in batches in key id order.
func (s *Store) RewrapDataKeys(ctx context.Context) (int, error) {
	if s.sealer == nil {
		return 0, errors.New("sqlite: rewrap data keys: the store has no master key")
	}
	current := s.sealer.MasterKeyID()
	total := 0
	var after int64
	for {
		done := 0
		err := inTx(ctx, s.w, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT key_id, wrapped FROM conversation_keys
				WHERE key_id > ? AND master_key_id <> ? ORDER BY key_id LIMIT ?`, after, current, encryptBatch)
			if err != nil {
				return err
			}
			type row struct {
				id      int64
				wrapped string
			}
			var keys []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.wrapped); err != nil {
					rows.Close()
					return err
				}
				keys = append(keys, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, k := range keys {
				nw, err := s.sealer.Rewrap(k.wrapped)
				if err != nil {
					return fmt.Errorf("data key %d: %w", k.id, err)
				}
				if _, err := tx.ExecContext(ctx, "UPDATE conversation_keys SET wrapped = ?, master_key_id = ? WHERE key_id = ?", nw, current, k.id); err != nil {
					return err
				}
				after = k.id
				done++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: rewrap data keys: %w", err)
		}
		if done == 0 {
			n, err := s.rewrapMediaKeys(ctx) // media.go
			return total + n, err
		}
		total += done
	}
}
