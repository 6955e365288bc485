package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/msgrhq/msgr/storage"
)

// markReadSQL raises Read (?1 user, ?2 conversation, ?3 seq) to the seq
// capped at the newest the member can see, and Delivered with it, returning
// the receipt; no row when Read would not rise or there is no membership.
const markReadSQL = `
WITH t AS (
	SELECT MIN(?3, CASE WHEN m.until_seq = 0 THEN c.last_seq ELSE MIN(c.last_seq, m.until_seq) END) AS target
	FROM members m
	JOIN conversations c ON c.id = m.conv_id
	WHERE m.conv_id = ?2 AND m.user_id = ?1
)
UPDATE members SET read_seq = t.target, delivered_seq = MAX(delivered_seq, t.target)
FROM t
WHERE conv_id = ?2 AND user_id = ?1 AND read_seq < t.target
RETURNING delivered_seq, read_seq`

// MarkRead raises the member's Read to seq (capped at the newest seq the
// member can see) and Delivered to at least Read, and returns the receipt
// and whether Read changed; storage.ErrNotMember if the user never belonged
// to the conversation. The write connection serializes writers, so the
// fallback read in the same transaction sees exactly what the update left.
func (s *Store) MarkRead(ctx context.Context, userID, convID string, seq int64) (storage.Receipt, bool, error) {
	r := storage.Receipt{ConvID: convID, UserID: userID}
	changed := false
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, markReadSQL, userID, convID, seq).Scan(&r.Delivered, &r.Read)
		if err == nil {
			changed = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT delivered_seq, read_seq FROM members WHERE conv_id = ? AND user_id = ?`,
			convID, userID).Scan(&r.Delivered, &r.Read)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotMember
		}
		return err
	})
	if err != nil {
		return storage.Receipt{}, false, fmt.Errorf("sqlite: mark %q read by %q: %w", convID, userID, err)
	}
	return r, changed, nil
}

// Receipts returns the active members' receipts, ordered by UserID.
func (s *Store) Receipts(ctx context.Context, convID string) ([]storage.Receipt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id, delivered_seq, read_seq FROM members
		WHERE conv_id = ? AND until_seq = 0 ORDER BY user_id`, convID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: receipts of %q: %w", convID, err)
	}
	defer rows.Close()
	var out []storage.Receipt
	for rows.Next() {
		r := storage.Receipt{ConvID: convID}
		if err := rows.Scan(&r.UserID, &r.Delivered, &r.Read); err != nil {
			return nil, fmt.Errorf("sqlite: receipts of %q: %w", convID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: receipts of %q: %w", convID, err)
	}
	return out, nil
}

// Senders returns the distinct senders of messages with after < seq <= upTo,
// ordered.
func (s *Store) Senders(ctx context.Context, convID string, after, upTo int64) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT sender_id FROM messages
		WHERE conv_id = ? AND seq > ? AND seq <= ? ORDER BY sender_id`, convID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("sqlite: senders of %q in (%d, %d]: %w", convID, after, upTo, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: senders of %q in (%d, %d]: %w", convID, after, upTo, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: senders of %q in (%d, %d]: %w", convID, after, upTo, err)
	}
	return out, nil
}

// Unread lists, ordered by ConvID, the conversations the user can see whose
// newest visible seq is past max(Read, FromSeq-1): a re-added member has not
// "unread" the messages of the time they were away.
func (s *Store) Unread(ctx context.Context, userID string) ([]storage.Unread, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT conv_id, last, read FROM (
			SELECT m.conv_id,
				CASE WHEN m.until_seq = 0 THEN c.last_seq ELSE MIN(c.last_seq, m.until_seq) END AS last,
				MAX(m.read_seq, m.from_seq - 1) AS read
			FROM members m
			JOIN conversations c ON c.id = m.conv_id
			WHERE m.user_id = ?
		)
		WHERE read < last
		ORDER BY conv_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unread of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Unread
	for rows.Next() {
		var u storage.Unread
		if err := rows.Scan(&u.ConvID, &u.LastSeq, &u.Read); err != nil {
			return nil, fmt.Errorf("sqlite: unread of %q: %w", userID, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: unread of %q: %w", userID, err)
	}
	return out, nil
}
