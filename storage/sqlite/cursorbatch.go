package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/msgrhq/msgr/storage"
)

// AdvanceCursorsBatch implements storage.CursorBatches: every device's
// updates in one write transaction (one fsync'd commit).
func (s *Store) AdvanceCursorsBatch(ctx context.Context, batch []storage.DeviceCursors) ([][]storage.DeliveredChange, error) {
	out := make([][]storage.DeliveredChange, len(batch))
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		st, err := prepareAdvance(ctx, tx)
		if err != nil {
			return err
		}
		defer st.close()
		for i, d := range batch {
			if out[i], err = st.advance(ctx, d.UserID, d.DeviceID, d.Updates); err != nil {
				return fmt.Errorf("%s/%s: %w", d.UserID, d.DeviceID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: advance cursors of %d devices: %w", len(batch), err)
	}
	return out, nil
}
