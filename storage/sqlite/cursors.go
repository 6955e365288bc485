package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

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
// ?4 From, ?5 Seq) and returns the new cursor, or no row when it did not
// move. The device's position is its cursor row or, lacking one, FromSeq-1
// of its membership; the new position is capped at the newest seq the
// member can see, so acknowledging beyond the end cannot skip messages not
// yet written. A user who never belonged to the conversation has no members
// row: the update is ignored.
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
WHERE excluded.seq > device_cursors.seq
RETURNING seq`

// AdvanceCursors applies updates, in order, in one transaction, and returns
// the members whose Delivered rose, one per conversation (Prev from before
// the call, the receipt after it), ordered by ConvID. The write connection
// serializes writers, so reading Delivered and then raising it is safe.
func (s *Store) AdvanceCursors(ctx context.Context, userID, deviceID string, updates []storage.CursorUpdate) ([]storage.DeliveredChange, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	var out []storage.DeliveredChange
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		st, err := prepareAdvance(ctx, tx)
		if err != nil {
			return err
		}
		defer st.close()
		out, err = st.advance(ctx, userID, deviceID, updates)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: advance cursors of %q/%q: %w", userID, deviceID, err)
	}
	return out, nil
}

// advanceStmts are AdvanceCursors' statements prepared in a transaction.
type advanceStmts struct {
	move, receipt, deliver *sql.Stmt
}

func prepareAdvance(ctx context.Context, tx *sql.Tx) (*advanceStmts, error) {
	var st advanceStmts
	var err error
	if st.move, err = tx.PrepareContext(ctx, advanceSQL); err != nil {
		return nil, err
	}
	if st.receipt, err = tx.PrepareContext(ctx, `SELECT delivered_seq, read_seq FROM members WHERE conv_id = ? AND user_id = ?`); err != nil {
		st.close()
		return nil, err
	}
	if st.deliver, err = tx.PrepareContext(ctx, `UPDATE members SET delivered_seq = ? WHERE conv_id = ? AND user_id = ?`); err != nil {
		st.close()
		return nil, err
	}
	return &st, nil
}

func (st *advanceStmts) close() {
	for _, s := range []*sql.Stmt{st.move, st.receipt, st.deliver} {
		if s != nil {
			s.Close()
		}
	}
}

// advance applies one device's updates inside the caller's transaction.
func (st *advanceStmts) advance(ctx context.Context, userID, deviceID string, updates []storage.CursorUpdate) ([]storage.DeliveredChange, error) {
	changes := make(map[string]storage.DeliveredChange)
	for _, u := range updates {
		var cursor int64
		err := st.move.QueryRowContext(ctx, userID, deviceID, u.ConvID, u.From, u.Seq).Scan(&cursor)
		if errors.Is(err, sql.ErrNoRows) {
			continue // the cursor did not move
		}
		if err != nil {
			return nil, err
		}
		var delivered, read int64
		if err := st.receipt.QueryRowContext(ctx, u.ConvID, userID).Scan(&delivered, &read); err != nil {
			return nil, err
		}
		if cursor <= delivered {
			continue // another device got this far already
		}
		if _, err := st.deliver.ExecContext(ctx, cursor, u.ConvID, userID); err != nil {
			return nil, err
		}
		c, seen := changes[u.ConvID]
		if !seen {
			c.Prev = delivered
		}
		c.Receipt = storage.Receipt{ConvID: u.ConvID, UserID: userID, Delivered: cursor, Read: read}
		changes[u.ConvID] = c
	}
	if len(changes) == 0 {
		return nil, nil
	}
	out := make([]storage.DeliveredChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b storage.DeliveredChange) int { return strings.Compare(a.ConvID, b.ConvID) })
	return out, nil
}
