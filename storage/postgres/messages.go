package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/seal"
)

// AppendMessages stores a batch in one transaction: it locks the batch's
// conversations, reads their last seqs, the senders' memberships and earlier
// messages with the same idempotency keys, decides every item in Go and
// writes the new messages with COPY. That costs four round trips (the reads
// are pipelined with BEGIN) however large the batch: the last one advances
// the conversations and raises the senders' receipts in one statement.
//
// The conversation locks make the decisions safe when several nodes append
// to the same conversations: under READ COMMITTED each statement after the
// lock takes a fresh snapshot, so the reads see everything committed before
// the locks were granted, and nothing can change those conversations'
// members (membership changes lock the conversation too), messages or
// last_seq until commit. Locking in id order keeps two batches from
// deadlocking.
func (s *Store) AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	results := make([]storage.AppendResult, len(batch))
	var keys []msgKey
	for i, nm := range batch {
		if nm.ClientMsgID == "" {
			results[i].Err = errors.New("append message: empty client message id")
			continue
		}
		keys = append(keys, msgKey{nm.ConvID, nm.SenderID, nm.ClientMsgID})
	}
	if len(keys) == 0 {
		return results, nil
	}

	if s.sealer != nil {
		convs := make([]string, len(keys))
		for i, k := range keys {
			convs[i] = k.conv
		}
		if err := s.warmKeys(ctx, convs); err != nil {
			return nil, fmt.Errorf("append messages: %w", err)
		}
	}

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	st := queueAppendReads(b, keys)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	if err := s.openDuplicates(ctx, tx, st); err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	sealKeys := make(map[string]seal.Key) // conversations' keys, resolved under the lock

	var rows [][]any
	lastAt := make(map[string]time.Time) // conversations that got messages
	// Newest stored seq per (conversation, sender): sending implies having
	// read everything up to one's own message.
	sent := make(map[[2]string]int64)
	for i, nm := range batch {
		if results[i].Err != nil {
			continue
		}
		seq, ok := st.lastSeq[nm.ConvID]
		if !ok {
			results[i].Err = fmt.Errorf("conversation %q: %w", nm.ConvID, storage.ErrNotFound)
			continue
		}
		if !st.active[[2]string{nm.ConvID, nm.SenderID}] {
			results[i].Err = fmt.Errorf("%q in %q: %w", nm.SenderID, nm.ConvID, storage.ErrNotMember)
			continue
		}
		key := msgKey{nm.ConvID, nm.SenderID, nm.ClientMsgID}
		if m, ok := st.stored[key]; ok {
			results[i] = storage.AppendResult{Message: m, Duplicate: true}
			continue
		}
		m := storage.Message{
			ConvID:       nm.ConvID,
			Seq:          seq + 1,
			ID:           nm.ID,
			SenderID:     nm.SenderID,
			SenderDevice: nm.SenderDevice,
			ClientMsgID:  nm.ClientMsgID,
			Kind:         nm.Kind,
			Body:         nonNil(nm.Body),
			CreatedAt:    dbTime(nm.CreatedAt),
		}
		st.lastSeq[m.ConvID] = m.Seq
		st.stored[key] = m
		sent[[2]string{m.ConvID, m.SenderID}] = m.Seq // seqs only grow
		if at, ok := lastAt[m.ConvID]; !ok || m.CreatedAt.After(at) {
			lastAt[m.ConvID] = m.CreatedAt
		}
		results[i].Message = m
		body, keyID := m.Body, pgtype.Int8{}
		if s.sealer != nil {
			k, ok := sealKeys[m.ConvID]
			if !ok {
				var err error
				if k, err = s.txKey(ctx, tx, m.ConvID, st.keyID[m.ConvID]); err != nil {
					return nil, fmt.Errorf("append messages: %w", err)
				}
				sealKeys[m.ConvID] = k
			}
			var err error
			if body, err = s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: m.ConvID, Seq: m.Seq, KeyID: k.ID}, m.Body); err != nil {
				return nil, fmt.Errorf("append messages: %w", err)
			}
			keyID = pgtype.Int8{Int64: k.ID, Valid: true}
		}
		rows = append(rows, []any{m.ConvID, m.Seq, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Kind, body, m.CreatedAt, keyID})
	}

	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, messageColumnNames(), pgx.CopyFromRows(rows)); err != nil {
			return nil, fmt.Errorf("append messages: copy: %w", err)
		}
		ids := make([]string, 0, len(lastAt))
		seqs := make([]int64, 0, len(lastAt))
		ats := make([]time.Time, 0, len(lastAt))
		for id, at := range lastAt {
			ids, seqs, ats = append(ids, id), append(seqs, st.lastSeq[id]), append(ats, at)
		}
		// Sorted by (conversation, user): the order every transaction
		// locking several members rows takes them in (see appendFinishSQL).
		keys := slices.SortedFunc(maps.Keys(sent), func(a, b [2]string) int {
			return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
		})
		sconvs := make([]string, len(keys))
		susers := make([]string, len(keys))
		sseqs := make([]int64, len(keys))
		for i, k := range keys {
			sconvs[i], susers[i], sseqs[i] = k[0], k[1], sent[k]
		}
		if _, err := tx.Exec(ctx, appendFinishSQL, ids, seqs, ats, sconvs, susers, sseqs); err != nil {
			return nil, fmt.Errorf("append messages: advance conversations and senders: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("append messages: commit: %w", err)
	}
	return results, nil
}

