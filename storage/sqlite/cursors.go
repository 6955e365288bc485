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

// advanceSQL applies one CursorUpdate (?1 user, ?2 device, ?3 conversation,
// ?4 From, ?5 Seq). The device's position is its cursor row or, lacking
// one, FromSeq-1 of its membership; the new position is capped at the
// newest seq the member can see, so acknowledging beyond the end cannot
// skip messages not yet written. A user who never belonged to the
// conversation has no members row: the update is ignored.
const advanceSQL = `
INSERT INTO device_cursors (user_id, device_id, conv_id, seq)
SELECT user_id, ?2, conv_id, target FROM (
	SELECT m.user_id, m.conv_id,
		MAX(COALESCE(d.seq, 0), m.from_seq - 1) AS pos,
		MIN(?5, CASE WHEN m.until_seq = 0 THEN c.last_seq ELSE MIN(c.last_seq, m.until_seq) END) AS target
	FROM members m
	JOIN conversations c ON c.id = m.conv_id
	LEFT JOIN device_cursors d ON d.user_id = m.user_id AND d.device_id = ?2 AND d.conv_id = m.conv_id
	WHERE m.conv_id = ?3 AND m.user_id = ?1
)
WHERE pos >= ?4 AND pos < target
ON CONFLICT (user_id, device_id, conv_id) DO UPDATE SET seq = excluded.seq
WHERE excluded.seq > device_cursors.seq`

// AdvanceCursors applies updates, in order, in one transaction.
func (s *Store) AdvanceCursors(ctx context.Context, userID, deviceID string, updates []storage.CursorUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, advanceSQL)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, u := range updates {
			if _, err := st.ExecContext(ctx, userID, deviceID, u.ConvID, u.From, u.Seq); err != nil {
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
