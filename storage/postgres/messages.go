package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// lockConversationsSQL locks every conversation of a batch before any item
// runs. Under READ COMMITTED each later statement takes a snapshot after the
// locks are held, so its membership and duplicate checks see everything
// other nodes committed for those conversations; and locking in id order
// means two batches touching the same conversations cannot deadlock.
const lockConversationsSQL = `
SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

// appendSQL appends one message. The conversation row update is the seq
// generator: it runs only for an active member and a new client_msg_id, so
// rejected items and duplicates consume no seq. A duplicate earlier in the
// same batch is found because every statement sees the ones before it.
const appendSQL = `
WITH conv AS (
    SELECT FROM conversations WHERE id = $1::text
), member AS (
    SELECT FROM members WHERE conv_id = $1 AND user_id = $2::text AND until_seq IS NULL
), dup AS (
    SELECT seq, id, sender_device, kind, body, created_at FROM messages
    WHERE conv_id = $1 AND sender_id = $2 AND client_msg_id = $3::text
), bump AS (
    UPDATE conversations SET last_seq = last_seq + 1, last_at = greatest(last_at, $8::timestamptz)
    WHERE id = $1 AND EXISTS (SELECT FROM member) AND NOT EXISTS (SELECT FROM dup)
    RETURNING last_seq
), ins AS (
    INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at)
    SELECT $1, last_seq, $4::text, $2, $5::text, $3, $6::text, $7::bytea, $8 FROM bump
    RETURNING seq
)
SELECT EXISTS (SELECT FROM conv), EXISTS (SELECT FROM member), (SELECT seq FROM ins),
       dup.seq, dup.id, dup.sender_device, dup.kind, dup.body, dup.created_at
FROM (VALUES (1)) AS one LEFT JOIN dup ON true`

// AppendMessages stores a batch in one transaction and two round trips:
// BEGIN, the lock and every item go out as one pipeline, then COMMIT.
func (s *Store) AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	results := make([]storage.AppendResult, len(batch))
	if len(batch) == 0 {
		return results, nil
	}

	var convIDs []string
	seen := make(map[string]bool)
	for _, nm := range batch {
		if !seen[nm.ConvID] {
			seen[nm.ConvID] = true
			convIDs = append(convIDs, nm.ConvID)
		}
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(lockConversationsSQL, convIDs)
	for i, nm := range batch {
		if nm.ClientMsgID == "" {
			results[i].Err = errors.New("append message: empty client message id")
			continue
		}
		nm.Body = nonNil(nm.Body)
		nm.CreatedAt = dbTime(nm.CreatedAt)
		b.Queue(appendSQL, nm.ConvID, nm.SenderID, nm.ClientMsgID, nm.ID,
			nm.SenderDevice, nm.Kind, nm.Body, nm.CreatedAt).
			QueryRow(func(row pgx.Row) error {
				var err error
				results[i], err = appendResult(row, nm)
				return err
			})
	}

	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("append messages: commit: %w", err)
	}
	return results, nil
}

// appendResult reads the outcome of appendSQL for nm. An error means the
// server answered something unexpected and the batch must not commit.
func appendResult(row pgx.Row, nm storage.NewMessage) (storage.AppendResult, error) {
	var (
		convExists, isMember bool
		seq, dupSeq          *int64
		dupID, dupDevice     *string
		dupKind              *string
		dupBody              []byte
		dupCreatedAt         *time.Time
	)
	err := row.Scan(&convExists, &isMember, &seq,
		&dupSeq, &dupID, &dupDevice, &dupKind, &dupBody, &dupCreatedAt)
	if err != nil {
		return storage.AppendResult{}, err
	}
	msg := storage.Message{
		ConvID:       nm.ConvID,
		ID:           nm.ID,
		SenderID:     nm.SenderID,
		SenderDevice: nm.SenderDevice,
		ClientMsgID:  nm.ClientMsgID,
		Kind:         nm.Kind,
		Body:         nm.Body,
		CreatedAt:    nm.CreatedAt,
	}
	switch {
	case !convExists:
		return storage.AppendResult{Err: fmt.Errorf("conversation %q: %w", nm.ConvID, storage.ErrNotFound)}, nil
	case !isMember:
		return storage.AppendResult{Err: fmt.Errorf("%q in %q: %w", nm.SenderID, nm.ConvID, storage.ErrNotMember)}, nil
	case dupSeq != nil:
		msg.Seq, msg.ID, msg.SenderDevice, msg.Kind = *dupSeq, *dupID, *dupDevice, *dupKind
		msg.Body, msg.CreatedAt = dupBody, dupCreatedAt.UTC()
		return storage.AppendResult{Message: msg, Duplicate: true}, nil
	case seq == nil:
		return storage.AppendResult{}, fmt.Errorf("message for %q got no seq", nm.ConvID)
	default:
		msg.Seq = *seq
		return storage.AppendResult{Message: msg}, nil
	}
}

const messageColumns = "conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at"

func collectMessages(rows pgx.Rows) ([]storage.Message, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Message, error) {
		var m storage.Message
		err := row.Scan(&m.ConvID, &m.Seq, &m.ID, &m.SenderID, &m.SenderDevice,
			&m.ClientMsgID, &m.Kind, &m.Body, &m.CreatedAt)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
}

// MessagesAfter returns up to limit messages with after < seq <= upTo,
// ascending; limit 0 means no limit.
func (s *Store) MessagesAfter(ctx context.Context, convID string, after, upTo int64, limit int) ([]storage.Message, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq > $2 AND seq <= $3
		ORDER BY seq LIMIT $4`, convID, after, upTo, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q after %d: %w", convID, after, err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("messages of %q after %d: %w", convID, after, err)
	}
	return msgs, nil
}

// MessagesBefore returns up to limit messages with from <= seq < before,
// newest first; limit 0 means no limit.
func (s *Store) MessagesBefore(ctx context.Context, convID string, before, from int64, limit int) ([]storage.Message, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq >= $2 AND seq < $3
		ORDER BY seq DESC LIMIT $4`, convID, from, before, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q before %d: %w", convID, before, err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("messages of %q before %d: %w", convID, before, err)
	}
	return msgs, nil
}
