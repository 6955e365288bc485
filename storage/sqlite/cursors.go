package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/msgrhq/msgr/storage"
)

// PendingConversations returns, ordered by ConvID, the conversations the
// user can see in which the device is behind. A cursor is never reported
// below FromSeq-1, so a re-added member does not resync messages from before
// the new membership.
func (s *Store) PendingConversations(ctx context.Context, userID, deviceID string) ([]storage.ConvCursor, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT conv_id, last, cursor, from_seq FROM (
			SELECT m.conv_id,
				CASE WHEN m.until_seq = 0 THEN c.last_seq ELSE MIN(c.last_seq, m.until_seq) END AS last,
				MAX(COALESCE(dc.seq, 0), m.from_seq - 1) AS cursor,
				m.from_seq
			FROM members m
			JOIN conversations c ON c.id = m.conv_id
			LEFT JOIN device_cursors dc
				ON dc.user_id = m.user_id AND dc.device_id = ? AND dc.conv_id = m.conv_id
			WHERE m.user_id = ?
		)
		WHERE cursor < last
		ORDER BY conv_id`, deviceID, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending conversations of %q/%q: %w", userID, deviceID, err)
	}
	defer rows.Close()
	var out []storage.ConvCursor
	for rows.Next() {
		var c storage.ConvCursor
		if err := rows.Scan(&c.ConvID, &c.LastSeq, &c.Cursor, &c.FromSeq); err != nil {
			return nil, fmt.Errorf("sqlite: pending conversations of %q/%q: %w", userID, deviceID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pending conversations of %q/%q: %w", userID, deviceID, err)
	}
	return out, nil
}

// AdvanceCursors moves the device's cursors forward in one transaction; a
// lower seq than the stored one is ignored. An unknown conversation is
// storage.ErrNotFound and nothing is changed.
func (s *Store) AdvanceCursors(ctx context.Context, userID, deviceID string, updates []storage.CursorUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO device_cursors (user_id, device_id, conv_id, seq) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, device_id, conv_id) DO UPDATE SET seq = excluded.seq
			WHERE excluded.seq > device_cursors.seq`)
		if err != nil {
			return err
		}
		for _, u := range updates {
			_, err := st.ExecContext(ctx, userID, deviceID, u.ConvID, u.Seq)
			if isForeignKeyViolation(err) {
				return fmt.Errorf("conversation %q: %w", u.ConvID, storage.ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: advance cursors of %q/%q: %w", userID, deviceID, err)
	}
	return nil
}
