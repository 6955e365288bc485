package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// PendingConversations returns the conversations where the device's cursor
// is behind the newest seq the user may see, ordered by conversation id.
func (s *Store) PendingConversations(ctx context.Context, userID, deviceID string) ([]storage.ConvCursor, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT conv_id, last_seq, cursor, from_seq FROM (
			SELECT m.conv_id,
			       CASE WHEN m.until_seq IS NULL THEN c.last_seq
			            ELSE least(c.last_seq, m.until_seq) END AS last_seq,
			       greatest(coalesce(d.seq, 0), m.from_seq - 1) AS cursor,
			       m.from_seq
			FROM members m
			JOIN conversations c ON c.id = m.conv_id
			LEFT JOIN device_cursors d
			       ON d.user_id = m.user_id AND d.device_id = $2 AND d.conv_id = m.conv_id
			WHERE m.user_id = $1
		) AS visible
		WHERE cursor < last_seq
		ORDER BY conv_id`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("pending conversations of %s/%s: %w", userID, deviceID, err)
	}
	pending, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ConvCursor, error) {
		var c storage.ConvCursor
		err := row.Scan(&c.ConvID, &c.LastSeq, &c.Cursor, &c.FromSeq)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("pending conversations of %s/%s: %w", userID, deviceID, err)
	}
	return pending, nil
}

// advanceSQL applies one CursorUpdate ($1 user, $2 device, $3 conversation,
// $4 From, $5 Seq) and raises the member's Delivered to the new cursor,
// returning a row only when Delivered rose.
//
// The device's position is its cursor row or, lacking one (or after a
// re-join), FromSeq-1 of its membership; the new position is capped at the
// newest seq the member can see, so acknowledging beyond the end cannot skip
// messages not yet written. A user who never belonged to the conversation
// has no members row, so the update is ignored. The conflict clause rechecks
// against the newest row so that a concurrent call cannot move the cursor
// backwards.
//
// Only a moved cursor that is past Delivered touches the members row. prev
// locks it, which under READ COMMITTED waits for a concurrent raise (another
// device of the user, or MarkRead) and reads the row as that left it, so
// Prev is exact and two calls never report the same raise; the UPDATE then
// rechecks the condition on that newest row.
const advanceSQL = `
WITH p AS (
	SELECT m.user_id, m.conv_id,
		greatest(coalesce(d.seq, 0), m.from_seq - 1) AS pos,
		least($5::bigint, c.last_seq, coalesce(m.until_seq, c.last_seq)) AS target
	FROM members m
	JOIN conversations c ON c.id = m.conv_id
	LEFT JOIN device_cursors d ON d.user_id = m.user_id AND d.device_id = $2 AND d.conv_id = m.conv_id
	WHERE m.conv_id = $3 AND m.user_id = $1
), cursor AS (
	INSERT INTO device_cursors (user_id, device_id, conv_id, seq)
	SELECT user_id, $2, conv_id, target FROM p
	WHERE pos >= $4 AND pos < target
	ON CONFLICT (user_id, device_id, conv_id) DO UPDATE SET seq = excluded.seq
	WHERE device_cursors.seq < excluded.seq
	RETURNING seq
), prev AS (
	SELECT m.delivered_seq FROM members m, cursor
	WHERE m.conv_id = $3 AND m.user_id = $1 AND m.delivered_seq < cursor.seq
	FOR NO KEY UPDATE OF m
)
UPDATE members m SET delivered_seq = cursor.seq
FROM cursor, prev
WHERE m.conv_id = $3 AND m.user_id = $1 AND m.delivered_seq < cursor.seq
RETURNING m.delivered_seq, m.read_seq, prev.delivered_seq`

// AdvanceCursors applies updates in one transaction and one round trip and
// returns the members whose Delivered rose, one per conversation (Prev from
// before the call, the receipt after it), ordered by ConvID.
func (s *Store) AdvanceCursors(ctx context.Context, userID, deviceID string, updates []storage.CursorUpdate) ([]storage.DeliveredChange, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	// Only the order of one conversation's updates matters (From depends on
	// the ones before). Sorting by conversation keeps that order, makes
	// concurrent calls for the same user lock rows in the same order, and
	// orders the changes as the contract wants.
	updates = slices.Clone(updates)
	slices.SortStableFunc(updates, func(a, b storage.CursorUpdate) int {
		return strings.Compare(a.ConvID, b.ConvID)
	})
	var changes []storage.DeliveredChange
	b := &pgx.Batch{}
	for _, u := range updates {
		// From 0 (unconditional) needs no special case: every position is >= 0.
		b.Queue(advanceSQL, userID, deviceID, u.ConvID, u.From, u.Seq).Query(func(rows pgx.Rows) error {
			r := storage.Receipt{ConvID: u.ConvID, UserID: userID}
			var prev int64
			_, err := pgx.ForEachRow(rows, []any{&r.Delivered, &r.Read, &prev}, func() error {
				// A later update of the same conversation raised it
				// again: keep the Prev from before the call.
				if n := len(changes); n > 0 && changes[n-1].ConvID == u.ConvID {
					changes[n-1].Receipt = r
					return nil
				}
				changes = append(changes, storage.DeliveredChange{Receipt: r, Prev: prev})
				return nil
			})
			return err
		})
	}
	// A batch without explicit BEGIN runs as one implicit transaction.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("advance cursors of %s/%s: %w", userID, deviceID, err)
	}
	return changes, nil
}