// appendFinishSQL is the last statement of AppendMessages: it advances the
// conversations ($1 ids, $2 last seqs, $3 last times) and raises the
// senders' Delivered and Read ($4 conversations, $5 users, $6 seqs) in one
// round trip.
//
// The batch holds its conversations' row locks, so no other append or
// membership change touches these members rows; AdvanceCursors and MarkRead
// do, without the conversation lock. AdvanceCursors locks one user's rows in
// conversation order, so locking ours in (conversation, user) order cannot
// deadlock with it: "locked" takes the row locks one by one in array order
// (the nested loop follows the array) before the UPDATE writes them, whatever
// join the planner picks for the UPDATE. Under READ COMMITTED the UPDATE then
// finds the newest version of each row, so greatest() never lowers a
// concurrent raise. The conversations CTE runs to completion although
// nothing reads it.
const appendFinishSQL = `
WITH convs AS (
	UPDATE conversations c SET last_seq = u.last_seq, last_at = greatest(c.last_at, u.last_at)
	FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u (id, last_seq, last_at)
	WHERE c.id = u.id
), locked AS (
	SELECT k.conv_id, k.user_id, k.seq
	FROM unnest($4::text[], $5::text[], $6::bigint[]) AS k (conv_id, user_id, seq)
	CROSS JOIN LATERAL (
		SELECT FROM members m WHERE m.conv_id = k.conv_id AND m.user_id = k.user_id
		FOR NO KEY UPDATE) AS m
)
UPDATE members m
SET delivered_seq = greatest(m.delivered_seq, l.seq), read_seq = greatest(m.read_seq, l.seq)
FROM locked l
WHERE m.conv_id = l.conv_id AND m.user_id = l.user_id`

func messageColumnNames() []string {
	return []string{"conv_id", "seq", "id", "sender_id", "sender_device", "client_msg_id", "kind", "body", "created_at", "key_id"}
}

// msgKey is the idempotency key of a message.
type msgKey struct{ conv, sender, cmid string }

// appendState is what AppendMessages reads before deciding a batch.
type appendState struct {
	lastSeq map[string]int64           // locked conversations' newest seqs
	keyID   map[string]int64           // locked conversations' current data key ids (0: none)
	active  map[[2]string]bool         // active (conversation, user) memberships
	stored  map[msgKey]storage.Message // stored messages with the batch's keys
	sealed  []seal.Row                 // the same, as stored, until openDuplicates
}

