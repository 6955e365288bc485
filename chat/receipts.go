package chat

import (
	"context"
	"encoding/json"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// MarkRead records that the user has read conv up to seq and tells the
// senders concerned and the user's other devices.
func (s *Service) MarkRead(ctx context.Context, dev Device, convID string, seq int64) error {
	if seq < 1 {
		return protocol.Errorf(protocol.CodeBadRequest, "read: seq must be >= 1")
	}
	before, err := s.memberOf(ctx, convID, dev.User)
	if err != nil {
		return err
	}
	r, changed, err := s.store.MarkRead(ctx, dev.User, convID, seq)
	if err != nil {
		return s.convError(err, convID)
	}
	if changed {
		s.notifyReceipt(ctx, r, before.Read, true)
	}
	return nil
}

// Receipts returns the members' positions as the asking user may see them.
func (s *Service) Receipts(ctx context.Context, dev Device, convID string) ([]protocol.Receipt, error) {
	if _, err := s.memberOf(ctx, convID, dev.User); err != nil {
		return nil, err
	}
	rs, err := s.store.Receipts(ctx, convID)
	if err != nil {
		return nil, s.storeError("receipts", err)
	}
	shares, err := s.readSharing(ctx, rs)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Receipt, len(rs))
	for i, r := range rs {
		out[i] = protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered}
		if r.UserID == dev.User || (shares[dev.User] && shares[r.UserID]) {
			out[i].Read = r.Read
		} else {
			out[i].ReadHidden = true
		}
	}
	return out, nil
}

// readSharing tells, for the given members, who shares read receipts.
func (s *Service) readSharing(ctx context.Context, rs []storage.Receipt) (map[string]bool, error) {
	shares := make(map[string]bool, len(rs))
	for _, r := range rs {
		u, err := s.store.GetUser(ctx, r.UserID)
		if err != nil {
			return nil, s.storeError("receipts", err)
		}
		shares[r.UserID] = u.Settings.ReadReceipts
	}
	return shares, nil
}

// notifyReceipt tells the senders of messages in (prev, now] that the
// subject's delivered (or, when read, read) position moved, and, for reads,
// the subject's own devices. Receipts are best effort: the positions are
// stored and the receipts command returns them, so failures are logged.
func (s *Service) notifyReceipt(ctx context.Context, r storage.Receipt, prev int64, read bool) {
	upTo := r.Delivered
	if read {
		upTo = r.Read
	}
	senders, err := s.store.Senders(ctx, r.ConvID, prev, upTo)
	if err != nil {
		s.log.Warn("receipt: list senders", "conv", r.ConvID, "error", err)
		return
	}
	var recipients []string
	for _, u := range senders {
		if u != r.UserID {
			recipients = append(recipients, u)
		}
	}
	if len(recipients) == 0 && !read {
		return
	}
	all, err := s.store.Receipts(ctx, r.ConvID)
	if err != nil {
		s.log.Warn("receipt: read positions", "conv", r.ConvID, "error", err)
		return
	}
	shares, err := s.readSharing(ctx, all)
	if err != nil {
		s.log.Warn("receipt: read settings", "conv", r.ConvID, "error", err)
		return
	}
	for _, to := range recipients {
		ev := protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered}
		seeReads := shares[to] && shares[r.UserID]
		if seeReads {
			ev.Read = r.Read
		} else {
			ev.ReadHidden = true
		}
		ev.AllDelivered, ev.AllRead = othersPositions(all, to, shares)
		if !shares[to] {
			ev.AllRead = 0
		}
		if read && !seeReads {
			continue // a read nobody may see: nothing new for this sender
		}
		s.publishReceipt(to, ev)
	}
	if read {
		// The reader's other devices update their unread counts.
		s.publishReceipt(r.UserID, protocol.Receipt{Conv: r.ConvID, User: r.UserID, Delivered: r.Delivered, Read: r.Read})
	}
}

// othersPositions returns how far every active member other than user has
// received and read. A member hiding read receipts never counts as having
// read.
func othersPositions(all []storage.Receipt, user string, shares map[string]bool) (delivered, read int64) {
	first := true
	for _, m := range all {
		if m.UserID == user {
			continue
		}
		mr := m.Read
		if !shares[m.UserID] {
			mr = 0
		}
		if first || m.Delivered < delivered {
			delivered = m.Delivered
		}
		if first || mr < read {
			read = mr
		}
		first = false
	}
	return delivered, read
}

func (s *Service) publishReceipt(user string, r protocol.Receipt) {
	payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvReceipt, Receipt: &r})
	if err != nil {
		s.log.Error("receipt: encode", "error", err)
		return
	}
	if err := s.pub.Publish(protocol.InboxTopic(user), payload); err != nil {
		s.log.Warn("receipt: publish", "user", user, "error", err)
	}
}
