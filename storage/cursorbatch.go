package storage

import "context"

// DeviceCursors is one device's cursor updates within a batch.
type DeviceCursors struct {
	UserID   string
	DeviceID string
	Updates  []CursorUpdate
}

// CursorBatches advances many devices' cursors in one transaction.
// Delivery acknowledgements arrive from every connected device all the
// time; one commit for all of them instead of one per device is what keeps
// their cost flat as devices grow.
type CursorBatches interface {
	// AdvanceCursorsBatch applies each device's updates as AdvanceCursors
	// would, all in one transaction, and returns each device's changes at
	// the same index as its updates (nil when nothing rose). Devices of the
	// same user are applied in batch order, so a later one's Prev includes
	// an earlier one's raise.
	AdvanceCursorsBatch(ctx context.Context, batch []DeviceCursors) ([][]DeliveredChange, error)
}
