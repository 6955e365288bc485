package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// markReadSQL raises Read ($1 user, $2 conversation, $3 seq) to the seq
// capped at the newest the member can see, and Delivered with it. o locks
// the members row, which under READ COMMITTED waits for a concurrent raise
// and reads the row as that left it, so the returned receipt and "changed"
// are exact; u writes only when Read rises. No row: no membership.
const markReadSQL = `
WITH o AS (
	SELECT m.delivered_seq, m.read_seq,
		least($3::bigint, c.last_seq, coalesce(m.until_seq, c.last_seq)) AS target
	FROM members m
	JOIN conversations c ON c.id = m.conv_id
	WHERE m.conv_id = $2 AND m.user_id = $1
	FOR NO KEY UPDATE OF m
), u AS (
	UPDATE members m SET read_seq = o.target, delivered_seq = greatest(m.delivered_seq, o.target)
	FROM o
	WHERE m.conv_id = $2 AND m.user_id = $1 AND m.read_seq < o.target
	RETURNING m.delivered_seq, m.read_seq
)
SELECT coalesce(u.delivered_seq, o.delivered_seq), coalesce(u.read_seq, o.read_seq), u.read_seq IS NOT NULL
FROM o LEFT JOIN u ON true`

// MarkRead raises the member's Read to seq (capped at the newest seq the
// member can see) and Delivered to at least Read, in one statement, and
// returns the receipt and whether Read changed; storage.ErrNotMember if the
// user never belonged to the conversation.
func (s *Store) MarkRead(ctx context.Context, userID, convID string, seq int64) (storage.Receipt, bool, error) {
	r := storage.Receipt{ConvID: convID, UserID: userID}
	var changed bool
	err := s.pool.QueryRow(ctx, markReadSQL, userID, convID, seq).Scan(&r.Delivered, &r.Read, &changed)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Receipt{}, false, fmt.Errorf("mark %q read: %q: %w", convID, userID, storage.ErrNotMember)
	}
	if err != nil {
		return storage.Receipt{}, false, fmt.Errorf("mark %q read by %q: %w", convID, userID, err)
	}
	return r, changed, nil
}

// Receipts returns the active members' receipts, ordered by UserID: a prefix
// scan of the members primary key.
func (s *Store) Receipts(ctx context.Context, convID string) ([]storage.Receipt, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT user_id, delivered_seq, read_seq FROM members
		WHERE conv_id = $1 AND until_seq IS NULL ORDER BY user_id`, convID)
	if err != nil {
		return nil, fmt.Errorf("receipts of %q: %w", convID, err)
	}
	receipts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Receipt, error) {
		r := storage.Receipt{ConvID: convID}
		err := row.Scan(&r.UserID, &r.Delivered, &r.Read)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("receipts of %q: %w", convID, err)
	}
	return receipts, nil
}

// Senders returns the distinct senders of messages with after < seq <= upTo,
// ordered: a range of the messages primary key in one partition.
func (s *Store) Senders(ctx context.Context, convID string, after, upTo int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT sender_id FROM messages
		WHERE conv_id = $1 AND seq > $2 AND seq <= $3
		ORDER BY sender_id`, convID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("senders of %q in (%d, %d]: %w", convID, after, upTo, err)
	}
	senders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("senders of %q in (%d, %d]: %w", convID, after, upTo, err)
	}
	return senders, nil
}

// Unread lists, ordered by ConvID, the conversations the user can see whose
// newest visible seq is past max(Read, FromSeq-1): a re-added member has not
// "unread" the messages of the time they were away.
func (s *Store) Unread(ctx context.Context, userID string) ([]storage.Unread, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT conv_id, last_seq, read FROM (
			SELECT m.conv_id,
			       least(c.last_seq, coalesce(m.until_seq, c.last_seq)) AS last_seq,
			       greatest(m.read_seq, m.from_seq - 1) AS read
			FROM members m
			JOIN conversations c ON c.id = m.conv_id
			WHERE m.user_id = $1
		) AS visible
		WHERE read < last_seq
		ORDER BY conv_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("unread of %q: %w", userID, err)
	}
	unread, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Unread, error) {
		var u storage.Unread
		err := row.Scan(&u.ConvID, &u.LastSeq, &u.Read)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("unread of %q: %w", userID, err)
	}
	return unread, nil
}
