package chat

import (
	"context"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// Ack advances the device's cursors (see protocol.Cursor).
func (s *Service) Ack(ctx context.Context, dev Device, acks []protocol.Cursor) error {
	updates, err := cursorUpdates(acks)
	if err != nil {
		return err
	}
	if len(updates) == 0 {
		return nil
	}
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

func cursorUpdates(acks []protocol.Cursor) ([]storage.CursorUpdate, error) {
	if len(acks) > protocol.MaxAcks {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "at most %d cursors per request", protocol.MaxAcks)
	}
	out := make([]storage.CursorUpdate, 0, len(acks))
	for _, a := range acks {
		if !validConvID(a.Conv) || a.Seq < 1 || a.From < 0 || a.From >= a.Seq {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "ack: each cursor needs a conversation id and 0 <= from < seq")
		}
		out = append(out, storage.CursorUpdate{ConvID: a.Conv, From: a.From, Seq: a.Seq})
	}
	return out, nil
}

// Sync applies acks and returns up to limit messages the device has not
// acknowledged, ordered by conversation and seq, and whether more remain.
// For each conversation the page starts right after the device's cursor.
func (s *Service) Sync(ctx context.Context, dev Device, acks []protocol.Cursor, limit int) ([]protocol.Message, bool, error) {
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, false, err
	}
	if err := s.Ack(ctx, dev, acks); err != nil {
		return nil, false, err
	}
	pending, err := s.store.PendingConversations(ctx, dev.User, dev.Device)
	if err != nil {
		return nil, false, s.storeError("sync", err)
	}
	var out []protocol.Message
	for i, c := range pending {
		room := limit - len(out)
		if room == 0 {
			return out, true, nil
		}
		// Ask for one more than fits to learn whether this conversation
		// has more than the page can take.
		msgs, err := s.store.MessagesAfter(ctx, c.ConvID, c.Cursor, c.LastSeq, room+1)
		if err != nil {
			return nil, false, s.storeError("sync", err)
		}
		if len(msgs) > room {
			return append(out, wireMessages(msgs[:room])...), true, nil
		}
		out = append(out, wireMessages(msgs)...)
		if len(out) == limit && i < len(pending)-1 {
			return out, true, nil
		}
	}
	return out, false, nil
}

// Unread lists the user's conversations with unread messages.
func (s *Service) Unread(ctx context.Context, dev Device) ([]protocol.Unread, error) {
	us, err := s.store.Unread(ctx, dev.User)
	if err != nil {
		return nil, s.storeError("unread", err)
	}
	out := make([]protocol.Unread, len(us))
	for i, u := range us {
		out[i] = protocol.Unread{Conv: u.ConvID, LastSeq: u.LastSeq, Read: u.Read, Count: u.LastSeq - u.Read}
	}
	return out, nil
}

func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return protocol.DefaultSyncLimit, nil
	case limit < 0 || limit > protocol.MaxSyncLimit:
		return 0, protocol.Errorf(protocol.CodeBadRequest, "limit must be between 1 and %d", protocol.MaxSyncLimit)
	}
	return limit, nil
}

// History returns up to limit messages of a conversation with seq < before
// (0 = newest), ascending, and whether older visible messages exist. Past
// members read what they could see while they were members.
func (s *Service) History(ctx context.Context, dev Device, convID string, before int64, limit int) ([]protocol.Message, bool, error) {
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, false, err
	}
	if before < 0 {
		return nil, false, protocol.Errorf(protocol.CodeBadRequest, "before must be >= 0")
	}
	m, err := s.memberOf(ctx, convID, dev.User)
	if err != nil {
		return nil, false, err
	}
	if m.UntilSeq > 0 && (before == 0 || before > m.UntilSeq+1) {
		before = m.UntilSeq + 1
	}
	if before == 0 {
		c, err := s.store.GetConversation(ctx, convID)
		if err != nil {
			return nil, false, s.convError(err, convID)
		}
		before = c.LastSeq + 1
	}
	msgs, err := s.store.MessagesBefore(ctx, convID, before, m.FromSeq, limit+1)
	if err != nil {
		return nil, false, s.storeError("history", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	out := wireMessages(msgs)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, more, nil
}
