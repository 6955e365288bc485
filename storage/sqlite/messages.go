package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/seal"
)

// nextSeqSQL allocates the next seq of a conversation. It runs inside the
// write transaction, so seqs are gapless: a rolled-back batch returns its
// seqs along with everything else.
const nextSeqSQL = `UPDATE conversations SET last_seq = last_seq + 1, last_at = MAX(last_at, ?)
	WHERE id = ? RETURNING last_seq`

const insertMessageSQL = `INSERT INTO messages
	(conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, key_id)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const messageColumns = `conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, coalesce(key_id, 0)`

// writer stores new messages within one transaction.
type writer struct {
	s            *Store
	tx           *sql.Tx
	next, insert *sql.Stmt
	keys         map[string]seal.Key // data keys resolved in this transaction
}

func (s *Store) prepareWriter(ctx context.Context, tx *sql.Tx) (*writer, error) {
	next, err := tx.PrepareContext(ctx, nextSeqSQL)
	if err != nil {
		return nil, err
	}
	insert, err := tx.PrepareContext(ctx, insertMessageSQL)
	if err != nil {
		return nil, err
	}
	return &writer{s: s, tx: tx, next: next, insert: insert, keys: make(map[string]seal.Key)}, nil
}

// write assigns m the next seq of its conversation and stores it.
func (w *writer) write(ctx context.Context, m storage.NewMessage) (storage.Message, error) {
	var seq int64
	err := w.next.QueryRowContext(ctx, toMillis(m.CreatedAt), m.ConvID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Message{}, fmt.Errorf("conversation %q: %w", m.ConvID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Message{}, err
	}
	body := m.Body
	if body == nil {
		body = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	stored, keyID, err := w.seal(ctx, m.ConvID, seq, body)
	if err != nil {
		return storage.Message{}, err
	}
	if _, err := w.insert.ExecContext(ctx, m.ConvID, seq, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID,
		m.Kind, stored, toMillis(m.CreatedAt), keyID); err != nil {
		return storage.Message{}, fmt.Errorf("insert message %q: %w", m.ID, err)
	}
	return storage.Message{
		ConvID:       m.ConvID,
		Seq:          seq,
		ID:           m.ID,
		SenderID:     m.SenderID,
		SenderDevice: m.SenderDevice,
		ClientMsgID:  m.ClientMsgID,
		Kind:         m.Kind,
		Body:         body,
		CreatedAt:    fromMillis(toMillis(m.CreatedAt)),
	}, nil
}

// seal returns the body to store for seq of convID and its key id (NULL
// without a sealer).
func (w *writer) seal(ctx context.Context, convID string, seq int64, body []byte) ([]byte, sql.NullInt64, error) {
	if w.s.sealer == nil {
		return body, sql.NullInt64{}, nil
	}
	k, ok := w.keys[convID]
	if !ok {
		var err error
		if k, err = w.s.txKey(ctx, w.tx, convID); err != nil {
			return nil, sql.NullInt64{}, err
		}
		w.keys[convID] = k
	}
	sealed, err := w.s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: convID, Seq: seq, KeyID: k.ID}, body)
	if err != nil {
		return nil, sql.NullInt64{}, err
	}
	return sealed, sql.NullInt64{Int64: k.ID, Valid: true}, nil
}

// appendNote stores a membership note in convID. Notes are written by the
// broker on behalf of an actor, so unlike AppendMessages there is no
// membership check on the sender.
func (s *Store) appendNote(ctx context.Context, tx *sql.Tx, convID string, note storage.NewMessage) (storage.Message, error) {
	w, err := s.prepareWriter(ctx, tx)
	if err != nil {
		return storage.Message{}, err
	}
	note.ConvID = convID
	return w.write(ctx, note)
}

func scanMessage(sc interface{ Scan(...any) error }) (seal.Row, error) {
	var m seal.Row
	var created int64
	if err := sc.Scan(&m.ConvID, &m.Seq, &m.ID, &m.SenderID, &m.SenderDevice, &m.ClientMsgID, &m.Kind, &m.Body, &created, &m.KeyID); err != nil {
		return seal.Row{}, err
	}
	m.CreatedAt = fromMillis(created)
	return m, nil
}

// appender holds the prepared statements of one AppendMessages transaction.
type appender struct {
	*writer
	sender, dup *sql.Stmt
}

func (s *Store) prepareAppender(ctx context.Context, tx *sql.Tx) (*appender, error) {
	w, err := s.prepareWriter(ctx, tx)
	if err != nil {
		return nil, err
	}
	// One round trip tells both whether the conversation exists and the
	// sender's membership: NULL, NULL for an unknown conversation.
	sender, err := tx.PrepareContext(ctx, `SELECT
		(SELECT 1 FROM conversations WHERE id = ?1),
		(SELECT until_seq FROM members WHERE conv_id = ?1 AND user_id = ?2)`)
	if err != nil {
		return nil, err
	}
	dup, err := tx.PrepareContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE conv_id = ? AND sender_id = ? AND client_msg_id = ?`)
	if err != nil {
		return nil, err
	}
	return &appender{writer: w, sender: sender, dup: dup}, nil
}