// queueAppendReads queues the lock and the reads for keys on b and returns
// the state their results fill in. The reads are LATERAL joins so that each
// key is one index probe whatever the statistics say: a hash join would
// read whole tables, and a generic plan cached while the tables were small
// would keep doing so.
func queueAppendReads(b *pgx.Batch, keys []msgKey) *appendState {
	st := &appendState{
		lastSeq: make(map[string]int64),
		keyID:   make(map[string]int64),
		active:  make(map[[2]string]bool),
		stored:  make(map[msgKey]storage.Message),
	}
	convs := make([]string, len(keys))
	senders := make([]string, len(keys))
	cmids := make([]string, len(keys))
	for i, k := range keys {
		convs[i], senders[i], cmids[i] = k.conv, k.sender, k.cmid
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(convs)))

	// The nested loop follows the array, so the locks are taken in order.
	b.Queue(`SELECT c.id, c.last_seq, coalesce(c.key_id, 0) FROM unnest($1::text[]) AS k (id)
		CROSS JOIN LATERAL (
			SELECT id, last_seq, key_id FROM conversations WHERE id = k.id FOR NO KEY UPDATE) AS c`,
		sorted).
		Query(func(rows pgx.Rows) error {
			var id string
			var seq, keyID int64
			_, err := pgx.ForEachRow(rows, []any{&id, &seq, &keyID}, func() error {
				st.lastSeq[id] = seq
				st.keyID[id] = keyID
				return nil
			})
			return err
		})
	b.Queue(`SELECT k.conv_id, k.user_id FROM unnest($1::text[], $2::text[]) AS k (conv_id, user_id)
		CROSS JOIN LATERAL (
			SELECT FROM members m
			WHERE m.conv_id = k.conv_id AND m.user_id = k.user_id AND m.until_seq IS NULL
			LIMIT 1) AS m`,
		convs, senders).
		Query(func(rows pgx.Rows) error {
			var conv, user string
			_, err := pgx.ForEachRow(rows, []any{&conv, &user}, func() error {
				st.active[[2]string{conv, user}] = true
				return nil
			})
			return err
		})
	b.Queue(`SELECT d.* FROM unnest($1::text[], $2::text[], $3::text[]) AS k (conv_id, sender_id, client_msg_id)
		CROSS JOIN LATERAL (
			SELECT `+messageColumns+` FROM messages m
			WHERE m.conv_id = k.conv_id AND m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id
			LIMIT 1) AS d`,
		convs, senders, cmids).
		Query(func(rows pgx.Rows) error {
			var err error
			st.sealed, err = collectMessages(rows)
			return err
		})
	return st
}

const messageColumns = "conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, coalesce(key_id, 0)"

func collectMessages(rows pgx.Rows) ([]seal.Row, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (seal.Row, error) {
		var m seal.Row
		err := row.Scan(&m.ConvID, &m.Seq, &m.ID, &m.SenderID, &m.SenderDevice,
			&m.ClientMsgID, &m.Kind, &m.Body, &m.CreatedAt, &m.KeyID)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
}

// openDuplicates decrypts the earlier messages the batch repeats into
// st.stored. Duplicates are rare (client retries), so reading their keys
// costs a round trip only when there are some.
func (s *Store) openDuplicates(ctx context.Context, tx pgx.Tx, st *appendState) error {
	if len(st.sealed) == 0 {
		return nil
	}
	keys := make(map[int64]string)
	if s.sealer != nil {
		var err error
		if keys, err = keysByID(ctx, tx, missingKeyIDs(st.sealed, keys)); err != nil {
			return fmt.Errorf("read data keys: %w", err)
		}
	}
	msgs, err := s.open(st.sealed, keys)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		st.stored[msgKey{m.ConvID, m.SenderID, m.ClientMsgID}] = m
	}
	st.sealed = nil
	return nil
}

// MessagesAfter returns up to limit messages with after < seq <= upTo,
// ascending; limit 0 means no limit.
func (s *Store) MessagesAfter(ctx context.Context, convID string, after, upTo int64, limit int) ([]storage.Message, error) {
	msgs, err := s.readMessages(ctx, convID, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq > $2 AND seq <= $3
		ORDER BY seq LIMIT $4`, convID, after, upTo, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q after %d: %w", convID, after, err)
	}
	return msgs, nil
}

// MessagesBefore returns up to limit messages with from <= seq < before,
// newest first; limit 0 means no limit.
func (s *Store) MessagesBefore(ctx context.Context, convID string, before, from int64, limit int) ([]storage.Message, error) {
	msgs, err := s.readMessages(ctx, convID, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq >= $2 AND seq < $3
		ORDER BY seq DESC LIMIT $4`, convID, from, before, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q before %d: %w", convID, before, err)
	}
	return msgs, nil
}

// readMessages runs a query for messages of convID and decrypts them. With
// a sealer the conversation's data keys are read in the same round trip.
func (s *Store) readMessages(ctx context.Context, convID, query string, args ...any) ([]storage.Message, error) {
	keys := make(map[int64]string)
	var sealed []seal.Row
	if s.sealer == nil {
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		if sealed, err = collectMessages(rows); err != nil {
			return nil, err
		}
		return s.open(sealed, keys)
	}
	b := &pgx.Batch{}
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		sealed, err = collectMessages(rows)
		return err
	})
	// After the messages: a key created meanwhile is harmless, and a key
	// shredded meanwhile reads as shredded.
	queueKeys(b, convID, keys)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return s.open(sealed, keys)
}
