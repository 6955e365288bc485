package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

// AdvanceCursorsBatch implements storage.CursorBatches: every device's
// updates as statements of one pipelined batch, which runs as one implicit
// transaction (one round trip, one commit).
func (s *Store) AdvanceCursorsBatch(ctx context.Context, batch []storage.DeviceCursors) ([][]storage.DeliveredChange, error) {
	out := make([][]storage.DeliveredChange, len(batch))
	type item struct {
		dev int
		u   storage.CursorUpdate
	}
	var items []item
	for i, d := range batch {
		for _, u := range d.Updates {
			items = append(items, item{i, u})
		}
	}
	if len(items) == 0 {
		return out, nil
	}
	// Rows are locked in conversation, then user order, as AdvanceCursors
	// does for one user, so that concurrent calls cannot deadlock; the
	// stable sort keeps one device's updates of a conversation in order and
	// devices in batch order.
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(strings.Compare(a.u.ConvID, b.u.ConvID), strings.Compare(batch[a.dev].UserID, batch[b.dev].UserID))
	})
	b := &pgx.Batch{}
	for _, it := range items {
		d, u, dev := batch[it.dev], it.u, it.dev
		b.Queue(advanceSQL, d.UserID, d.DeviceID, u.ConvID, u.From, u.Seq).Query(func(rows pgx.Rows) error {
			r := storage.Receipt{ConvID: u.ConvID, UserID: d.UserID}
			var prev int64
			_, err := pgx.ForEachRow(rows, []any{&r.Delivered, &r.Read, &prev}, func() error {
				// A later update of the same conversation by this device
				// raised it again: keep the Prev from before the call.
				if n := len(out[dev]); n > 0 && out[dev][n-1].ConvID == u.ConvID {
					out[dev][n-1].Receipt = r
					return nil
				}
				out[dev] = append(out[dev], storage.DeliveredChange{Receipt: r, Prev: prev})
				return nil
			})
			return err
		})
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("advance cursors of %d devices: %w", len(batch), err)
	}
	return out, nil
}
