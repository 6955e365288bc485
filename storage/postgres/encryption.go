package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

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
		var since time.Time
		err := s.pool.QueryRow(ctx, "SELECT enabled_at FROM encryption_state").Scan(&since)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("postgres: read encryption state: %w", err)
		}
		return fmt.Errorf("postgres: %w (since %s): a master key is required to open it", storage.ErrEncrypted, since.UTC().Format(time.RFC3339))
	}
	if err := s.checkMasterKeys(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO encryption_state (id, enabled_at) VALUES (1, now()) ON CONFLICT DO NOTHING"); err != nil {
		return fmt.Errorf("postgres: record encryption state: %w", err)
	}
	total := 0
	for {
		n, err := s.encryptPlaintext(ctx)
		if err != nil {
			return fmt.Errorf("postgres: encrypt plaintext messages (%d done; restart to resume): %w", total, err)
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
	(SELECT master_key_id FROM conversation_keys ORDER BY master_key_id LIMIT 1)
	UNION ALL
	SELECT (SELECT master_key_id FROM conversation_keys WHERE master_key_id > ids.id ORDER BY master_key_id LIMIT 1)
	FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM ids WHERE id IS NOT NULL`

// checkMasterKeys refuses a master key that cannot open the data keys.
func (s *Store) checkMasterKeys(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, masterKeyIDsSQL)
	if err != nil {
		return fmt.Errorf("postgres: list master key ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: list master key ids: %w", err)
	}
	return storage.CheckMasterKeys(s.sealer, ids)
}

// encryptPlaintext seals up to encryptBatch plaintext bodies in one
// transaction and returns how many it sealed. Each batch commits, so an
// interrupted upgrade resumes where it stopped; the key_id IS NULL condition
// makes two nodes upgrading at once harmless.
func (s *Store) encryptPlaintext(ctx context.Context) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT conv_id, seq, body FROM messages WHERE key_id IS NULL
			ORDER BY conv_id, seq LIMIT $1`, encryptBatch)
		if err != nil {
			return err
		}
		type plain struct {
			conv string
			seq  int64
			body []byte
		}
		msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (plain, error) {
			var p plain
			return p, r.Scan(&p.conv, &p.seq, &p.body)
		})
		if err != nil || len(msgs) == 0 {
			return err
		}
		var convs []string
		var seqs, keyIDs []int64
		var bodies [][]byte
		keys := make(map[string]seal.Key)
		for _, m := range msgs {
			k, ok := keys[m.conv]
			if !ok {
				var dbID int64
				// Locked in conversation order, as AppendMessages does.
				err := tx.QueryRow(ctx, "SELECT coalesce(key_id, 0) FROM conversations WHERE id = $1 FOR NO KEY UPDATE", m.conv).Scan(&dbID)
				if err != nil {
					return fmt.Errorf("conversation %q: %w", m.conv, err)
				}
				if k, err = s.txKey(ctx, tx, m.conv, dbID); err != nil {
					return err
				}
				keys[m.conv] = k
			}
			sealed, err := s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: m.conv, Seq: m.seq, KeyID: k.ID}, m.body)
			if err != nil {
				return err
			}
			convs, seqs, keyIDs, bodies = append(convs, m.conv), append(seqs, m.seq), append(keyIDs, k.ID), append(bodies, sealed)
		}
		_, err = tx.Exec(ctx, `UPDATE messages m SET body = u.body, key_id = u.key_id
			FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) AS u (conv_id, seq, key_id, body)
			WHERE m.conv_id = u.conv_id AND m.seq = u.seq AND m.key_id IS NULL`,
			convs, seqs, keyIDs, bodies)
		n = len(msgs)
		return err
	})
	return n, err
}

