package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// DeviceAcks is one device's acknowledgements, for AckMany.
type DeviceAcks struct {
	Device Device
	Acks   []protocol.Cursor
}

// AckMany advances several devices' cursors (see Ack) in one store
// transaction and sends the receipts that result. A device whose acks are
// invalid is skipped and named in the error; the others are applied.
func (s *Service) AckMany(ctx context.Context, acks []DeviceAcks) error {
	var errs []error
	batch := make([]storage.DeviceCursors, 0, len(acks))
	for _, a := range acks {
		updates, err := cursorUpdates(a.Acks)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", a.Device.User, a.Device.Device, err))
			continue
		}
		if len(updates) > 0 {
			batch = append(batch, storage.DeviceCursors{UserID: a.Device.User, DeviceID: a.Device.Device, Updates: updates})
		}
	}
	if len(batch) == 0 {
		return errors.Join(errs...)
	}
	changes, err := s.store.AdvanceCursorsBatch(ctx, batch)
	if err != nil {
		// One device's failure must not cost the others their acks: fall
		// back to a transaction per device.
		s.log.Warn("ack: batch failed, storing device by device", "devices", len(batch), "error", err)
		for _, d := range batch {
			errs = append(errs, s.ackUpdates(ctx, Device{User: d.UserID, Device: d.DeviceID}, d.Updates))
		}
		return errors.Join(errs...)
	}
	// Every change is stored: the receipts can share their reads.
	rb := s.newReceiptBatch()
	for _, cs := range changes {
		for _, c := range cs {
			rb.notify(ctx, c.Receipt, c.Prev, false)
		}
	}
	return errors.Join(errs...)
}

// ackUpdates is Ack for validated updates.
func (s *Service) ackUpdates(ctx context.Context, dev Device, updates []storage.CursorUpdate) error {
	changes, err := s.store.AdvanceCursors(ctx, dev.User, dev.Device, updates)
	if err != nil {
		return s.storeError("ack", err)
	}
	rb := s.newReceiptBatch()
	for _, c := range changes {
		rb.notify(ctx, c.Receipt, c.Prev, false)
	}
	return nil
}