// add stores one item. Problems with the item itself go in the result;
// a returned error is internal and aborts the batch.
func (a *appender) add(ctx context.Context, m storage.NewMessage) (storage.AppendResult, error) {
	if m.ClientMsgID == "" {
		return storage.AppendResult{Err: errors.New("sqlite: append message: empty client message id")}, nil
	}
	var conv, until sql.NullInt64
	if err := a.sender.QueryRowContext(ctx, m.ConvID, m.SenderID).Scan(&conv, &until); err != nil {
		return storage.AppendResult{}, err
	}
	if !conv.Valid {
		return storage.AppendResult{Err: fmt.Errorf("sqlite: append message: conversation %q: %w", m.ConvID, storage.ErrNotFound)}, nil
	}
	if !until.Valid || until.Int64 != 0 {
		return storage.AppendResult{Err: fmt.Errorf("sqlite: append message: %q in %q: %w", m.SenderID, m.ConvID, storage.ErrNotMember)}, nil
	}
	prev, err := scanMessage(a.dup.QueryRowContext(ctx, m.ConvID, m.SenderID, m.ClientMsgID))
	if err == nil {
		var keys map[int64]string
		if a.s.sealer != nil {
			if keys, err = convKeys(ctx, a.tx, m.ConvID); err != nil {
				return storage.AppendResult{}, err
			}
		}
		msgs, err := a.s.open([]seal.Row{prev}, keys)
		if err != nil {
			return storage.AppendResult{}, err
		}
		return storage.AppendResult{Message: msgs[0], Duplicate: true}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return storage.AppendResult{}, err
	}
	msg, err := a.write(ctx, m)
	if err != nil {
		return storage.AppendResult{}, err
	}
	return storage.AppendResult{Message: msg}, nil
}

// raiseSenderSQL raises the Delivered and Read of member ?2 of conversation
// ?1 to at least seq ?3: sending a message implies having received and read
// everything up to it.
const raiseSenderSQL = `UPDATE members SET delivered_seq = MAX(delivered_seq, ?3), read_seq = MAX(read_seq, ?3)
	WHERE conv_id = ?1 AND user_id = ?2`

// raiseSender applies raiseSenderSQL for the sender of m. Without a members
// row (a system sender) it changes nothing.
func raiseSender(ctx context.Context, tx *sql.Tx, m storage.Message) error {
	_, err := tx.ExecContext(ctx, raiseSenderSQL, m.ConvID, m.SenderID, m.Seq)
	return err
}

// AppendMessages stores a batch in one transaction (one disk sync). Items
// are independent except that an internal error rolls back the whole batch.
// After the items, one UPDATE per (conversation, sender) raises the
// sender's receipts to their newest stored message.
func (s *Store) AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	out := make([]storage.AppendResult, len(batch))
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		a, err := s.prepareAppender(ctx, tx)
		if err != nil {
			return err
		}
		sent := make(map[[2]string]storage.Message) // newest stored per (conversation, sender)
		for i, m := range batch {
			if out[i], err = a.add(ctx, m); err != nil {
				return err
			}
			if r := out[i]; r.Err == nil && !r.Duplicate {
				sent[[2]string{r.Message.ConvID, r.Message.SenderID}] = r.Message // seqs only grow
			}
		}
		if len(sent) == 0 {
			return nil
		}
		raise, err := tx.PrepareContext(ctx, raiseSenderSQL)
		if err != nil {
			return err
		}
		for _, m := range sent {
			if _, err := raise.ExecContext(ctx, m.ConvID, m.SenderID, m.Seq); err != nil {
				return fmt.Errorf("raise receipts of %q in %q: %w", m.SenderID, m.ConvID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: append messages: %w", err)
	}
	return out, nil
}

// MessagesAfter returns up to limit messages with after < seq <= upTo,
// ascending. limit <= 0 means no limit.
func (s *Store) MessagesAfter(ctx context.Context, convID string, after, upTo int64, limit int) ([]storage.Message, error) {
	msgs, err := s.messages(ctx, convID, `SELECT `+messageColumns+` FROM messages
		WHERE conv_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, convID, after, upTo, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages of %q after %d: %w", convID, after, err)
	}
	return msgs, nil
}

// MessagesBefore returns up to limit messages with from <= seq < before,
// newest first. limit <= 0 means no limit.
func (s *Store) MessagesBefore(ctx context.Context, convID string, before, from int64, limit int) ([]storage.Message, error) {
	msgs, err := s.messages(ctx, convID, `SELECT `+messageColumns+` FROM messages
		WHERE conv_id = ? AND seq >= ? AND seq < ? ORDER BY seq DESC LIMIT ?`, convID, from, before, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages of %q before %d: %w", convID, before, err)
	}
	return msgs, nil
}

// messages runs a query for messages of convID and decrypts them.
func (s *Store) messages(ctx context.Context, convID, query string, args ...any) ([]storage.Message, error) {
	sealed, err := queryAll(ctx, s.r, scanMessage, query, args...)
	if err != nil {
		return nil, err
	}
	var keys map[int64]string
	if s.sealer != nil && len(sealed) > 0 {
		// After the messages: a key created meanwhile is harmless, and a
		// key shredded meanwhile reads as shredded.
		if keys, err = convKeys(ctx, s.r, convID); err != nil {
			return nil, err
		}
	}
	out, err := s.open(sealed, keys)
	if len(out) == 0 {
		return nil, err
	}
	return out, err
}

// sqlLimit maps "no limit" (<= 0) to SQLite's LIMIT -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