// warmKeys loads into the cache the current data keys of the conversations
// it does not hold, before AppendMessages starts its transaction, so that
// the transaction itself usually needs no extra round trip.
func (s *Store) warmKeys(ctx context.Context, convs []string) error {
	var missing []string
	for _, c := range convs {
		if _, ok := s.keys.Get(c); !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, k.key_id, k.wrapped FROM conversations c
		JOIN conversation_keys k ON k.key_id = c.key_id WHERE c.id = ANY($1)`, missing)
	if err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	var conv string
	var k seal.Key
	_, err = pgx.ForEachRow(rows, []any{&conv, &k.ID, &k.Wrapped}, func() error {
		s.keys.Put(conv, k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	return nil
}

// txKey returns the data key to seal convID's new messages with, given the
// key id its conversations row holds (0 for none), read after the
// transaction locked the row. A missing key is created. A created key is not
// cached here, as its transaction may yet roll back: AppendMessages caches
// the keys it created after its COMMIT, other callers leave them to be read
// back.
func (s *Store) txKey(ctx context.Context, tx pgx.Tx, convID string, dbID int64) (seal.Key, error) {
	if dbID != 0 {
		if k, ok := s.keys.Get(convID); ok && k.ID == dbID {
			return k, nil
		}
		k := seal.Key{ID: dbID}
		if err := tx.QueryRow(ctx, "SELECT wrapped FROM conversation_keys WHERE key_id = $1", dbID).Scan(&k.Wrapped); err != nil {
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
	err = tx.QueryRow(ctx, `
		WITH k AS (
			INSERT INTO conversation_keys (conv_id, wrapped, master_key_id) VALUES ($1, $2, $3)
			RETURNING key_id
		)
		UPDATE conversations SET key_id = (SELECT key_id FROM k) WHERE id = $1 RETURNING key_id`,
		convID, wrapped, s.sealer.MasterKeyID()).Scan(&k.ID)
	if err != nil {
		return seal.Key{}, fmt.Errorf("create data key of %q: %w", convID, err)
	}
	return k, nil
}

// open returns msgs with their bodies decrypted (see seal.OpenRows).
func (s *Store) open(msgs []seal.Row, keys map[int64]string) ([]storage.Message, error) {
	return seal.OpenRows(s.sealer, msgs, keys)
}

// queueKeys queues the read of a conversation's data keys on b.
func queueKeys(b *pgx.Batch, convID string, keys map[int64]string) {
	b.Queue("SELECT key_id, wrapped FROM conversation_keys WHERE conv_id = $1", convID).
		Query(func(rows pgx.Rows) error {
			var id int64
			var wrapped string
			_, err := pgx.ForEachRow(rows, []any{&id, &wrapped}, func() error {
				keys[id] = wrapped
				return nil
			})
			return err
		})
}

// keysByID reads the data keys with the given ids.
func keysByID(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, ids []int64) (map[int64]string, error) {
	keys := make(map[int64]string)
	if len(ids) == 0 {
		return keys, nil
	}
	rows, err := q.Query(ctx, "SELECT key_id, wrapped FROM conversation_keys WHERE key_id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	var id int64
	var wrapped string
	_, err = pgx.ForEachRow(rows, []any{&id, &wrapped}, func() error {
		keys[id] = wrapped
		return nil
	})
	return keys, err
}

// ShredConversation deletes the conversation's data keys (crypto-shredding).
func (s *Store) ShredConversation(ctx context.Context, convID string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The conversation lock orders the shred against appends, which
		// read the conversation's key id under it.
		err := tx.QueryRow(ctx, "SELECT FROM conversations WHERE id = $1 FOR NO KEY UPDATE", convID).Scan()
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("conversation %q: %w", convID, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM conversation_keys WHERE conv_id = $1", convID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err = tx.Exec(ctx, "UPDATE conversations SET key_id = NULL WHERE id = $1", convID); err != nil {
			return err
		}
		return shredMediaTx(ctx, tx, convID) // media.go
	})
	if err != nil {
		return 0, fmt.Errorf("shred %q: %w", convID, err)
	}
	s.keys.Delete(convID)
	return int(n), nil
}

// RewrapDataKeys rewraps every data key not under the current master key,
// in batches in key id order.
func (s *Store) RewrapDataKeys(ctx context.Context) (int, error) {
	if s.sealer == nil {
		return 0, errors.New("postgres: rewrap data keys: the store has no master key")
	}
	current := s.sealer.MasterKeyID()
	total := 0
	var after int64
	for {
		rows, err := s.pool.Query(ctx, `SELECT key_id, wrapped FROM conversation_keys
			WHERE key_id > $1 AND master_key_id <> $2 ORDER BY key_id LIMIT $3`, after, current, encryptBatch)
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap data keys: %w", err)
		}
		var ids []int64
		var olds, news []string
		var id int64
		var wrapped string
		_, err = pgx.ForEachRow(rows, []any{&id, &wrapped}, func() error {
			nw, err := s.sealer.Rewrap(wrapped)
			if err != nil {
				return fmt.Errorf("data key %d: %w", id, err)
			}
			ids, olds, news = append(ids, id), append(olds, wrapped), append(news, nw)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap data keys: %w", err)
		}
		if len(ids) == 0 {
			n, err := s.rewrapMediaKeys(ctx) // media.go
			return total + n, err
		}
		// wrapped = old: a key rewrapped meanwhile by another run is left alone.
		tag, err := s.pool.Exec(ctx, `UPDATE conversation_keys k SET wrapped = u.new, master_key_id = $4
			FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u (key_id, old, new)
			WHERE k.key_id = u.key_id AND k.wrapped = u.old`, ids, olds, news, current)
		if err != nil {
			return total, fmt.Errorf("postgres: rewrap data keys: %w", err)
		}
		total += int(tag.RowsAffected())
		after = ids[len(ids)-1]
	}
}

// missingKeyIDs lists the distinct key ids of msgs that are not already in keys.
func missingKeyIDs(msgs []seal.Row, keys map[int64]string) []int64 {
	var ids []int64
	seen := make(map[int64]bool)
	for _, m := range msgs {
		if m.KeyID != 0 && !seen[m.KeyID] {
			if _, ok := keys[m.KeyID]; !ok {
				ids = append(ids, m.KeyID)
			}
			seen[m.KeyID] = true
		}
	}
	return ids
}
